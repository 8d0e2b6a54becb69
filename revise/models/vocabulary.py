"""Growing a model's word vocabulary without changing what it computes.

The ``mini`` preset's word tokenizers (:func:`~revise.models.tokenizers.build_word_tokenizer`) give
each word of a fixed list its own token; a model folder keeps the tokenizers it was built with. A
model made before its world gained words (the shipped model: RVE-Synth v1's words) reads the new
ones as ``<unk>``. :func:`grow_vocabulary` appends the missing words to both word tokenizers (the
UMT5 text encoder's and the VLM's LM's), keeping every old token's id, and adds embedding rows for
them copied from the ``<unk>`` row (the LM's untied output rows too). So the grown model computes
exactly what the old one did until training moves the new rows: a new word is read as ``<unk>``
was. The critic's P(Yes) (a softmax over the Yes/No tokens alone) does not change; the LM's
full-vocabulary distribution gains the new words at ``<unk>``'s logit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import torch
from tokenizers import models

from ..errors import ReviseInputError
from .tokenizers import _specials, build_word_tokenizer

if TYPE_CHECKING:
    from .revise_model import ReviseModel


def is_word_tokenizer(tokenizer) -> bool:
    return isinstance(tokenizer.backend_tokenizer.model, models.WordLevel)


def grow_word_tokenizer(tokenizer, style: str, words: Iterable[str]):
    """``(tokenizer with the words it lacks appended, those words)``; every old token keeps its id."""
    vocab = tokenizer.get_vocab()
    added = [w for w in dict.fromkeys(w.lower() for w in words) if w not in vocab]
    if not added:
        return tokenizer, []
    specials = set(_specials(style)) | {"<unk>"}
    old_words = [w for w in sorted(vocab, key=vocab.get) if w not in specials]
    grown = build_word_tokenizer(style, old_words + added, tokenizer.model_max_length)
    new_vocab = grown.get_vocab()
    moved = [w for w, i in vocab.items() if new_vocab.get(w) != i]
    if moved:      # a tokenizer made some other way: growing it would change what its ids mean
        raise ReviseInputError(f"cannot grow this tokenizer without moving {len(moved)} tokens' ids "
                               f"(e.g. {moved[:3]}): it was not made by build_word_tokenizer")
    return grown, added


@torch.no_grad()
def _grow_rows(module, size: int, unk_id: int) -> None:
    """Resize ``module``'s token embeddings (and untied output rows) to ``size``, new rows = the unk row."""
    old = module.get_input_embeddings().weight.shape[0]
    module.resize_token_embeddings(size, mean_resizing=False)
    rows = [module.get_input_embeddings().weight]
    out = module.get_output_embeddings()                     # None for an encoder (UMT5)
    if out is not None and out.weight is not rows[0]:
        rows.append(out.weight)
    for w in rows:
        w[old:size] = w[unk_id]


def grow_vocabulary(model: ReviseModel, words: Iterable[str]) -> dict[str, list[str]]:
    """Append ``words`` the model's word tokenizers lack (text encoder and VLM), in place; returns the
    words added to each (``{"text_encoder": [...], "understanding": [...]}``). Byte tokenizers read
    every word already and are left alone."""
    words = list(words)
    added: dict[str, list[str]] = {}
    for name, holder, style, module in (("text_encoder", model, "t5", model.text_encoder),
                                        ("understanding", model.understanding, "chat", model.understanding.llm)):
        tokenizer = holder.tokenizer
        if not is_word_tokenizer(tokenizer):
            added[name] = []
            continue
        grown, new = grow_word_tokenizer(tokenizer, style, words)
        if new:
            _grow_rows(module, len(grown), tokenizer.unk_token_id)
            holder.tokenizer = grown
        added[name] = new
    return added
