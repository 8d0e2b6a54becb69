"""Wan's attention query/key preparation (RMSNorm over all heads, then RoPE) as one pass over memory.

Per block and step, diffusers' Wan attention runs ``norm_q``/``norm_k`` (an RMSNorm over the full
``heads * head_dim`` row), then its interleaved-pair RoPE, then (for cuDNN) a copy into the
[B, heads, L, head_dim] layout. Compiled, that is several passes over each [B, L, d] tensor; at the
released shapes they took 3.7 ms of a 68 ms step on an H100 (`docs/performance.md`).

:func:`norm_rope` does all of it in one read and one write: a Triton kernel on CUDA, one program per
token row, computing in float32 and writing bf16 straight into the heads-major layout.
:func:`norm_rope_reference` is the same computation in PyTorch (the CPU path, and the tests' oracle).
Inside ``torch.compile`` the kernel is a ``torch.library.triton_op``, so the graph stays whole.

The RoPE tables are the ones diffusers' ``WanRotaryPosEmbed`` returns, [1, L, 1, head_dim]
with each value repeated per pair; the kernel reads them in place (pair i: cos at 2i, sin at 2i + 1,
as diffusers' processor does).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:        # CPU-only installs: the PyTorch path below
    triton = None


def norm_rope_reference(x: torch.Tensor, weight: torch.Tensor, eps: float, heads: int,
                        freqs_cos: torch.Tensor | None = None, freqs_sin: torch.Tensor | None = None) -> torch.Tensor:
    """RMSNorm of ``x`` [B, L, d] over d, times ``weight``, then (with tables) RoPE on each head's
    interleaved pairs; returns [B, heads, L, d / heads] contiguous, in ``x``'s dtype."""
    y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    y = y.unflatten(-1, (heads, -1, 2))                                   # [B, L, H, half, 2]
    if freqs_cos is not None:
        length, head_dim = x.shape[1], x.shape[2] // heads
        c = freqs_cos.reshape(length, head_dim)[None, :, None, 0::2].float()      # [1, L, 1, half]
        s = freqs_sin.reshape(length, head_dim)[None, :, None, 1::2].float()
        even, odd = y[..., 0], y[..., 1]
        y = torch.stack((even * c - odd * s, even * s + odd * c), dim=-1)
    return y.flatten(-2).transpose(1, 2).contiguous().to(x.dtype)


if triton is not None:
    @triton.jit
    def _norm_rope_kernel(x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr, L, stride_b, stride_l, eps,
                          H: tl.constexpr, H_POW2: tl.constexpr, HEAD_DIM: tl.constexpr, ROPE: tl.constexpr):
        row = tl.program_id(0)                    # one token row: batch b, position l
        b = row // L
        pos = row % L
        h = tl.arange(0, H_POW2)[:, None]
        j = tl.arange(0, HEAD_DIM)[None, :]
        mask = (h < H) & (j < HEAD_DIM)
        x = tl.load(x_ptr + b * stride_b + pos * stride_l + h * HEAD_DIM + j, mask=mask, other=0.0).to(tl.float32)
        ms = tl.sum(tl.sum(x * x, axis=1), axis=0) / (H * HEAD_DIM)
        w = tl.load(w_ptr + h * HEAD_DIM + j, mask=mask, other=0.0).to(tl.float32)
        y = x * tl.rsqrt(ms + eps) * w
        if ROPE:
            even, odd = tl.split(tl.reshape(y, (H_POW2, HEAD_DIM // 2, 2)))
            i = tl.arange(0, HEAD_DIM // 2)[None, :]
            c = tl.load(cos_ptr + pos * HEAD_DIM + 2 * i).to(tl.float32)
            s = tl.load(sin_ptr + pos * HEAD_DIM + 2 * i + 1).to(tl.float32)
            y = tl.reshape(tl.join(even * c - odd * s, even * s + odd * c), (H_POW2, HEAD_DIM))
        out = out_ptr + ((b * H + h) * L + pos) * HEAD_DIM + j
        tl.store(out, y.to(out_ptr.dtype.element_ty), mask=mask)

    @torch.library.triton_op("revise::norm_rope", mutates_args=())
    def _norm_rope_op(x: torch.Tensor, weight: torch.Tensor, eps: float, heads: int,
                      cos: torch.Tensor, sin: torch.Tensor, rope: bool) -> torch.Tensor:
        batch, length, dim = x.shape
        head_dim = dim // heads
        out = torch.empty(batch, heads, length, head_dim, device=x.device, dtype=x.dtype)
        torch.library.wrap_triton(_norm_rope_kernel)[(batch * length,)](
            x, weight, cos, sin, out, length, x.stride(0), x.stride(1), eps,
            H=heads, H_POW2=triton.next_power_of_2(heads), HEAD_DIM=head_dim, ROPE=rope, num_warps=4)
        return out


def kernel_applies(x: torch.Tensor, heads: int, freqs_cos: torch.Tensor | None = None,
                   freqs_sin: torch.Tensor | None = None) -> bool:
    """Whether :func:`norm_rope` runs the Triton kernel: CUDA (or Triton's interpreter), ``x`` with a
    dense last dimension and a power-of-two head size, contiguous tables."""
    head_dim = x.shape[-1] // heads
    tables_ok = freqs_cos is None or all(t.is_contiguous() and t.numel() == x.shape[1] * head_dim
                                         for t in (freqs_cos, freqs_sin))
    return (triton is not None and x.stride(-1) == 1 and head_dim & (head_dim - 1) == 0 and head_dim >= 2
            and tables_ok and (x.is_cuda or _interpreting()))


def _interpreting() -> bool:
    import os
    return os.environ.get("TRITON_INTERPRET") == "1"


def norm_rope(x: torch.Tensor, weight: torch.Tensor, eps: float, heads: int,
              freqs_cos: torch.Tensor | None = None, freqs_sin: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`norm_rope_reference`, in one kernel where :func:`kernel_applies`."""
    if not kernel_applies(x, heads, freqs_cos, freqs_sin):
        return norm_rope_reference(x, weight, eps, heads, freqs_cos, freqs_sin)
    rope = freqs_cos is not None
    if not rope:                                   # unused by the kernel; the op's schema wants tensors
        freqs_cos = freqs_sin = weight
    return _norm_rope_op(x, weight, float(eps), heads, freqs_cos, freqs_sin, rope)
