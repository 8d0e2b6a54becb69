"""float32 -> FP8 e4m3 inside Triton kernels, by integer arithmetic on the float's bits.

The kernels that write e4m3 (``norm_rope.py``, ``fp8_ffn.py``) store the bits as uint8, and the caller
views the result as ``torch.float8_e4m3fn``. Triton's own FP8 conversion, stored by such a kernel,
failed in Triton 3.6's LLVM lowering inside Inductor on an H100; :func:`e4m3_bits` is bit-exact with
PyTorch's saturating cast (``tests/test_norm_rope.py`` checks every e4m3 value, the ties between them,
subnormals and signed zeros). It casts its input to float32 first: compiled by Inductor (torch 2.11),
a kernel's Python float arguments arrive as float64 scalars and widen what they touch, and the float32
bitcast then failed to build while the same kernel ran eagerly. ``triton`` is None where Triton is not
installed.
"""

from __future__ import annotations

from .fp8 import E4M3_MAX

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
