"""The FP8 block's matmul inputs in one pass (revise/models/norm_quantize.py, fp8_block.py): the kernel
against its PyTorch reference (on CUDA, else in Triton's interpreter), the reference against diffusers'
block arithmetic, and the fused block forward against the block's own."""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch
import torch.nn.functional as F

from revise.models.fp8 import Fp8Linear, QuantizedRows, fp8_linears, quantize_rows
from revise.models.fp8_block import fused_block_forward, fused_forward_applies, fused_fp8_blocks
from revise.models.fp8_ffn import fp8_feed_forwards
from revise.models.norm_quantize import norm_quantize, norm_quantize_reference
from tests.test_norm_rope import run_triton_check


def inputs(b=2, length=5, d=40, device="cpu"):
    g = torch.Generator().manual_seed(0)
    h = (torch.randn(b, length, d, generator=g) * 3).to(torch.bfloat16)
    out = torch.randn(b, length, d, generator=g).to(torch.bfloat16)
    mod = torch.randn(b, 6, d, generator=g) * 0.5          # chunks of it are [B, 1, D] views, as in the block
    weight, bias = torch.rand(d, generator=g) + 0.5, torch.randn(d, generator=g) * 0.1
    return [t.to(device) for t in (h, out, mod, weight, bias)]


def test_reference_is_the_blocks_arithmetic_then_quantize_rows():
    h, out, mod, weight, bias = inputs()
    shift, scale, gate = mod.chunk(6, dim=1)[:3]
    norm = torch.nn.LayerNorm(40, eps=1e-6, elementwise_affine=False)
    stream, q, s = norm_quantize_reference(h, 1e-6, scale=scale, shift=shift)
    assert stream is h
    want = (norm(h.float()) * (1 + scale) + shift).type_as(h).reshape(-1, 40)
    torch.testing.assert_close((q, s), quantize_rows(want))
    stream, q, s = norm_quantize_reference(h, 1e-6, residual=out, gate=gate, weight=weight, bias=bias)
    h2 = (h.float() + out * gate).type_as(h)
    torch.testing.assert_close(stream, h2, atol=0, rtol=0)
    torch.testing.assert_close((q, s), quantize_rows(F.layer_norm(h2.float(), (40,), weight, bias, 1e-6).type_as(h)
                                                     .reshape(-1, 40)))
    stream, _, _ = norm_quantize_reference(h, 1e-6, residual=out, scale=scale, shift=shift)
    torch.testing.assert_close(stream, h + out, atol=0, rtol=0)
    with pytest.raises(ValueError, match="weight with bias"):
        norm_quantize(h, 1e-6, weight=weight)


KERNEL_CHECK = textwrap.dedent("""
    import torch
    from revise.models import norm_quantize as nq, triton_e4m3
    from tests.test_norm_quantize import inputs

    torch.set_grad_enabled(False)
    # the three sites of a block (modulated; gated residual + affine norm; residual + modulated), widths
    # below and at a power of two, a zero row, both e4m3 encodings on CUDA, eager and compiled
    # one row a program and several (the last program's rows partly past the end: 2 x 5 rows)
    configs = [(n, native) for n in (None, 1, 4) for native in ((False, True) if DEVICE == "cuda" else (False,))]
    for rows, native in configs:
        nq.ROWS = rows
        triton_e4m3.NATIVE_CAST = native
        for d in (40, 64, 1536 if DEVICE == "cuda" else 96):
            h, out, mod, weight, bias = inputs(d=d, device=DEVICE)
            h[0, 0] = 0
            shift, scale, gate = mod.chunk(6, dim=1)[:3]
            for kw in (dict(scale=scale, shift=shift), dict(residual=out, gate=gate, weight=weight, bias=bias),
                       dict(residual=out, scale=scale, shift=shift)):
                assert nq.kernel_applies(h, *kw.values())
                want = nq.norm_quantize_reference(h, 1e-6, **kw)
                runs = [nq.norm_quantize(h, 1e-6, **kw)]
                if DEVICE == "cuda":
                    torch._dynamo.reset()
                    runs.append(torch.compile(lambda t: nq.norm_quantize(t, 1e-6, **kw), fullgraph=True)(h))
                for stream, q, s in runs:
                    assert q.dtype == torch.float8_e4m3fn and q.shape == (h.shape[0] * h.shape[1], d)
                    # the stream: the same float32 sum rounded once (an FMA may round a tie the other way)
                    diff = (stream.float() - want[0].float()).abs() > 0
                    assert stream.dtype == h.dtype and float(diff.float().mean()) < 0.01
                    # LayerNorm statistics summed in another order move a value by float32 rounding, which
                    # may cross a bf16 or e4m3 rounding boundary
                    torch.testing.assert_close(s, want[2], rtol=8e-3, atol=0)
                    steps = (q.view(torch.uint8).int() - want[1].view(torch.uint8).int()).abs()
                    assert int(steps.max()) <= 1 and float((steps > 0).float().mean()) < 0.02, steps.max()
    print("kernel ok")
""")


def test_triton_kernel_matches_the_reference():
    run_triton_check(KERNEL_CHECK, "kernel ok")


def fp8_fast_path_dit(tiny_model):
    """The tiny DiT as ``enable_fast_path(compile=False)`` then ``enable_fp8`` leave it (on the CPU)."""
    from revise import ReviseEditPipeline

    pipe = ReviseEditPipeline(copy.deepcopy(tiny_model)).enable_fast_path(compile=False)
    pipe.enable_fp8(allow_cpu=True, fused_norms=True)
    return pipe.model.transformer


def test_fused_block_forward_computes_what_the_block_does(tiny_model):
    from revise.models.context_kv import cached_context_kv
    from tests.test_fast_path import dit_inputs

    dit = fp8_fast_path_dit(tiny_model)
    assert all(fused_forward_applies(b) and b.forward.__func__ is fused_block_forward for b in dit.blocks)
    assert fused_fp8_blocks(dit) == len(dit.blocks)                      # again: still every block
    x, t, context = dit_inputs(tiny_model)
    plain = copy.deepcopy(dit)
    for block in plain.blocks:
        del block.forward                                                # diffusers' forward again
    with torch.no_grad(), cached_context_kv(dit, context), cached_context_kv(plain, context):
        got = dit(x, t, context, return_dict=False)[0]
        want = plain(x, t, context, return_dict=False)[0]
    # on the CPU both run the reference arithmetic: the same numbers
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    # outside cached_context_kv (the cross-attention computes its K/V) the block's own forward runs
    with torch.no_grad():
        torch.testing.assert_close(dit(x, t, context, return_dict=False)[0],
                                   plain(x, t, context, return_dict=False)[0], atol=0, rtol=0)


def test_fused_forward_needs_fp8_linears_and_the_fast_path(tiny_model):
    dit = copy.deepcopy(tiny_model.transformer)
    assert fused_fp8_blocks(dit) == 0                                    # bf16 linears, stock processors
    fp8_linears(dit, "cpu", allow_cpu=True)
    fp8_feed_forwards(dit)
    assert fused_fp8_blocks(dit) == 0                                    # no fast-path processors


def test_fp8_linear_takes_quantized_rows():
    torch.manual_seed(0)
    fp8 = Fp8Linear(torch.nn.Linear(64, 32))
    x = torch.randn(2, 9, 64)
    q, s = quantize_rows(x.reshape(-1, 64))
    torch.testing.assert_close(fp8(QuantizedRows(q, s, x.shape)), fp8(x), atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled FP8 path needs a GPU")
def test_compiled_fp8_blocks_with_fused_norms_are_one_graph_and_edit_as_unfused(clip):
    from torch._dynamo.utils import counters

    from revise import ReviseEditPipeline, ReviseModel

    kw = dict(num_inference_steps=4, seed=3, progress=False, output_type="latent")
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0, device="cuda", dtype=torch.bfloat16))
    pipe.enable_fast_path().enable_fp8(fast_accum=True, fused_norms=True)
    blocks = pipe.model.transformer.blocks
    assert all(b.forward.__func__ is fused_block_forward for b in blocks)
    torch._dynamo.reset()
    counters.clear()
    got = pipe(clip, "make it night", **kw).video
    # one graph for every block and step: the instance-level forward does not make a graph per block
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    for block in blocks:
        del block.forward
    torch._dynamo.reset()
    want = pipe(clip, "make it night", **kw).video
    assert float((got - want).norm() / want.norm()) < 2e-2


def test_fused_norms_are_opt_in(tiny_model):
    from revise import ReviseEditPipeline

    pipe = ReviseEditPipeline(copy.deepcopy(tiny_model)).enable_fast_path(compile=False)
    pipe.enable_fp8(allow_cpu=True)
    assert not any("forward" in b.__dict__ for b in pipe.model.transformer.blocks)
