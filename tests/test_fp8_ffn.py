"""The FP8 feed-forward (revise/models/fp8_ffn.py): the one-pass GELU + row quantization kernel against
its PyTorch reference (on CUDA, else in Triton's interpreter), and the swap into a DiT's blocks."""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch
import torch.nn.functional as F

from revise.models.fp8 import E4M3, Fp8Linear, fp8_linears, quantize_rows, to_e4m3
from revise.models.fp8_attention import quantize_tensor
from revise.models.fp8_ffn import Fp8FeedForward, fp8_feed_forwards, gelu_quantize_rows, gelu_quantize_rows_reference
from revise.models.fused_ffn import fuse_ffn_gelu
from tests.test_norm_rope import run_triton_check


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


def test_reference_is_the_tanh_gelu_quantized_row_by_row():
    x = torch.randn(5, 40) * torch.logspace(-2, 2, 5).unsqueeze(1)
    q, scale = gelu_quantize_rows_reference(x.to(torch.bfloat16))
    want = F.gelu(x.to(torch.bfloat16).float(), approximate="tanh")
    assert q.dtype == E4M3 and q.shape == (5, 40) and scale.shape == (5, 1) and scale.dtype == torch.float32
    torch.testing.assert_close(scale, want.abs().amax(1, keepdim=True) / 448)
    assert rel(q.float() * scale, want) < 0.05
    assert gelu_quantize_rows(x)[0].dtype == E4M3           # on the CPU: the reference


KERNEL_CHECK = textwrap.dedent("""
    import torch
    from revise.models import fp8_ffn, triton_e4m3

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    # rows of very different sizes, widths below, at and past a power of two (one padded block, or a
    # power-of-two head and a tail: 40 = 32 + 8, 1536 = 1024 + 512, 8960 = 8192 + 768), a row of zeros,
    # and a strided view (rows of a wider tensor); on CUDA with either e4m3 encoding, and compiled, where
    # Dynamo makes the width dynamic from the second width on (which once broke the op's block sizes)
    for native in ((False, True) if DEVICE == "cuda" else (False,)):
        triton_e4m3.NATIVE_CAST = native
        torch._dynamo.reset()
        for rows, width in ((7, 40), (3, 64), (2, 1536), (4, 8960 if DEVICE == "cuda" else 1000)):
            wide = torch.randn(rows, width + 8, device=DEVICE) * torch.logspace(-3, 2, rows, device=DEVICE)[:, None]
            wide[0] = 0
            for dtype in (torch.float32, torch.bfloat16):
                x = wide.to(dtype)[:, :width]
                assert fp8_ffn.kernel_applies(x)
                want_q, want_s = fp8_ffn.gelu_quantize_rows_reference(x)
                runs = [fp8_ffn.gelu_quantize_rows(x)]
                if DEVICE == "cuda":
                    runs.append(torch.compile(fp8_ffn.gelu_quantize_rows, fullgraph=True)(x))
                for q, s in runs:
                    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape and s.shape == (rows, 1)
                    torch.testing.assert_close(s, want_s, rtol=1e-5, atol=0)
                    # the kernel's GELU is x * sigmoid(2z), the reference's 0.5 x (1 + tanh z): equal up to
                    # float32 rounding, which may move a value across an e4m3 rounding boundary
                    steps = (q.view(torch.uint8).int() - want_q.view(torch.uint8).int()).abs()
                    assert int(steps.max()) <= 1 and float((steps > 0).float().mean()) < 0.01, steps.max()
    print("kernel ok")
""")


def test_triton_kernel_matches_the_reference():
    run_triton_check(KERNEL_CHECK, "kernel ok")


def test_fp8_feed_forwards_swap_the_blocks_feed_forwards(tiny_model):
    for fused in (False, True):
        dit = copy.deepcopy(tiny_model.transformer)
        if fused:
            fuse_ffn_gelu(dit)
        assert fp8_feed_forwards(dit) == 0                  # bf16 linears: nothing to swap
        fp8_linears(dit, "cpu", allow_cpu=True)
        assert fp8_feed_forwards(dit) == len(dit.blocks) > 0
        assert fp8_feed_forwards(dit) == 0
        ffn = dit.blocks[0].ffn
        assert isinstance(ffn, Fp8FeedForward) and isinstance(ffn.up, Fp8Linear) and isinstance(ffn.down, Fp8Linear)
        torch.manual_seed(0)
        x = torch.randn(2, 7, ffn.up.in_features)
        stock = tiny_model.transformer.blocks[0].ffn
        assert rel(ffn(x), stock(x)) < 0.08
        # exactly: the FP8 up-projection, the GELU quantized per row, the FP8 down-projection
        q, scale = quantize_rows(F.gelu(ffn.up(x).float(), approximate="tanh").reshape(14, -1))
        torch.testing.assert_close(ffn(x), ffn.down.forward_quantized(q, scale).view(2, 7, -1))
        fp8_linears(dit, "cpu", allow_cpu=True, fast_accum=True)   # reaches the layers inside
        assert ffn.up.fast_accum and ffn.down.fast_accum


def test_fp8_linear_on_rows_quantized_each_with_its_scale():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(9, 64) * torch.logspace(-2, 2, 9).unsqueeze(1)
    q, scale = quantize_rows(x)
    fp8 = Fp8Linear(linear)
    torch.testing.assert_close(fp8.forward_quantized(q, scale), fp8(x))
    assert rel(fp8.forward_quantized(q, scale), linear(x)) < 0.06


def test_gelu_row_scales_bound_every_row_and_are_nearly_reached_by_an_aligned_row():
    """``fp8_ffn.gelu_row_scales`` (the GELU epilogue's output scale is their largest): no GELU output
    of the FP8 up-projection maps past 448 on its
    row, a row along the largest weight row comes near, a row of zeros is bounded by the bias, and
    without a bias by the GELU's floor."""
    from revise.models.fp8 import BOUND_MARGIN, output_bound_weights
    from revise.models.fp8_ffn import GELU_FLOOR, gelu_row_scales

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 160)
    torch.nn.init.normal_(linear.bias, std=0.5)
    up = Fp8Linear(linear)
    bound = output_bound_weights(up)
    weight = up.weight_fp8.float() * up.weight_scale[0, :, None]
    x = torch.randn(6, 64) * torch.logspace(-2, 2, 6).unsqueeze(1)
    x[1] = 0
    x[2, 3] = 300.0                                                    # nearly all of a row's energy in one element
    x[4] = weight[weight.norm(dim=1).argmax()] * 50                    # along the largest weight row
    with torch.no_grad():
        scale = gelu_row_scales(x, bound)
        y = F.gelu(up(x).float(), approximate="tanh") / scale
    assert scale.shape == (6, 1)
    torch.testing.assert_close(scale[1], linear.bias.detach().abs().max().reshape(1) * BOUND_MARGIN / 448)
    unbiased = torch.nn.Linear(64, 160, bias=False)
    floor = gelu_row_scales(torch.zeros(1, 64), output_bound_weights(Fp8Linear(unbiased)))
    torch.testing.assert_close(floor, torch.full((1, 1), GELU_FLOOR / 448))
    assert float(y.abs().max()) <= 448
    assert float(y[4].abs().max()) > 0.8 * 448                         # the bound is reached there, nearly


def test_feed_forward_with_the_gelu_epilogue_stays_close(tiny_model):
    """With the GELU epilogue (``use_gelu_epilogues``) the up-projection, GELU and e4m3 output are one
    ``gelu_matmul`` at one scale, the largest row bound, from an input and a weight at one scale each;
    the feed-forward's output stays as close to the stock one as the one-pass kernel's."""
    from revise.models import fp8_ffn
    from revise.models.fp8_gelu_matmul import gelu_matmul_reference

    dit = copy.deepcopy(tiny_model.transformer)
    fp8_linears(dit, "cpu", allow_cpu=True)
    fp8_feed_forwards(dit)
    ffn, stock = dit.blocks[0].ffn, tiny_model.transformer.blocks[0].ffn
    torch.manual_seed(0)
    x = torch.randn(2, 7, ffn.up.in_features)
    with torch.no_grad():
        rows = ffn(x)
        assert fp8_ffn.use_gelu_epilogues(dit) == len(dit.blocks) and ffn.gelu_epilogue
        assert torch.unique(ffn.up.weight_scale).numel() == 1         # the up weight at one scale
        got = ffn(x)
        x8, x_descale = quantize_tensor(x.reshape(14, -1))                 # one scale for the input
        scale = fp8_ffn.gelu_row_scales(x, ffn.bound_weights).amax().reshape(1)
        q = gelu_matmul_reference(x8, x_descale.reshape(1), ffn.up.weight_fp8,
                                  ffn.up.weight_scale.reshape(-1)[:1], ffn.up.bias, 1 / scale)
        torch.testing.assert_close(got, ffn.down.forward_quantized(q, scale).view(2, 7, -1))
        assert 0 < rel(got, rows) < 0.05 and rel(got, stock(x)) < 0.08


def test_one_scale_requantizes_an_fp8_linear_at_its_largest_magnitude(tiny_model):
    """``Fp8Linear.one_scale_``: every row at the scale of the weight's largest magnitude, the weight
    it multiplies within e4m3's rounding of the row-wise one, the layer's output close to it."""
    linear = tiny_model.transformer.blocks[0].ffn.net[0].proj
    fp8 = Fp8Linear(linear)
    before = fp8.weight_fp8.float() * fp8.weight_scale.t()
    x = torch.randn(5, linear.in_features)
    with torch.no_grad():
        rows = fp8(x)
        fp8.one_scale_()
        after = fp8.weight_fp8.float() * fp8.weight_scale.t()
        assert fp8.weight_scale.shape == (1, linear.out_features) and torch.unique(fp8.weight_scale).numel() == 1
        assert float(fp8.weight_fp8.float().abs().max()) == 448
        assert rel(after, before) < 0.05 and rel(fp8(x), rows) < 0.05


def _gelu_matmul_operands(device="cpu", rows=9, one_scale=False):
    """(x8, x_descale, w8, w_descale, bf16 bias, out_scale) and the float32 GELU they stand for: row
    scales, or with ``one_scale`` one scale for the input and one for the weight (what cuBLASLt takes
    with an e4m3 output, and the loop passes)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96).to(device)
    torch.nn.init.normal_(linear.bias, std=0.5)
    up = Fp8Linear(linear)
    x = torch.randn(rows, 64, device=device) * torch.logspace(-1, 1, rows, device=device).unsqueeze(1)
    x8, x_descale = quantize_rows(x)
    if one_scale:
        up.one_scale_()
        x_descale = (x.abs().amax() / 448).reshape(1)
        x8 = to_e4m3(x, 1 / x_descale)
    want = F.gelu(linear(x), approximate="tanh").detach()
    out_scale = (448 / (2 * want.abs().max())).reshape(1)
    bias = linear.bias.detach().bfloat16()        # as in the bf16 model
    w_descale = up.weight_scale.reshape(-1)[:1] if one_scale else up.weight_scale.reshape(-1)
    return (x8, x_descale.reshape(-1), up.weight_fp8, w_descale, bias, out_scale), want


def test_gelu_matmul_off_cuda_is_its_reference_and_compiles_as_one_opaque_op():
    """``fp8_gelu_matmul.gelu_matmul`` (cuBLASLt's GELU epilogue on a GPU): on the CPU its PyTorch
    reference, the GELU of the FP8 linear in e4m3 at the given scale; ``torch.compile`` takes it whole
    (its fake gives the shape and dtype)."""
    from revise.models.fp8_gelu_matmul import gelu_matmul, gelu_matmul_reference

    operands, want = _gelu_matmul_operands()
    q = gelu_matmul(*operands)
    assert q.dtype == E4M3 and q.shape == (9, 96)
    torch.testing.assert_close(q.float(), gelu_matmul_reference(*operands).float())
    assert rel(q.float() / operands[-1], want) < 0.08
    torch._dynamo.reset()
    compiled = torch.compile(lambda *a: gelu_matmul(*a).float() * 2, fullgraph=True)(*operands)
    torch.testing.assert_close(compiled, q.float() * 2)


def _nvmath_gpu() -> bool:
    from revise.models.fp8 import fp8_supported
    from revise.models.fp8_gelu_matmul import nvmath_available

    return torch.cuda.is_available() and fp8_supported("cuda")[0] and nvmath_available()


@pytest.mark.skipif(not _nvmath_gpu(), reason="cuBLASLt's FP8 GELU epilogue needs an FP8 GPU and nvmath-python")
def test_gelu_matmul_through_cublaslt_matches_its_reference_on_a_gpu():
    """One plan per shape, pointed at each call's tensors, also when captured in a CUDA graph; the
    input and weight at one scale each, as the loop passes them."""
    from revise.models import fp8_gelu_matmul as gm

    gm._PLANS.clear()
    operands, _ = _gelu_matmul_operands("cuda", rows=304, one_scale=True)
    for scale in (1.0, 3.0):            # a second call with another input and output scale: the same plan
        ops = (operands[0], operands[1] * scale, *operands[2:5], operands[5] / scale)
        got = gm.gelu_matmul(*ops)
        assert rel(got.float(), gm.gelu_matmul_reference(*ops).float()) < 0.03
    assert len(gm._PLANS) == 1
    static = [t.clone() for t in operands]
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = gm.gelu_matmul(*static)
    static[1].mul_(1.5)                 # a new input scale in place: the replay reads it
    graph.replay()
    assert rel(out.float(), gm.gelu_matmul_reference(*static).float()) < 0.03


def test_gelu_matmul_plans_once_per_shape_and_points_the_plan_at_each_calls_tensors(monkeypatch):
    """The cuBLASLt path's set-up, on the CPU against a stand-in ``nvmath`` (the kernel runs on a GPU
    only): the weight is operand a and the input transposed operand b, the row scales are set as
    outer-vector scales after nvmath's own scalar ones, the epilogue is GELU_BIAS writing e4m3, one
    plan serves every call of a shape, and each call points it at its own tensors and scales."""
    import sys
    from types import ModuleType, SimpleNamespace

    from revise.models import fp8_gelu_matmul as gm

    live = {}                                   # data_ptr -> tensor, for the stand-in to read pointers

    class Desc:
        def __getattr__(self, name):
            if name.startswith("set_") and name.endswith("_unchecked"):
                return lambda value: setattr(self, name[4:-10], value)
            raise AttributeError(name)

    class Matmul:
        built = []

        def __init__(self, a, b, quantization_scales, options):
            self.a, self.b, self.scales, self.options = a, b, quantization_scales, options
            self.mm_desc_ifc = Desc()
            Matmul.built.append(self)

        def _prepare_operand_quantization_scales(self, scales, stream_holder):
            for name in "abd":
                live[scales[name].data_ptr()] = scales[name]
                setattr(self.mm_desc_ifc, f"{name}_scale_pointer", scales[name].data_ptr())
                setattr(self.mm_desc_ifc, f"{name}_scale_mode", "SCALAR_32F")

        def plan(self, epilog, epilog_inputs):
            self.epilog, self.bias = epilog, epilog_inputs["bias"]
            self._prepare_operand_quantization_scales(self.scales, None)

        def reset_operands_unchecked(self, a=None, b=None, epilog_inputs=None):
            self.a, self.b, self.bias = a, b, epilog_inputs["bias"]

        def execute(self):
            d = self.mm_desc_ifc
            assert d.a_scale_mode == d.b_scale_mode == "OUTER_VEC_32F" and d.d_scale_mode == "SCALAR_32F"
            return gm.gelu_matmul_reference(self.b.t(), live[d.b_scale_pointer], self.a, live[d.a_scale_pointer],
                                            self.bias, live[d.d_scale_pointer]).t()

    nvmath = ModuleType("nvmath")
    nvmath.CudaDataType = SimpleNamespace(CUDA_R_8F_E4M3="e4m3", CUDA_R_16BF="bf16", CUDA_R_16F="fp16")
    bindings, linalg, advanced = ModuleType("nvmath.bindings"), ModuleType("nvmath.linalg"), ModuleType("nvmath.linalg.advanced")
    bindings.cublasLt = SimpleNamespace(MatmulMatrixScale=SimpleNamespace(OUTER_VEC_32F="OUTER_VEC_32F"))
    advanced.Matmul, advanced.MatmulEpilog = Matmul, SimpleNamespace(GELU_BIAS="GELU_BIAS")
    for name, module in (("nvmath", nvmath), ("nvmath.bindings", bindings), ("nvmath.linalg", linalg),
                         ("nvmath.linalg.advanced", advanced)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(gm, "_PLANS", {})
    monkeypatch.setattr(gm, "_alignment", lambda t: 256)     # as on CUDA, whose allocator aligns to 512 bytes
    operands, _ = _gelu_matmul_operands()
    for scale in (1.0, 3.0, 0.5):
        x8 = operands[0].clone() if scale == 1.0 else (operands[0].float() * -1).to(E4M3)     # a new input each call
        ops = (x8, operands[1] * scale, *operands[2:5], operands[5] / scale)
        for t in ops:
            live[t.data_ptr()] = t
        got = gm._cublaslt(*ops)
        assert got.shape == (9, 96) and torch.equal(got.view(torch.uint8), gm.gelu_matmul_reference(*ops).view(torch.uint8))
    assert len(Matmul.built) == 1 and len(gm._PLANS) == 1
    mm = Matmul.built[0]
    assert mm.epilog == "GELU_BIAS" and mm.options == {"result_type": "e4m3", "fast_accumulation": True}
    assert (mm.c_dtype, mm.c_dtype_name) == ("bf16", "bfloat16")     # C's type is the bias's, not nvmath's float16
    assert mm.a is operands[2]                  # the weight is operand a
