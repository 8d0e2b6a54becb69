"""The feed-forward's up-projection with its bias and tanh-GELU in cuBLASLt's epilogue, written in e4m3.

``torch._scaled_mm`` takes a bias but no activation, so the FP8 feed-forward (``fp8_ffn.py``) writes the
up-projection in bf16 and quantizes its GELU in a pass of its own: on an H100 at the released shapes
that pass took 92 us a block call, 0.110 s of the 1.814 s loop (`docs/performance.md`). cuBLASLt can
add the bias, apply tanh-GELU and write e4m3 at a scale set before the matmul runs, in the matmul's
epilogue; NVIDIA's nvmath-python plans and runs such matmuls (``nvmath.linalg.advanced.Matmul``).

The output's scale is known before the matmul from the bound of ``fp8_ffn.gelu_row_scales`` (its
largest row: one scale for the output). cuBLASLt writes e4m3 only from operands at one scale each: on
an H100 (cuBLASLt 13.1) it refused the outer-vector (row) scales the FP8 loop's other linears use, on
either operand, in every epilogue (`benchmarks/fp8_epilogue_support.py`, run 9 in
`docs/performance.md`), so the feed-forward passes its input and its up weight at one scale each
(``fp8_ffn.Fp8FeedForward.use_gelu_epilogue``). :func:`plan` can still set row scales, as
outer-vector scales on nvmath's matmul descriptor (nvmath's API offers one scale per FP8 operand),
for the support benchmark to ask again where cuBLASLt may differ.

:func:`gelu_matmul` is a torch custom op (opaque to ``torch.compile``, captured by CUDA graphs as the
kernels it launches): on CUDA, through nvmath-python, one cuBLASLt plan per shape and device, kept in
``_PLANS`` and pointed at each call's tensors; elsewhere the PyTorch computation
(:func:`gelu_matmul_reference`, the CPU path and the tests' oracle). Used by ``fp8_ffn`` after
``fp8_ffn.use_gelu_epilogues``, which ``enable_fp8`` calls on CUDA where nvmath-python imports (it took
the H100 loop from 1.754 s to 1.693-1.713 s, run 9; `benchmarks/fp8_ffn_epilogue.py` times the matmul
alone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fp8 import E4M3, E4M3_MAX

_PLANS: dict = {}
_NVMATH: bool | None = None
# nvmath's ``CudaDataType`` member for each torch dtype the plans use
_CUDA_TYPES = {E4M3: "CUDA_R_8F_E4M3", torch.float8_e5m2: "CUDA_R_8F_E5M2", torch.bfloat16: "CUDA_R_16BF",
               torch.float16: "CUDA_R_16F", torch.float32: "CUDA_R_32F"}


def gelu_matmul_reference(x8: torch.Tensor, x_descale: torch.Tensor, w8: torch.Tensor, w_descale: torch.Tensor,
                          bias: torch.Tensor, out_scale: torch.Tensor) -> torch.Tensor:
    """e4m3 [M, N] = e4m3(``out_scale`` * tanh-GELU((``x8`` * ``x_descale``) @ (``w8`` * ``w_descale``)^T +
    ``bias``)) for e4m3 ``x8`` [M, K] with float32 ``x_descale`` [M] (row scales) or [1], ``w8`` [N, K]
    with ``w_descale`` [N] or [1], ``bias`` [N] and ``out_scale`` [1]; computed in float32, saturating at
    448."""
    y = (x8.float() @ w8.float().t()) * x_descale.reshape(-1, 1) * w_descale.reshape(1, -1)
    y = F.gelu(y + bias.float(), approximate="tanh") * out_scale.float()
    return y.clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)


def nvmath_available() -> bool:
    """Whether nvmath-python imports here (it needs NVIDIA's CUDA Python packages); found once."""
    global _NVMATH
    if _NVMATH is None:
        try:
            import nvmath.linalg.advanced  # noqa: F401
            _NVMATH = True
        except Exception:       # not installed, or its CUDA packages missing or mismatched
            _NVMATH = False
    return _NVMATH


def _alignment(t: torch.Tensor) -> int:
    ptr = t.data_ptr()
    return min(256, ptr & -ptr) if ptr else 256


def plan(x8, x_descale, w8, w_descale, bias, out_scale, fast_accum: bool = True, *, epilog: str = "GELU_BIAS",
         result: torch.dtype = E4M3, c_type: torch.dtype | None = None):
    """A planned nvmath ``Matmul`` for :func:`gelu_matmul_reference`'s computation: the weight is operand a
    (cuBLASLt's bias runs along its M, so along the output features), the input transposed operand b,
    GELU_BIAS epilogue, e4m3 result, Hopper's fast accumulation if ``fast_accum``. A descale of one
    element is a scalar scale; a longer one (row scales) is set as an outer-vector scale on the
    matmul's descriptor, after nvmath has prepared the scalar ones it takes and before its heuristics
    run. ``execute()`` returns the result as [N, M] column-major.

    cuBLASLt's C matrix (unused: beta is 0) has ``c_type``, by default the bias's dtype for an FP8
    result, as in PyTorch's ``_scaled_mm``: nvmath would make it float16, and on an H100 cuBLASLt
    refused a bf16 bias beside a float16 C (CUBLAS_STATUS_NOT_SUPPORTED, run 9). ``epilog`` (a
    ``MatmulEpilog`` name; ``bias`` is passed where it has BIAS in it) and ``result`` (the output dtype;
    ``out_scale`` applies to FP8 ones) let ``benchmarks/fp8_epilogue_support.py`` ask cuBLASLt which
    combinations it runs."""
    from nvmath import CudaDataType
    from nvmath.bindings import cublasLt
    from nvmath.linalg.advanced import Matmul, MatmulEpilog

    fp8_result = result in (E4M3, torch.float8_e5m2)
    vectors = {name: t for name, t in (("a", w_descale), ("b", x_descale)) if t.numel() > 1}
    one = torch.ones(1, device=x8.device)
    scales = {"a": one if "a" in vectors else w_descale, "b": one if "b" in vectors else x_descale}
    if fp8_result:
        scales["d"] = out_scale
    mm = Matmul(w8, x8.t(), quantization_scales=scales,
                options={"result_type": getattr(CudaDataType, _CUDA_TYPES[result]), "fast_accumulation": fast_accum})
    if c_type is None and fp8_result and bias is not None:
        c_type = bias.dtype
    if c_type is not None:      # read when plan() makes C's layout
        mm.c_dtype, mm.c_dtype_name = getattr(CudaDataType, _CUDA_TYPES[c_type]), str(c_type).removeprefix("torch.")
    if vectors:
        prepare = mm._prepare_operand_quantization_scales

        def with_vectors(scales, stream_holder):
            prepare(scales, stream_holder)
            for name, t in vectors.items():
                setattr(mm.mm_desc_ifc, f"{name}_scale_pointer", t.data_ptr())
                setattr(mm.mm_desc_ifc, f"{name}_scale_mode", cublasLt.MatmulMatrixScale.OUTER_VEC_32F)

        mm._prepare_operand_quantization_scales = with_vectors
    mm.plan(epilog=getattr(MatmulEpilog, epilog), epilog_inputs={"bias": bias} if "BIAS" in epilog else None)
    return mm


def _cublaslt(x8, x_descale, w8, w_descale, bias, out_scale, fast_accum: bool = True) -> torch.Tensor:
    key = (x8.shape, w8.shape, x8.device, bias.dtype, _alignment(x8), _alignment(w8), x_descale.numel() > 1,
           w_descale.numel() > 1, fast_accum)
    mm = _PLANS.get(key)
    if mm is None:
        mm = _PLANS[key] = plan(x8, x_descale, w8, w_descale, bias, out_scale, fast_accum)
    else:       # the same shapes, this call's tensors (checked by the custom op's schema and the key)
        mm.reset_operands_unchecked(a=w8, b=x8.t(), epilog_inputs={"bias": bias})
        mm.mm_desc_ifc.set_a_scale_pointer_unchecked(w_descale.data_ptr())
        mm.mm_desc_ifc.set_b_scale_pointer_unchecked(x_descale.data_ptr())
        mm.mm_desc_ifc.set_d_scale_pointer_unchecked(out_scale.data_ptr())
    return mm.execute().t()     # [N, M] column-major: [M, N] row-major


@torch.library.custom_op("revise::fp8_gelu_matmul", mutates_args=())
def gelu_matmul(x8: torch.Tensor, x_descale: torch.Tensor, w8: torch.Tensor, w_descale: torch.Tensor,
                bias: torch.Tensor, out_scale: torch.Tensor, fast_accum: bool = True) -> torch.Tensor:
    """:func:`gelu_matmul_reference` in one cuBLASLt matmul on CUDA (:func:`plan`), which needs
    nvmath-python (else a one-line error), or that reference elsewhere. ``x8``, ``w8`` row-major with
    dense rows; each descale one element (what cuBLASLt takes with an e4m3 output) or one per row (the
    reference's, refused by cuBLASLt 13.1); ``fast_accum`` as ``Fp8Linear``'s."""
    if x8.device.type != "cuda":
        return gelu_matmul_reference(x8, x_descale, w8, w_descale, bias, out_scale)
    if not nvmath_available():
        raise RuntimeError("the FP8 feed-forward's GELU epilogue (fp8_ffn.use_gelu_epilogues) needs nvmath-python "
                           "on CUDA: pip install nvmath-python")
    return _cublaslt(x8, x_descale.contiguous(), w8, w_descale.contiguous(), bias, out_scale.contiguous(), fast_accum)


@gelu_matmul.register_fake
def _(x8, x_descale, w8, w_descale, bias, out_scale, fast_accum=True):
    return x8.new_empty((x8.shape[0], w8.shape[0]), dtype=E4M3)
