"""The attention primitives that the prepared self-attention (``attention_inputs.py``) and the
cached-context cross-attention (``context_kv.py``) share: q/k RMSNorm + RoPE in one pass
(:func:`prepare`) and attention of token-major inputs that takes cuDNN's kernel without copies
(:func:`attend`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .norm_rope import norm_rope


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


def has_rms_norms(attn) -> bool:
    """Whether ``attn`` normalises q and k with an affine RMSNorm across heads (Wan's ``qk_norm``)."""
    return all(isinstance(n, torch.nn.RMSNorm) and n.weight is not None for n in (attn.norm_q, attn.norm_k))


def prepare(x: torch.Tensor, norms, heads: int, rotary_emb=None) -> tuple[torch.Tensor, ...]:
    """``x`` [B, L, G*d] holds G = len(norms) projections side by side (q, or q and k): each one
    normed by its RMSNorm, RoPE'd when tables are given, [B, L, heads, head_dim]. The norms share
    their eps (Wan's do)."""
    eps = norms[0].eps if norms[0].eps is not None else torch.finfo(x.dtype).eps
    return norm_rope(x, [n.weight for n in norms], eps, heads, *(rotary_emb or ()))
