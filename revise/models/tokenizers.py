"""Tokenizers the project builds itself, so that a model can be made with no download.

A byte tokenizer has one token per UTF-8 byte plus a few special tokens; it is what the
random-weight presets use. A word tokenizer has one token per word of a fixed vocabulary (the
``mini`` preset's is RVE-Synth's, ``revise/presets/synth_vocab.txt``). Real checkpoints bring
their own tokenizer folder; a saved model folder carries whichever tokenizer it was built with.
"""

from __future__ import annotations

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
