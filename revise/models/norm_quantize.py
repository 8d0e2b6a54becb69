"""A DiT block's residual add, LayerNorm, modulation and the next FP8 matmul's input quantization in one pass.

In an FP8 Wan block (``fp8.py``) each of the three matmul inputs is made the same way: the residual
stream takes the previous sub-layer's output (``h + out * gate``, or ``h + out``), is LayerNormed in
float32 (with the norm's affine weights, or modulated by the timestep's ``1 + scale`` and ``shift``),
rounded to bf16, then quantized row by row to e4m3 (``fp8.quantize_rows``). Compiled, Inductor fuses
each site into one kernel, but on an H100 at the released shapes they ran at 1.3-2.4x the time their
bytes take at memory speed (33, 44 and 55 us a call, 4.7 ms of a 46 ms step; 2026-12-07).

:func:`norm_quantize` is that computation as one Triton kernel: each program holds :func:`launch_config`'s
rows in registers, reads the stream (and the sub-layer's output) once and writes the new stream and
the e4m3 rows with their scales. A first version, one row a program, ran 87-90 us a call alone (timed
with a host sync after each call) and failed to build inside Inductor, where the float eps arrived
as a float64 scalar; eps is now a compile-time constant, and several rows share a program's loads
and reductions. Neither change is timed on a GPU yet, so ``enable_fp8(fused_norms=True)`` asks for
it (``benchmarks/fp8_kernel_configs.py`` times it against Inductor's kernels, and
``benchmarks/fp8_loop_variants.py fused_norms`` in the loop). :func:`norm_quantize_reference` is the
same in PyTorch, op for op as diffusers' ``WanTransformerBlock`` computes it (the CPU path, and the
tests' oracle). ``fp8_block.py`` calls it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fp8 import E4M3, quantize_rows
from .triton_e4m3 import triton_runs_on

try:
    import triton
    import triton.language as tl
except ImportError:        # CPU-only installs: the PyTorch path
    triton = None
else:
    from .triton_e4m3 import e4m3_store_bits, native_cast


def norm_quantize_reference(h: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                            gate: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                            bias: torch.Tensor | None = None, scale: torch.Tensor | None = None,
                            shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``h`` [B, L, D] the residual stream; with ``residual`` (the sub-layer's output, [B, L, D]) it is
    first ``h + residual * gate`` in float32 (``gate`` [B, 1, D]), or ``h + residual`` without a gate,
    in ``h``'s dtype. Then ``LayerNorm(eps, weight, bias)`` in float32, times ``1 + scale`` plus
    ``shift`` (each [B, 1, D]) when given, in ``h``'s dtype, quantized row by row.
    Returns (the stream, e4m3 rows [B*L, D], float32 scales [B*L, 1])."""
    if residual is not None:
        h = (h.float() + residual * gate).type_as(h) if gate is not None else h + residual
    y = F.layer_norm(h.float(), h.shape[-1:], weight.float() if weight is not None else None,
                     bias.float() if bias is not None else None, eps)
    if scale is not None:
        y = y * (1 + scale) + shift
    q, s = quantize_rows(y.type_as(h).reshape(-1, h.shape[-1]))
    return h, q, s


if triton is not None:
    @triton.jit
    def _rounded(x, DTYPE: tl.constexpr):
        """float32 ``x`` rounded to ``DTYPE`` (to nearest, ties to even), as float32. bf16 by integer
        arithmetic on the bits: Triton's interpreter (the CPU tests) truncates when it casts to bf16."""
        if DTYPE == tl.bfloat16:
            bits = x.to(tl.int32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
            return bits.to(tl.float32, bitcast=True)
        else:
            return x.to(DTYPE).to(tl.float32)

    @triton.jit
    def _norm_quantize_kernel(h_ptr, r_ptr, gate_ptr, w_ptr, b_ptr, scale_ptr, shift_ptr, out_ptr, q_ptr, s_ptr,
                              M, L, D, gate_stride, mod_stride, EPS: tl.constexpr, ROWS: tl.constexpr,
                              BLOCK: tl.constexpr, RESIDUAL: tl.constexpr, GATE: tl.constexpr,
                              AFFINE: tl.constexpr, MODULATE: tl.constexpr, NATIVE: tl.constexpr):
        rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)    # rows of [B*L, D]
        b = (rows // L)[:, None]                  # each row's batch index picks its gate/scale/shift
        cols = tl.arange(0, BLOCK)[None, :]
        mask = (rows < M)[:, None] & (cols < D)
        at = rows[:, None] * D + cols
        x = tl.load(h_ptr + at, mask=mask, other=0.0).to(tl.float32)
        if RESIDUAL:
            r = tl.load(r_ptr + at, mask=mask, other=0.0).to(tl.float32)
            if GATE:
                r = r * tl.load(gate_ptr + b * gate_stride + cols, mask=mask, other=0.0)
            x = _rounded(x + r, out_ptr.dtype.element_ty)      # the stream is kept in its dtype
            tl.store(out_ptr + at, x.to(out_ptr.dtype.element_ty), mask=mask)
        mean = tl.sum(x, axis=1) / D
        centred = tl.where(mask, x - mean[:, None], 0.0)
        y = centred * tl.rsqrt(tl.sum(centred * centred, axis=1) / D + EPS)[:, None]
        if AFFINE:
            y = y * tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(tl.float32) \
                + tl.load(b_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
        if MODULATE:
            y = y * (1 + tl.load(scale_ptr + b * mod_stride + cols, mask=mask, other=0.0)) \
                + tl.load(shift_ptr + b * mod_stride + cols, mask=mask, other=0.0)
        y = _rounded(y, out_ptr.dtype.element_ty)            # the matmul's input is in the stream's dtype
        s = tl.maximum(tl.max(tl.abs(tl.where(mask, y, 0.0)), axis=1), 1e-12) / 448.0
        tl.store(s_ptr + rows, s, mask=rows < M)
        tl.store(q_ptr + at, e4m3_store_bits(y / s[:, None], NATIVE), mask=mask)

    @torch.library.triton_op("revise::norm_quantize", mutates_args=())
    def _norm_quantize_op(h: torch.Tensor, residual: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float,
                          has_residual: bool, has_gate: bool, affine: bool,
                          modulate: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the new stream [B, L, D], or an empty tensor without a residual; the e4m3 bits (uint8)
        [B*L, D]; float32 scales [B*L, 1]). Tensor arguments the flags leave unused are placeholders
        (the op's schema wants tensors): the kernel does not read them."""
        batch, length, dim = h.shape
        dim = int(dim)                              # compile-time constants: see fp8_ffn's op
        rows = batch * length
        out = torch.empty_like(h) if has_residual else h.new_empty(0)
        q = torch.empty(rows, dim, device=h.device, dtype=torch.uint8)
        s = torch.empty(rows, 1, device=h.device, dtype=torch.float32)
        block = triton.next_power_of_2(dim)
        per_program, warps = launch_config(block)
        # eps is a compile-time constant: a float argument arrives as a float64 scalar inside Inductor,
        # and would widen the arithmetic it touches to float64 (which the bf16 rounding cannot take)
        torch.library.wrap_triton(_norm_quantize_kernel)[(triton.cdiv(rows, per_program),)](
            h, residual, gate, weight, bias, scale, shift, out if has_residual else h, q, s, rows, length, dim,
            gate.stride(0), scale.stride(0), EPS=float(eps), ROWS=per_program, BLOCK=block, RESIDUAL=has_residual,
            GATE=has_gate, AFFINE=affine, MODULATE=modulate, NATIVE=native_cast(h), num_warps=warps)
        return out, q, s


ROWS: int | None = None       # rows a program and ...
WARPS: int | None = None      # ... warps: None takes launch_config's (benchmarks/fp8_kernel_configs.py sets them)


def launch_config(block: int) -> tuple[int, int]:
    """(rows a program, warps a program) for rows padded to ``block`` lanes."""
    rows = ROWS or max(1, min(4, 4096 // block))
    return rows, WARPS or max(1, min(8, rows * block // 1024))


def kernel_applies(h: torch.Tensor, *tensors: torch.Tensor | None) -> bool:
    """Whether :func:`norm_quantize` runs the Triton kernel: CUDA (or Triton's interpreter), a
    contiguous [B, L, D] stream and residual, modulation rows with a dense last dimension, D <= 16384,
    and no gradient wanted (it has no backward)."""
    given = [t for t in tensors if t is not None]
    return (triton is not None and h.dim() == 3 and h.is_contiguous() and 0 < h.shape[-1] <= 16384
            and all(t.stride(-1) == 1 for t in given)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in (h, *given)))
            and triton_runs_on(h))


def norm_quantize(h: torch.Tensor, eps: float, residual: torch.Tensor | None = None, gate: torch.Tensor | None = None,
                  weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  scale: torch.Tensor | None = None,
                  shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`norm_quantize_reference`, in one kernel launch where :func:`kernel_applies`."""
    if (weight is None) != (bias is None) or (scale is None) != (shift is None):
        raise ValueError("norm_quantize: give weight with bias, and scale with shift")
    if residual is not None and not residual.is_contiguous():
        residual = residual.contiguous()
    if not kernel_applies(h, residual, gate, weight, scale, shift):
        return norm_quantize_reference(h, eps, residual, gate, weight, bias, scale, shift)
    def given(t):                   # a placeholder where the kernel reads nothing
        return h if t is None else t

    stream, q, s = _norm_quantize_op(h, given(residual), given(gate), given(weight), given(bias), given(scale),
                                     given(shift), float(eps), residual is not None, gate is not None,
                                     weight is not None, scale is not None)
    return (stream if residual is not None else h), q.view(E4M3), s
