"""float32 -> FP8 e4m3 inside Triton kernels: the GPU's own conversion, or integer arithmetic on the bits.

The kernels that write e4m3 (``norm_rope.py``, ``fp8_ffn.py``) store the bits as uint8, and the caller
views the result as ``torch.float8_e4m3fn``. :func:`e4m3_store_bits` picks the encoding by ``NATIVE``:

- with ``NATIVE_CAST`` (the default) on a GPU, Triton's own cast (``tl.float8e4nv``: one conversion
  instruction per two values, saturated first at +-448). Its input must be float32: compiled by
  Inductor (torch 2.11), a kernel's Python float arguments arrive as float64 scalars and widen what
  they touch, and Triton 3.6 has no float64 -> e4m3 conversion ("Unsupported conversion from f64 to f8E4M3FN": the build failure
  an H100 showed inside Inductor, while the same kernel ran eagerly). Cast to float32 it matched
  PyTorch's cast in every byte, eager and compiled (`benchmarks/triton_native_fp8_cast.py`, H100,
  2026-12-07).
- otherwise, and always in Triton's interpreter (the CPU tests), :func:`e4m3_bits`, bit-exact with
  PyTorch's saturating cast (``tests/test_norm_rope.py`` checks every e4m3 value, the ties between
  them, subnormals and signed zeros); the interpreter's own float8 conversion rounds differently. It
  costs about 20 integer operations a value, which made the feed-forward's GELU + quantization kernel
  compute-bound.

``NATIVE_CAST`` is on by default: in the FP8 denoising loop on an H100 it took the GELU + quantization
kernel from 4.0 to 3.0 ms a step and the loop from 2.195 to 1.991 s, with the same final latents to
three digits (`benchmarks/fp8_loop_variants.py base native_e4m3`, 2026-12-07). :func:`native_cast`
says which encoding a launch on a tensor takes. ``triton`` is None where Triton is not installed.
"""

from __future__ import annotations

import os

import torch

from .fp8 import E4M3_MAX

NATIVE_CAST = True          # the GPU's conversion on CUDA (False: the integer encoder everywhere)


def triton_runs_on(t: torch.Tensor) -> bool:
    """Whether a Triton kernel can run on ``t``: Triton is installed and ``t`` is on CUDA, or Triton's
    interpreter is on (``TRITON_INTERPRET=1``: the CPU tests)."""
    return triton is not None and (t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")


def native_cast(t: torch.Tensor) -> bool:
    """Whether a kernel launched on ``t`` encodes e4m3 with Triton's own cast: on CUDA with
    ``NATIVE_CAST`` on; in Triton's interpreter (CPU tensors) never."""
    return NATIVE_CAST and t.is_cuda


try:
    import triton
    import triton.language as tl
except ImportError:        # CPU-only installs: the callers take their PyTorch paths
    triton = None


if triton is not None:
    E4M3_MAX_F = tl.constexpr(E4M3_MAX)

    @triton.jit
    def e4m3_bits(y):
        """float32 -> the bits of the nearest e4m3 value (ties to even), saturating at +-448, as int32
        (0..255)."""
        y = y.to(tl.float32)          # a float64 scalar operand (Inductor passes Python floats so) widens y
        bits = y.to(tl.int32, bitcast=True)
        sign = (bits >> 24) & 0x80
        a = tl.minimum(tl.abs(y), E4M3_MAX_F)
        abits = a.to(tl.int32, bitcast=True)
        # normal (|y| >= 2**-6): keep the exponent and 3 mantissa bits, rounding the 20 dropped bits to
        # nearest even, then rebias the exponent from float32's 127 to e4m3's 7
        normal = ((abits + 0x7FFFF + ((abits >> 20) & 1)) >> 20) - (120 << 3)
        # subnormal: multiples of 2**-9; adding 2**23 rounds the product to an integer, ties to even
        sub = ((a * 512.0 + 8388608.0) - 8388608.0).to(tl.int32)
        return tl.where(a < 0.015625, sub, normal) | sign

    @triton.jit
    def e4m3_store_bits(y, NATIVE: tl.constexpr):
        """float -> the bits of the nearest e4m3 value (ties to even), saturating at +-448, as uint8:
        the GPU's conversion with ``NATIVE``, else :func:`e4m3_bits`."""
        y = y.to(tl.float32)          # Triton has no float64 -> e4m3 conversion
        if NATIVE:
            y = tl.minimum(tl.maximum(y, -E4M3_MAX_F), E4M3_MAX_F)
            return y.to(tl.float8e4nv).to(tl.uint8, bitcast=True)
        else:
            return e4m3_bits(y).to(tl.uint8)
