"""The FP8 feed-forward (revise/models/fp8_ffn.py): the one-pass GELU + row quantization kernel against
its PyTorch reference (on CUDA, else in Triton's interpreter), and the swap into a DiT's blocks."""

from __future__ import annotations

import copy
import textwrap

import torch
import torch.nn.functional as F

from revise.models.fp8 import E4M3, Fp8Linear, fp8_linears, quantize_rows
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
    """``fp8_ffn.GELU_BOUND``'s scales: no GELU output of the FP8 up-projection maps past 448 on its
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


def test_feed_forward_at_bounded_scales_stays_close(tiny_model, monkeypatch):
    """With ``GELU_BOUND`` the hidden rows are quantized pointwise at the bound's scales
    (``gelu_quantize_at``), and the feed-forward's output stays as close to the stock one."""
    from revise.models import fp8_ffn

    dit = copy.deepcopy(tiny_model.transformer)
    fp8_linears(dit, "cpu", allow_cpu=True)
    fp8_feed_forwards(dit)
    ffn, stock = dit.blocks[0].ffn, tiny_model.transformer.blocks[0].ffn
    torch.manual_seed(0)
    x = torch.randn(2, 7, ffn.up.in_features)
    with torch.no_grad():
        rows = ffn(x)
        monkeypatch.setattr(fp8_ffn, "GELU_BOUND", True)
        bounded = ffn(x)
        q, scale = fp8_ffn.gelu_quantize_at(ffn.up(x).reshape(14, -1), fp8_ffn.gelu_row_scales(x, ffn.bound_weights))
        torch.testing.assert_close(bounded, ffn.down.forward_quantized(q, scale).view(2, 7, -1))
        assert 0 < rel(bounded, rows) < 0.05 and rel(bounded, stock(x)) < 0.08
