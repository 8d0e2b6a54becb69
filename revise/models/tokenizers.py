"""Tokenizers the project builds itself, so that a model can be made with no download.

A byte tokenizer has one token per UTF-8 byte plus a few special tokens; it is what the
random-weight presets use. A word tokenizer has one token per word of a fixed vocabulary (the
``mini`` preset's is RVE-Synth's, ``revise/presets/synth_vocab.txt``). Real checkpoints bring
their own tokenizer folder; a saved model folder carries whichever tokenizer it was built with.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

# Llama-3 style chat markers, so one chat template serves our byte tokenizers and Llama-3's.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

_T5_SPECIALS = ["<pad>", "</s>", "<unk>"]
_CHAT_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>", "<|pad|>"]


def build_tokenizer(style: str, cfg: dict[str, Any]) -> PreTrainedTokenizerFast:
    """The tokenizer a preset's ``tokenizer`` block describes: ``kind: byte`` or ``kind: words`` with
    ``vocabulary`` (a file of one word per line; a relative path is relative to ``revise/presets``)."""
    kind, max_len = cfg.get("kind", "byte"), cfg.get("model_max_length", 512)
    if kind == "byte":
        return build_byte_tokenizer(style, max_len)
    if kind == "words":
        path = Path(cfg["vocabulary"])
        if not path.is_absolute():
            path = Path(__file__).resolve().parent.parent / "presets" / path
        return build_word_tokenizer(style, path.read_text().split(), max_len)
    raise ValueError(f"unknown tokenizer kind {kind!r} (presets build 'byte' or 'words' tokenizers)")


# Words and single punctuation marks, lower-cased (revise.synth.vocabulary splits text the same way).
WORD_REGEX = r"\w+|[^\w\s]"
#: The vocabulary of the ``mini`` preset and the embedded default model: RVE-Synth's words.
SYNTH_VOCABULARY = Path(__file__).resolve().parent.parent / "presets" / "synth_vocab.txt"


def instruction_words(text: str) -> list[str]:
    """``text`` split as the word tokenizers split it: lower-cased words and single punctuation marks."""
    return re.findall(WORD_REGEX, text.lower())


@functools.lru_cache(maxsize=1)
def _synth_vocabulary() -> frozenset[str]:
    return frozenset(SYNTH_VOCABULARY.read_text().split())


def unknown_words(text: str, tokenizer: Any = None) -> list[str]:
    """The distinct words of ``text`` (in order of appearance) that ``tokenizer`` can only read as its
    unknown token, i.e. words outside what the model knows. ``tokenizer`` None means RVE-Synth's
    vocabulary, the one of the ``mini`` preset and the embedded default model. A byte-level tokenizer
    reads every word, so it reports none."""
    words = list(dict.fromkeys(instruction_words(text)))
    if tokenizer is None:
        vocabulary = _synth_vocabulary()
        return [w for w in words if w not in vocabulary]
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    return [w for w in words if unk in tokenizer(w, add_special_tokens=False).input_ids]


def instruction_warnings(text: str, tokenizer: Any, max_tokens: int) -> list[str]:
    """One line per thing the model will not see of ``text``: words it does not know (read as
    ``<unk>``), and tokens past the ``max_tokens`` it reads (the rest is cut off)."""
    notes = []
    unknown = unknown_words(text, tokenizer)
    if unknown:
        total = len(instruction_words(text))
        shown = ", ".join(repr(w) for w in unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        notes.append(f"{len(unknown)} of {total} words of the instruction are unknown to this model "
                     f"(read as <unk>): {shown}")
    count = len(tokenizer.encode(text, verbose=False))
    if count > max_tokens:
        notes.append(f"the instruction is {count} tokens long; this model reads the first {max_tokens} and "
                     f"ignores the rest")
    return notes


def build_byte_tokenizer(style: str, model_max_length: int) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ``style`` is ``"t5"`` (appends ``</s>``, pads with ``<pad>`` = 0)
    or ``"chat"`` (Llama-3 chat markers and template, no automatic special tokens)."""
    specials = _specials(style)
    # Sorted byte symbols: the same vocabulary on every run and machine.
    symbols = specials + sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {sym: i for i, sym in enumerate(symbols)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return _wrap(tok, style, model_max_length)


def build_word_tokenizer(style: str, words: list[str], model_max_length: int) -> PreTrainedTokenizerFast:
    """One token per word of ``words`` (lower-cased; anything else is ``<unk>``), in ``style``
    ``"t5"`` or ``"chat"`` as :func:`build_byte_tokenizer`. Token ids follow the order of ``words``."""
    specials = _specials(style)
    symbols = specials + (["<unk>"] if "<unk>" not in specials else []) + [w for w in words if w not in specials]
    tok = Tokenizer(models.WordLevel(vocab={sym: i for i, sym in enumerate(symbols)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(Regex(WORD_REGEX), behavior="isolated")])
    fast = _wrap(tok, style, model_max_length)
    if style == "chat":
        fast.unk_token = "<unk>"
    return fast


def _specials(style: str) -> list[str]:
    if style not in ("t5", "chat"):
        raise ValueError(f"unknown tokenizer style {style!r}")
    return _T5_SPECIALS if style == "t5" else _CHAT_SPECIALS


def _wrap(tok: Tokenizer, style: str, model_max_length: int) -> PreTrainedTokenizerFast:
    specials = _specials(style)
    if style == "t5":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, model_max_length=model_max_length,
            pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        )
    else:
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, model_max_length=model_max_length,
            bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|pad|>",
        )
        fast.chat_template = LLAMA3_CHAT_TEMPLATE
    fast.add_special_tokens({"additional_special_tokens": [s for s in specials if s not in fast.all_special_tokens]})
    return fast
