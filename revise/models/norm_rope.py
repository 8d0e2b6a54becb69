"""Wan's attention query/key preparation (RMSNorm over all heads, then RoPE) as one pass over memory.

Per block and step, diffusers' Wan attention runs ``norm_q``/``norm_k`` (an RMSNorm over the full
``heads * head_dim`` row), then its interleaved-pair RoPE, then (diffusers' cuDNN backend) a copy
into the [B, heads, L, head_dim] layout. Compiled, that is several passes over each [B, L, d] tensor;
at the released shapes they took 3.7 ms of a 68 ms step on an H100 (`docs/performance.md`).

:func:`norm_rope` does all of it in one read and one write: a Triton kernel on CUDA, one program per
token row, computing in float32 and writing [B, L, heads, head_dim] in the input's dtype. cuDNN reads
that through [B, heads, L, head_dim] strides and writes its output in the same token-major order, so
neither side needs a layout copy. Given the fused projection's q and k side by side ([B, L, 2d], two
norms), one launch prepares both: 48 us against 110 us for the compiled diffusers path at the
released shapes (`benchmarks/norm_rope.py`, H100).
With FP8 attention (``fp8_attention.py``) the kernel writes q and k in e4m3, times a static scale,
in the same pass (``triton_e4m3.py``: integer arithmetic on the float's bits, or with ``NATIVE_CAST``
the GPU's own e4m3 conversion; each matches PyTorch's cast).
:func:`norm_rope_reference` is the same computation in PyTorch (the CPU path, and the tests' oracle).
Inside ``torch.compile`` the kernel is a ``torch.library.triton_op``, so the graph stays whole.

The RoPE tables are the ones diffusers' ``WanRotaryPosEmbed`` returns, [1, L, 1, head_dim]
with each value repeated per pair; the kernel reads them in place (pair i: cos at 2i, sin at 2i + 1,
as diffusers' processor does).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .fp8 import E4M3, to_e4m3
from .triton_e4m3 import triton_runs_on

WARPS: int | None = None      # the kernel's warps a program; None: its default (1 for FP8 output, else up to 2;
                              # benchmarks/fp8_loop_variants.py sets it)

try:
    import triton
    import triton.language as tl
except ImportError:        # CPU-only installs: the PyTorch path below
    triton = None
else:
    from .triton_e4m3 import e4m3_store_bits, native_cast


def norm_rope_reference(x: torch.Tensor, weights: Sequence[torch.Tensor], eps: float, heads: int,
                        freqs_cos: torch.Tensor | None = None, freqs_sin: torch.Tensor | None = None,
                        out_scales: torch.Tensor | None = None, pad_to: int | None = None) -> tuple[torch.Tensor, ...]:
    """``x`` [B, L, G*d] holds G = len(weights) groups (q, or q and k) side by side. Each group is
    RMS-normed over its d, times its weight, then (with tables) RoPE'd on each head's interleaved
    pairs; returns G tensors [B, L, heads, d / heads], contiguous, in ``x``'s dtype, or with
    ``out_scales`` (float32, one element per group) times its scale in FP8 e4m3. ``pad_to`` (>= L):
    the tensors are [B, pad_to, heads, d / heads], rows from L on zero (padded attention inputs)."""
    outs = []
    for g, (x_g, weight) in enumerate(zip(x.chunk(len(weights), dim=-1), weights)):
        y = x_g.float() * torch.rsqrt(x_g.float().pow(2).mean(-1, keepdim=True) + eps) * weight.float()
        y = y.unflatten(-1, (heads, -1, 2))                                   # [B, L, H, half, 2]
        if freqs_cos is not None:
            length, head_dim = x_g.shape[1], x_g.shape[2] // heads
            c = freqs_cos.reshape(length, head_dim)[None, :, None, 0::2].float()      # [1, L, 1, half]
            s = freqs_sin.reshape(length, head_dim)[None, :, None, 1::2].float()
            even, odd = y[..., 0], y[..., 1]
            y = torch.stack((even * c - odd * s, even * s + odd * c), dim=-1)
        y = y.flatten(-2).contiguous()
        if pad_to is not None and pad_to > y.shape[1]:
            y = torch.cat([y, y.new_zeros(y.shape[0], pad_to - y.shape[1], *y.shape[2:])], dim=1)
        outs.append(to_e4m3(y, out_scales[g:g + 1]) if out_scales is not None else y.to(x.dtype))
    return tuple(outs)


if triton is not None:
    @triton.jit
    def _normed_rotated(x, w_ptr, c, s, eps, h, j, mask, H: tl.constexpr, H_POW2: tl.constexpr,
                        HEAD_DIM: tl.constexpr, ROPE: tl.constexpr):
        ms = tl.sum(tl.sum(x * x, axis=1), axis=0) / (H * HEAD_DIM)
        y = x * tl.rsqrt((ms + eps).to(tl.float32)) * tl.load(w_ptr + h * HEAD_DIM + j, mask=mask, other=0.0).to(tl.float32)
        if ROPE:
            even, odd = tl.split(tl.reshape(y, (H_POW2, HEAD_DIM // 2, 2)))
            y = tl.reshape(tl.join(even * c - odd * s, even * s + odd * c), (H_POW2, HEAD_DIM))
        return y

    @triton.jit
    def _store(dst, y, scale_ptr, g: tl.constexpr, mask, FP8: tl.constexpr, NATIVE: tl.constexpr):
        if FP8:
            tl.store(dst, e4m3_store_bits(y * tl.load(scale_ptr + g), NATIVE), mask=mask)
        else:
            tl.store(dst, y.to(dst.dtype.element_ty), mask=mask)

    @triton.jit
    def _norm_rope_kernel(x_ptr, w0_ptr, w1_ptr, cos_ptr, sin_ptr, scale_ptr, out_ptr, B, L, L_OUT, stride_b, stride_l,
                          eps, GROUPS: tl.constexpr, H: tl.constexpr, H_POW2: tl.constexpr, HEAD_DIM: tl.constexpr,
                          ROPE: tl.constexpr, FP8: tl.constexpr, NATIVE: tl.constexpr):
        row = tl.program_id(0)                    # one output token row: batch b, position l (< L_OUT)
        b = row // L_OUT
        pos = row % L_OUT
        h = tl.arange(0, H_POW2)[:, None]
        j = tl.arange(0, HEAD_DIM)[None, :]
        mask = (h < H) & (j < HEAD_DIM)
        real = mask & (pos < L)                   # rows from L on are padding: written as zeros
        src = x_ptr + b * stride_b + pos * stride_l + h * HEAD_DIM + j
        x0 = tl.load(src, mask=real, other=0.0).to(tl.float32)
        if GROUPS == 2:                           # k, issued before any arithmetic on q
            x1 = tl.load(src + H * HEAD_DIM, mask=real, other=0.0).to(tl.float32)
        c = 0.0
        s = 0.0
        if ROPE:
            i = tl.arange(0, HEAD_DIM // 2)[None, :]
            c = tl.load(cos_ptr + pos * HEAD_DIM + 2 * i, mask=(i >= 0) & (pos < L), other=0.0).to(tl.float32)
            s = tl.load(sin_ptr + pos * HEAD_DIM + 2 * i + 1, mask=(i >= 0) & (pos < L), other=0.0).to(tl.float32)
        dst = out_ptr + ((b * L_OUT + pos) * H + h) * HEAD_DIM + j
        y0 = _normed_rotated(x0, w0_ptr, c, s, eps, h, j, mask, H, H_POW2, HEAD_DIM, ROPE)
        _store(dst, y0, scale_ptr, 0, mask, FP8, NATIVE)
        if GROUPS == 2:
            y1 = _normed_rotated(x1, w1_ptr, c, s, eps, h, j, mask, H, H_POW2, HEAD_DIM, ROPE)
            _store(dst + B * H * L_OUT * HEAD_DIM, y1, scale_ptr, 1, mask, FP8, NATIVE)

    @torch.library.triton_op("revise::norm_rope", mutates_args=())
    def _norm_rope_op(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, eps: float, heads: int, groups: int,
                      cos: torch.Tensor, sin: torch.Tensor, rope: bool, scales: torch.Tensor, fp8: bool,
                      pad_to: int) -> torch.Tensor:
        """[groups, B, max(L, pad_to), heads, head_dim] in ``x``'s dtype, or with ``fp8`` the bits of e4m3
        values (uint8) of each group times its element of ``scales``; rows from L on are zeros."""
        batch, length, width = x.shape
        head_dim = int(width) // groups // heads        # compile-time constants: see fp8_ffn's op
        out_length = max(length, pad_to)
        out = torch.empty(groups, batch, out_length, heads, head_dim, device=x.device,
                          dtype=torch.uint8 if fp8 else x.dtype)
        h_pow2 = triton.next_power_of_2(heads)
        # FP8 output: 1 warp a program. In the FP8 loop on an H100 at the released shapes (run 6 in
        # docs/performance.md) the kernel took 0.060 s of 40 steps at 1 warp, in two rows, against
        # 0.072-0.073 s at 2 and 0.067 s at 4. bf16 output: 2 warps for 16 x 128 lanes (timed apart
        # only, benchmarks/fp8_kernel_configs.py).
        warps = WARPS or (1 if fp8 else max(1, min(2, h_pow2 * head_dim // 1024)))
        torch.library.wrap_triton(_norm_rope_kernel)[(batch * out_length,)](
            x, w0, w1, cos, sin, scales, out, batch, length, out_length, x.stride(0), x.stride(1), eps,
            GROUPS=groups, H=heads, H_POW2=h_pow2, HEAD_DIM=head_dim, ROPE=rope, FP8=fp8, NATIVE=native_cast(x),
            num_warps=warps)
        return out


def kernel_applies(x: torch.Tensor, heads: int, groups: int = 1, freqs_cos: torch.Tensor | None = None,
                   freqs_sin: torch.Tensor | None = None) -> bool:
    """Whether :func:`norm_rope` runs the Triton kernel: CUDA (or Triton's interpreter), ``x`` with a
    dense last dimension, one or two groups with a power-of-two head size, contiguous tables."""
    head_dim = x.shape[-1] // groups // heads
    tables_ok = freqs_cos is None or all(t.is_contiguous() and t.numel() == x.shape[1] * head_dim
                                         for t in (freqs_cos, freqs_sin))
    return (groups in (1, 2) and x.stride(-1) == 1 and head_dim >= 2
            and head_dim & (head_dim - 1) == 0 and tables_ok and triton_runs_on(x))


def norm_rope(x: torch.Tensor, weights: Sequence[torch.Tensor], eps: float, heads: int,
              freqs_cos: torch.Tensor | None = None, freqs_sin: torch.Tensor | None = None,
              out_scales: torch.Tensor | None = None, pad_to: int | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`norm_rope_reference`, in one kernel launch where :func:`kernel_applies` and no gradient
    is wanted (the kernel has no backward: training takes the PyTorch path)."""
    wants_grad = torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights))
    if wants_grad or not kernel_applies(x, heads, len(weights), freqs_cos, freqs_sin):
        return norm_rope_reference(x, weights, eps, heads, freqs_cos, freqs_sin, out_scales, pad_to)
    rope, fp8 = freqs_cos is not None, out_scales is not None
    w0, w1 = weights[0], weights[-1]
    if not rope:                                   # unused by the kernel; the op's schema wants tensors
        freqs_cos = freqs_sin = w0
    scales = out_scales if fp8 else w0
    out = _norm_rope_op(x, w0, w1, float(eps), heads, len(weights), freqs_cos, freqs_sin, rope, scales, fp8,
                        int(pad_to or 0))
    return tuple((out.view(E4M3) if fp8 else out).unbind(0))
