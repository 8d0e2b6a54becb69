"""Wan attention that hands cuDNN its q, k, v as strided views instead of copies.

diffusers' ``_native_cudnn`` backend makes q, k and v contiguous in [B, heads, L, head_dim] before
every call (``x.permute(0, 2, 1, 3).contiguous()``): at the released shapes that is a copy of v (a
slice of the fused Q/K/V projection) and of the cross-attention query in every block and step
(`docs/performance.md`). :func:`attend` calls PyTorch's SDPA with the cuDNN kernel on the
[B, heads, L, head_dim] views of the [B, L, heads, head_dim] tensors, whose last dimension is
dense; with any other backend it is diffusers' ``dispatch_attention_fn`` unchanged.

:class:`StridedSelfAttnProcessor` is diffusers' ``WanAttnProcessor`` for self-attention (Q/K/V,
q/k RMSNorm, RoPE, attention, output projection) with :func:`attend`; it defers to the stock
processor for cross-attention, image context, masks and context parallelism.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import WanAttnProcessor
from torch.nn.attention import SDPBackend, sdpa_kernel


def is_cudnn(backend) -> bool:
    return getattr(backend, "value", backend) == "_native_cudnn"


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, backend=None) -> torch.Tensor:
    """Attention of [B, L, heads, head_dim] inputs (any strides, dense last dimension) -> [B, L, heads, head_dim]."""
    if is_cudnn(backend):
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            out = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2))
        return out.transpose(1, 2)
    return dispatch_attention_fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 backend=backend, parallel_config=None)


def rotate(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Wan's RoPE on [B, L, heads, head_dim] (interleaved pairs), as diffusers' processor applies it."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class StridedSelfAttnProcessor(WanAttnProcessor):
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if (encoder_hidden_states is not None or attention_mask is not None or attn.add_k_proj is not None
                or self._parallel_config is not None):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        if getattr(attn, "fused_projections", False):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            query, key = rotate(query, *rotary_emb), rotate(key, *rotary_emb)
        out = attend(query, key, value, self._attention_backend).flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def use_strided_attention(transformer) -> None:
    """Every block's self-attention gets :class:`StridedSelfAttnProcessor`, and its cross-attention a
    ``ContextKVProcessor`` that attends the same way (backends kept)."""
    from .context_kv import ContextKVProcessor

    for block in transformer.blocks:
        for attn, cls in ((block.attn1, StridedSelfAttnProcessor), (block.attn2, ContextKVProcessor)):
            old = attn.processor
            new = old if isinstance(old, cls) else cls()
            new._attention_backend = getattr(old, "_attention_backend", None)
            new._parallel_config = getattr(old, "_parallel_config", None)
            if cls is ContextKVProcessor:
                new.strided = True
            attn.set_processor(new)
