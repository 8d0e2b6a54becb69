"""The attention primitives that the prepared self-attention (``attention_inputs.py``) and the
cached-context cross-attention (``context_kv.py``) share: q/k RMSNorm + RoPE in one pass
(:func:`prepare`) and attention of token-major inputs that takes cuDNN's kernel without copies
(:func:`attend`); with FP8 attention, q and k prepared straight into e4m3 at a static scale
(:func:`static_fp8_scales`) and cuDNN's FP8 attention feeding the FP8 output projection
(:func:`attend_fp8`), self-attention's inputs padded to whole tiles (:func:`padded_length`), V's
scale from a bound rather than a pass over V (:func:`value_descale`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .fp8 import E4M3_MAX, output_row_bounds
from .fp8_attention import fp8_attention
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


# FP8 self-attention's q, k, v padded to a multiple of this many tokens (0: not padded). In the H100
# loop of run 9c (2026-12-08) it took 1.786 s to 1.777 s at the same error (`docs/performance.md`).
PAD_MULTIPLE = 128


def padded_length(length: int) -> int:
    """The token count FP8 self-attention stores its inputs at: ``length`` rounded up to
    :data:`PAD_MULTIPLE`, the real rows masked (``fp8_attention``'s padding mask). cuDNN's FP8 kernel
    took 298.5 us a call for 4400 real tokens in 4480 against 328.1 us at 4400, with the same output
    bytes (H100, 2026-12-08)."""
    return -(-length // PAD_MULTIPLE) * PAD_MULTIPLE if PAD_MULTIPLE else length


# FP8 self-attention's V quantized at a scale from a bound on its values (:func:`value_descale`) instead
# of its largest magnitude, which takes a pass over V of its own (16 us a block call in the H100 loop of
# 2026-12-07). In the H100 loop of run 9c it took 1.777 s to 1.754 s at the same error.
VALUE_BOUND = True


def value_descale(x: torch.Tensor, bound_weights: torch.Tensor) -> torch.Tensor:
    """The e4m3 descale (float32 []) for the output of the linear ``bound_weights`` describes
    (``fp8.output_bound_weights``) on input ``x`` [..., K]: the largest of its rows' bounds
    (``fp8.output_row_bounds``, Cauchy-Schwarz) maps to 448. Its reduction over the rows' squares is
    meant for ``torch.compile`` to fuse into the pass that already reads ``x`` (its row quantization),
    where V's own largest magnitude takes a pass over V (whether Inductor fuses it on a GPU is what
    ``benchmarks/fp8_loop_variants.py graph+pad+vbound`` shows). With the shipped mini model's trained
    weights the bound was 1.9-4.3x V's largest magnitude (`docs/performance.md`), well within e4m3's
    range."""
    return output_row_bounds(x, bound_weights).amax().clamp(min=1e-12) / E4M3_MAX


def has_rms_norms(attn) -> bool:
    """Whether ``attn`` normalises q and k with an affine RMSNorm across heads (Wan's ``qk_norm``)."""
    return all(isinstance(n, torch.nn.RMSNorm) and n.weight is not None for n in (attn.norm_q, attn.norm_k))


def prepare(x: torch.Tensor, norms, heads: int, rotary_emb=None, out_scales=None,
            pad_to: int | None = None) -> tuple[torch.Tensor, ...]:
    """``x`` [B, L, G*d] holds G = len(norms) projections side by side (q, or q and k): each one
    normed by its RMSNorm, RoPE'd when tables are given, [B, L, heads, head_dim]; with ``out_scales``
    (float32, one element per projection) times its scale in e4m3; with ``pad_to``, [B, pad_to, heads,
    head_dim], zeros past L. The norms share their eps (Wan's do)."""
    eps = norms[0].eps if norms[0].eps is not None else torch.finfo(x.dtype).eps
    return norm_rope(x, [n.weight for n in norms], eps, heads, *(rotary_emb or (None, None)), out_scales=out_scales,
                     pad_to=pad_to)


def static_fp8_scales(norms) -> torch.Tensor:
    """(scale, ...) then (descale, ...) [2G] for the e4m3 outputs of :func:`prepare` with these RMSNorms:
    an RMS-normed row of width n has no element above sqrt(n) in magnitude, nor after its weight
    above sqrt(n) * max|weight|, and RoPE rotates pairs, so that bound, mapped to e4m3's largest value,
    never overflows, and needs no pass over the data to find."""
    bounds = torch.stack([n.weight.detach().float().abs().max() * n.weight.numel() ** 0.5 for n in norms])
    return torch.cat([E4M3_MAX / bounds, bounds / E4M3_MAX])


def attend_fp8(attn, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, descale_q: torch.Tensor,
               descale_k: torch.Tensor, descale_v: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """FP8 attention of e4m3 [B, L, heads, head_dim] inputs, its e4m3 output scaled as v was, into
    the FP8 output projection (an ``Fp8Linear``): [B, L, d] in the layer's dtype. ``length`` (< L):
    the inputs are padded self-attention inputs, real up to there (queries and keys alike); the
    projection runs on every row, and the real rows are returned ([B, length, d], a view)."""
    padded = length is not None and length < query.shape[1]
    out = fp8_attention(query, key, value, descale_q, descale_k, descale_v, 1.0 / descale_v,
                        valid_q=length if padded else 0, valid_kv=length if padded else 0)
    out = attn.to_out[1](attn.to_out[0].forward_quantized(out.flatten(2, 3), descale_v))
    return out[:, :length] if padded else out
