"""An experiment (not used by revise): the FP8 block's LayerNorms with their quantization in one hand-written pass.

Each Wan block normalises its hidden states three times, and with FP8 linears (``fp8.py``) each norm's
output is quantized row by row for the next matmul: norm1 (then shift/scale by the timestep) before
Q/K/V; the gated residual of self-attention, then norm2 (affine) before the cross-attention query;
the residual of cross-attention, then norm3 (modulated) before the feed-forward. Compiled, Inductor
fuses each into one persistent reduction, but gives each 1536-value row a whole program of 8-16 warps:
three block-wide reductions a row (mean, variance, largest magnitude), each a barrier, leave it bound
by latency, not memory. On an H100 at the released shapes they took 41, 42 and 53 us a call against
14, 32 and 32 us at memory speed (the FP8 loop's profile, 2026-12-07 run 7 in `docs/performance.md`).

:func:`norm_quantize` does one of them as a Triton kernel with few warps a row, so more rows are in
flight (``benchmarks/fp8_kernel_configs.py`` times it against Inductor's fusion): optionally ``x + residual * gate`` (rounded to ``x``'s dtype and written back, as the block's
``.type_as``), LayerNorm in float32 (optionally affine), optionally ``* (1 + scale) + shift``, rounded to
``x``'s dtype, then quantized row by row as :func:`fp8.quantize_rows`. :func:`norm_quantize_reference`
is the same in PyTorch. Bit-exact with it in Triton's interpreter; on an H100 (2026-12-08) within one
e4m3 step on 2-4% of the bytes, and the hidden states within float32 rounding (a fused multiply-add).

Measured on an H100 (`benchmarks/results/fp8_kernel_configs_issue24_h100_8.log`), us a call, Inductor's
fusion against this kernel at its best warp count: norm1 33.0 against 25.1 (1 warp), norm2 41.9 against
39.3 (8 warps), norm3 40.8 against 39.1 (8 warps). At most 12 us a block, 0.015 s of the 40-step loop:
not worth replacing the blocks' compiled forward for, so revise keeps Inductor's fusion.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from revise.models.fp8 import E4M3, quantize_rows  # noqa: E402
from revise.models.triton_e4m3 import triton_runs_on  # noqa: E402

WARPS: int | None = None        # warps a program; None: the default below (benchmarks/fp8_kernel_configs.py)
DEFAULT_WARPS = 2

try:
    import triton
    import triton.language as tl
except ImportError:        # no Triton: the PyTorch reference only
    triton = None
else:
    from revise.models.triton_e4m3 import e4m3_store_bits, native_cast


def norm_quantize_reference(x: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                            gate: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                            bias: torch.Tensor | None = None, scale: torch.Tensor | None = None,
                            shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` [B, L, d]; ``residual`` like it; ``gate``, ``scale``, ``shift`` float32 [B, 1, d]; ``weight``,
    ``bias`` [d]. Returns (the new hidden states in ``x``'s dtype: ``x`` itself without a residual,
    e4m3 rows [B*L, d], float32 row scales [B*L, 1])."""
    if residual is not None:
        x = (x.float() + (residual.float() * gate if gate is not None else residual.float())).to(x.dtype)
    y = F.layer_norm(x.float(), (x.shape[-1],), weight.float() if weight is not None else None,
                     bias.float() if bias is not None else None, eps)
    if scale is not None:
        y = y * (1 + scale) + shift
    q, s = quantize_rows(y.to(x.dtype).reshape(-1, x.shape[-1]))
    return x, q, s


if triton is not None:
    @triton.jit
    def _round(y, DTYPE: tl.constexpr):
        """float32 ``y`` rounded to the nearest ``DTYPE`` value (ties to even), as float32. bf16 by
        integer arithmetic on the bits, which Triton's interpreter would otherwise truncate; float32 as it
        is; other types by Triton's cast."""
        if DTYPE == tl.bfloat16:
            bits = y.to(tl.int32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
            return bits.to(tl.float32, bitcast=True)
        elif DTYPE == tl.float32:
            return y
        else:
            return y.to(DTYPE).to(tl.float32)

    @triton.jit
    def _norm_quantize_kernel(x_ptr, r_ptr, gate_ptr, w_ptr, b_ptr, scale_ptr, shift_ptr, x_out_ptr, q_ptr, s_ptr,
                              L, N, stride_mod, eps, BLOCK: tl.constexpr, RESIDUAL: tl.constexpr,
                              GATE: tl.constexpr, AFFINE: tl.constexpr, MODULATE: tl.constexpr,
                              NATIVE: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)           # one token row of batch row // L
        mod = (row // L) * stride_mod
        cols = tl.arange(0, BLOCK)
        mask = cols < N
        dtype = x_ptr.dtype.element_ty
        xf = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
        if RESIDUAL:
            r = tl.load(r_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
            if GATE:
                r = r * tl.load(gate_ptr + mod + cols, mask=mask, other=0.0)
            xf = _round(xf + r, dtype)                 # the new hidden states, in x's dtype
            tl.store(x_out_ptr + row * N + cols, xf.to(dtype), mask=mask)
        mean = tl.sum(xf, axis=0) / N
        d = tl.where(mask, xf - mean, 0.0)
        y = d * tl.rsqrt(tl.sum(d * d, axis=0) / N + eps)
        if AFFINE:
            y = y * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32) \
                + tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        if MODULATE:
            y = y * (1.0 + tl.load(scale_ptr + mod + cols, mask=mask, other=0.0)) \
                + tl.load(shift_ptr + mod + cols, mask=mask, other=0.0)
        y = _round(y, dtype)                           # the block rounds the norm's output to its dtype
        s = tl.maximum(tl.max(tl.abs(y), axis=0), 1e-12) / 448.0
        tl.store(s_ptr + row, s)
        tl.store(q_ptr + row * N + cols, e4m3_store_bits(y / s, NATIVE), mask=mask)

    @torch.library.triton_op("revise_bench::norm_quantize", mutates_args=())
    def _norm_quantize_op(x: torch.Tensor, residual: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float,
                          flags: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(new hidden states, or an empty tensor without a residual; e4m3 bits (uint8) [rows, d];
        float32 scales [rows, 1]). ``flags``: residual, gate, affine, modulate (0 or 1 each)."""
        has_residual, has_gate, affine, modulate = (bool(f) for f in flags)
        batch, length, n = x.shape
        rows = batch * length
        x_out = torch.empty_like(x) if has_residual else x.new_empty(0)
        q = torch.empty(rows, n, device=x.device, dtype=torch.uint8)
        s = torch.empty(rows, 1, device=x.device, dtype=torch.float32)
        stride_mod = scale.stride(0) if modulate else (gate.stride(0) if has_gate else 0)
        torch.library.wrap_triton(_norm_quantize_kernel)[(rows,)](
            x, residual, gate, weight, bias, scale, shift, x_out, q, s, int(length), int(n), stride_mod, eps,
            BLOCK=triton.next_power_of_2(int(n)), RESIDUAL=has_residual, GATE=has_gate, AFFINE=affine,
            MODULATE=modulate, NATIVE=native_cast(x), num_warps=WARPS or DEFAULT_WARPS)
        return x_out, q, s


def kernel_applies(x: torch.Tensor, residual: torch.Tensor | None = None, *mods: torch.Tensor | None) -> bool:
    """Whether :func:`norm_quantize` runs the Triton kernel: CUDA (or Triton's interpreter), contiguous
    [B, L, d] ``x`` and ``residual`` with d up to 8192, ``mods`` (gate, weight, bias, scale, shift) [d] or
    [B, 1, d] with a dense last dimension (those of [B, 1, d] with one batch stride), no gradient."""
    given = [t for t in mods if t is not None]
    per_batch = {t.stride(0) for t in given if t.dim() == 3}
    mods_ok = len(per_batch) <= 1 and all(
        t.stride(-1) == 1 and (t.dim() == 1 or (t.dim() == 3 and t.shape[1] == 1)) for t in given)
    res_ok = residual is None or (residual.shape == x.shape and residual.is_contiguous())
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, *given, *([residual] if residual is not None else [])))
    return (x.dim() == 3 and x.is_contiguous() and 0 < x.shape[-1] <= 8192 and res_ok and mods_ok and not grad
            and triton_runs_on(x))


def norm_quantize(x: torch.Tensor, eps: float, residual: torch.Tensor | None = None, gate: torch.Tensor | None = None,
                  weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`norm_quantize_reference`, in one kernel launch where :func:`kernel_applies`."""
    if residual is not None and not residual.is_contiguous():
        residual = residual.contiguous()
    if ((weight is None) != (bias is None) or (scale is None) != (shift is None)
            or not kernel_applies(x, residual, gate, weight, bias, scale, shift)):
        return norm_quantize_reference(x, eps, residual, gate, weight, bias, scale, shift)
    flags = [int(t is not None) for t in (residual, gate, weight, scale)]
    dummy = x.new_empty(0)
    x_out, q, s = _norm_quantize_op(x, *(t if t is not None else dummy for t in (residual, gate, weight, bias, scale, shift)),
                                    float(eps), flags)
    return (x_out if residual is not None else x), q.view(E4M3), s
