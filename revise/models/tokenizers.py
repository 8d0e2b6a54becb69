"""Tokenizers the project builds itself, so that a model can be made with no download.

A byte tokenizer has one token per UTF-8 byte plus a few special tokens; it is what the
random-weight presets use. Real checkpoints bring their own tokenizer folder.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
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


def build_byte_tokenizer(style: str, model_max_length: int) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ``style`` is ``"t5"`` (appends ``</s>``, pads with ``<pad>`` = 0)
    or ``"chat"`` (Llama-3 chat markers and template, no automatic special tokens)."""
    if style not in ("t5", "chat"):
        raise ValueError(f"unknown tokenizer style {style!r}")
    specials = _T5_SPECIALS if style == "t5" else _CHAT_SPECIALS
    # Sorted byte symbols: the same vocabulary on every run and machine.
    symbols = specials + sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {sym: i for i, sym in enumerate(symbols)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
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
