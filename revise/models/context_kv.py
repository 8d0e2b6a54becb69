"""Cross-attention keys and values of the context, computed once per edit instead of once per step.

The DiT's context (source tokens, VLM tokens, text) is the same at every denoising step, so each
block's cross-attention K and V (``norm_k(to_k(c))``, ``to_v(c)``) are too: at the released shapes
that is 4*C*d^2 FLOPs per block, 4% of a forward, done 40 times for nothing. Inside
``cached_context_kv(transformer, context)`` they are computed once and every DiT call reuses them.

The blocks' cross-attentions get ``ContextKVProcessor``: diffusers' ``WanAttnProcessor`` that takes
its K/V from ``kv`` when set (and behaves exactly as the stock one when not). It holds them as
tensors on a plain attribute, so a ``compile_repeated_blocks`` graph stays one graph for all blocks.
The context's embedding (``condition_embedder.text_embedder``, which the transformer runs on every
call) is kept as well: inside the block it is computed once, not at every step.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import WanAttnProcessor

from .attention_ops import attend, attend_fp8, has_rms_norms, prepare
from .fp8_attention import quantize_tensor


class ContextKVProcessor(WanAttnProcessor):
    """Wan cross-attention with optionally precomputed context keys and values [B, C, heads, head_dim]."""

    def __init__(self) -> None:
        super().__init__()
        self.kv: tuple[torch.Tensor, torch.Tensor] | None = None
        self.prepared = False       # query prepared in one pass (revise/models/attention_inputs.py)
        self.fp8 = False            # FP8 attention (use_fp8_attention): K/V also kept in e4m3 ...
        self.kv_fp8: tuple[torch.Tensor, ...] | None = None      # ... (key, its descale, value, its descale)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if self.kv is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        if self.kv_fp8 is not None and attention_mask is None:
            key, descale_k, value, descale_v = self.kv_fp8
            s = attn.fp8_scales
            query, = prepare(attn.to_q(hidden_states), (attn.norm_q,), attn.heads, out_scales=s[0:1])
            return attend_fp8(attn, query, key, value, s[1:2], descale_k, descale_v)
        key, value = self.kv
        if self.prepared and attention_mask is None and has_rms_norms(attn):
            query, = prepare(attn.to_q(hidden_states), (attn.norm_q,), attn.heads)
            out = attend(query, key, value, self._attention_backend)
        else:
            query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
            out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                                        backend=self._attention_backend, parallel_config=None)
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def context_kv(attn, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One cross-attention's K/V of an embedded context [B, C, d], as its processor computes them."""
    if getattr(attn, "fused_projections", False):
        key, value = attn.to_kv(context).chunk(2, dim=-1)
    else:
        key, value = attn.to_k(context), attn.to_v(context)
    return attn.norm_k(key).unflatten(2, (attn.heads, -1)), value.unflatten(2, (attn.heads, -1))


def heads_major(x: torch.Tensor) -> torch.Tensor:
    """``x`` [B, C, heads, head_dim] as is, stored as [B, heads, C, head_dim]: the layout that cuDNN's
    attention takes, so diffusers' cuDNN backend (``x.permute(0, 2, 1, 3).contiguous()``) reads the
    cached K/V as they are instead of copying them at every step."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


class _KeptTextEmbedding(torch.nn.Module):
    """The text embedder, returning the embedding it was made with when called on that same context."""

    def __init__(self, embedder: torch.nn.Module, context: torch.Tensor, embedded: torch.Tensor):
        super().__init__()
        self.embedder, self.context, self.embedded = embedder, context, embedded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedded if x is self.context else self.embedder(x)


_KEPT = "_revise_kept_context"     # the transformer attribute holding the tensors kept for reuse


def _into_kept(holder, new: tuple) -> tuple:
    """``new`` (tensors, or None) copied into the tensors ``holder`` kept from an earlier call where
    they have the same shapes, strides and dtypes (their memory, and so what a CUDA graph captured on
    them reads, stays the same); otherwise ``new`` becomes what it keeps."""
    kept = holder.__dict__.get(_KEPT)
    same = kept is not None and len(kept) == len(new) and all(
        (a is None) == (b is None) and (a is None or (a.shape == b.shape and a.stride() == b.stride()
                                                      and a.dtype == b.dtype and a.device == b.device))
        for a, b in zip(kept, new))
    if not same:
        holder.__dict__[_KEPT] = new
        return new
    for a, b in zip(kept, new):
        if a is not None:
            a.copy_(b)
    return kept


def release_kept_context(transformer) -> None:
    """Drop the tensors ``cached_context_kv(..., keep=True)`` kept (the context's K/V in every block)."""
    for holder in (transformer, *(b.attn2.processor for b in transformer.blocks)):
        holder.__dict__.pop(_KEPT, None)


@contextmanager
def cached_context_kv(transformer, context: torch.Tensor, keep: bool = False) -> Iterator[None]:
    """Within the block, ``transformer(x, t, context)`` reuses K/V of ``context`` computed here once.

    Every call inside must pass this same ``context`` (the same tensor: its embedding is reused
    too); the K/V are dropped on leaving. Models with image cross-attention (I2V:
    ``added_kv_proj_dim``) are left as they are.

    ``keep``: the embedded context and the K/V are written into the tensors kept from the last
    ``keep`` call where the shapes match (kept on leaving, until :func:`release_kept_context`), so
    that they are at the same addresses at every edit of one shape: a CUDA graph of the DiT call
    (``revise/pipelines/cuda_graph.py``) reads them there.
    """
    blocks = transformer.blocks
    if any(b.attn2.add_k_proj is not None for b in blocks):
        yield
        return
    with torch.no_grad():
        embedded = transformer.condition_embedder.text_embedder(context)
        if keep:
            embedded, = _into_kept(transformer, (embedded,))
        for block in blocks:
            attn = block.attn2
            if not isinstance(attn.processor, ContextKVProcessor):
                processor = ContextKVProcessor()
                processor._attention_backend = getattr(attn.processor, "_attention_backend", None)
                attn.set_processor(processor)
            kv = tuple(heads_major(t) for t in context_kv(attn, embedded))
            # FP8 attention: one scale each for the whole K and V, found once per edit
            kv_fp8 = (*quantize_tensor(kv[0]), *quantize_tensor(kv[1])) if attn.processor.fp8 else (None,) * 4
            if keep:
                kept = _into_kept(attn.processor, (*kv, *kv_fp8))
                kv, kv_fp8 = kept[:2], kept[2:]
            attn.processor.kv = tuple(kv)
            attn.processor.kv_fp8 = tuple(kv_fp8) if attn.processor.fp8 else None
    embedder = transformer.condition_embedder
    text_embedder = embedder.text_embedder
    embedder.text_embedder = _KeptTextEmbedding(text_embedder, context, embedded)
    try:
        yield
    finally:
        embedder.text_embedder = text_embedder
        for block in blocks:
            block.attn2.processor.kv = block.attn2.processor.kv_fp8 = None
