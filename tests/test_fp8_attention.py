"""FP8 attention (revise/models/fp8_attention.py and its use in the fast path's processors): the
reference numerics on the CPU, the static q/k scales, the FP8 output projection, the device check,
and the pipeline option. cuDNN's kernel itself runs on a GPU only (benchmarks/fp8_attention.py)."""

import textwrap

import pytest
import torch
import torch.nn.functional as F

from revise import ReviseEditPipeline
from revise.errors import ReviseInputError
from revise.models.attention_ops import static_fp8_scales
from revise.models.fp8 import E4M3, Fp8Linear
from revise.models.fp8_attention import (check_fp8_attention_device, fp8_attention, fp8_attention_supported,
                                         quantize_tensor)
from revise.models.fp8_gelu_matmul import nvmath_available
from revise.models.norm_rope import norm_rope_reference
from tests.test_norm_rope import run_triton_check

KW = dict(num_frames=5, height=32, width=32, num_inference_steps=2, progress=False)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


def test_quantize_tensor_maps_the_largest_magnitude_to_448():
    x = torch.randn(2, 5, 3, 8) * 7
    q, descale = quantize_tensor(x)
    assert q.dtype == E4M3 and descale.shape == () and q.float().abs().max() == 448
    assert rel(q.float() * descale, x) < 0.05


QUANTIZE_CHECK = textwrap.dedent("""
    import torch
    from revise.models import fp8_attention
    from revise.models.fp8_attention import E4M3, E4M3_MAX, _kernel_applies, quantize_tensor

    torch.manual_seed(0)
    x = torch.randn(2, 37, 3, 16, device=DEVICE) * 10.0 ** torch.randint(-4, 3, (2, 37, 3, 16), device=DEVICE)
    x[0, 0, 0, 0] = 300.0
    heads_major = x.to(torch.bfloat16).transpose(1, 2).contiguous().transpose(1, 2)    # context_kv's K/V layout
    for t in (x, x.to(torch.bfloat16), heads_major, heads_major[:1]):
        assert _kernel_applies(t)
        q, descale = quantize_tensor(t)
        want_descale = t.abs().amax().float().clamp(min=1e-12) / E4M3_MAX
        want = (t.float() / want_descale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
        assert q.dtype == E4M3 and q.shape == t.shape and q.stride() == t.stride(), (q.stride(), t.stride())
        assert torch.equal(descale, want_descale)
        assert torch.equal(q.view(torch.uint8), want.view(torch.uint8))
    given = torch.tensor(0.25, device=DEVICE)          # a descale from elsewhere (a bound): no reduction, saturated
    q, descale = quantize_tensor(x.to(torch.bfloat16), given)
    want = (x.to(torch.bfloat16).float() / given).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    assert torch.equal(descale, given) and torch.equal(q.view(torch.uint8), want.view(torch.uint8))
    assert not _kernel_applies(x[:, ::2]) and not _kernel_applies(x[..., :8])      # not dense: PyTorch's ops
    q, _ = quantize_tensor(x[:, ::2])
    assert q.dtype == E4M3
    print("quantize ok")
""")


def test_quantize_tensor_kernel_gives_pytorchs_bytes_in_the_inputs_layout():
    """The one-pass Triton division and cast (on CUDA; elsewhere in Triton's interpreter) against
    PyTorch's ops, on contiguous and heads-major (transposed) inputs."""
    run_triton_check(QUANTIZE_CHECK, "quantize ok")


def test_fp8_attention_is_attention_of_the_dequantized_inputs_scaled_into_e4m3():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 40, 3, 16), torch.randn(2, 24, 3, 16), torch.randn(2, 24, 3, 16) * 3
    (q8, dq), (k8, dk), (v8, dv) = (quantize_tensor(t) for t in (q, k, v))
    out = fp8_attention(q8, k8, v8, dq, dk, dv, 1 / dv)
    assert out.dtype == E4M3 and out.shape == (2, 40, 3, 16) and out.is_contiguous()
    exact = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    assert rel(out.float() * dv, exact) < 0.08
    compiled = torch.compile(fp8_attention, fullgraph=True)(q8, k8, v8, dq, dk, dv, 1 / dv)   # one graph
    assert torch.equal(compiled.float(), out.float())
    with pytest.raises(ValueError, match="e4m3"):
        fp8_attention(q, k8, v8, dq, dk, dv, 1 / dv)


def test_padded_inputs_give_the_unpadded_rows():
    """Queries and keys padded past their real length (FP8 self-attention stores them at whole tiles of
    128): the real rows' output is the unpadded call's, whatever the padding holds (cuDNN's padding
    mask on CUDA; the reference slices)."""
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() and fp8_attention_supported("cuda")[0] else "cpu"
    d = 128                                       # the DiT's head size, one cuDNN's FP8 kernels have
    q, k, v = (torch.randn(2, 40, 3, d, device=device) for _ in range(3))
    (q8, dq), (k8, dk), (v8, dv) = (quantize_tensor(t) for t in (q, k, v))
    want = fp8_attention(q8, k8, v8, dq, dk, dv, 1 / dv)
    padded = [torch.cat([t, quantize_tensor(torch.randn(2, 24, 3, d, device=device) * 0.5)[0]], dim=1)
              for t in (q8, k8, v8)]
    got = fp8_attention(*padded, dq, dk, dv, 1 / dv, valid_q=40, valid_kv=40)
    assert got.shape == (2, 64, 3, d)
    assert torch.equal(got[:, :40].view(torch.uint8), want.view(torch.uint8))
    assert torch.equal(fp8_attention(q8, k8, v8, dq, dk, dv, 1 / dv, valid_q=40, valid_kv=40).view(torch.uint8),
                       want.view(torch.uint8))                    # lengths equal to the shapes: no padding
    with pytest.raises(ValueError, match="valid_q"):
        fp8_attention(q8, k8, v8, dq, dk, dv, 1 / dv, valid_q=41)


def test_static_scales_bound_the_prepared_q_and_k():
    """sqrt(width) * max|weight| bounds every RMS-normed, RoPE'd element, even a row with one spike."""
    torch.manual_seed(0)
    norms = [torch.nn.RMSNorm(48, eps=1e-6) for _ in range(2)]
    for n in norms:
        torch.nn.init.uniform_(n.weight, 0.2, 2.0)
    x = torch.randn(1, 6, 96)
    x[0, 0, 5] = 1e4                              # nearly all of the row's energy in one element
    scales = static_fp8_scales(norms)
    cos, sin = torch.ones(1, 6, 1, 16), torch.zeros(1, 6, 1, 16)
    for y, s in zip(norm_rope_reference(x, [n.weight for n in norms], 1e-6, 3, cos, sin), scales[:2]):
        assert (y.abs() * s).max() <= 448
    assert torch.allclose(scales[:2] * scales[2:], torch.ones(2))
    q8, k8 = norm_rope_reference(x, [n.weight for n in norms], 1e-6, 3, cos, sin, out_scales=scales[0:2])
    assert q8.dtype == E4M3 and (q8.float() * scales[2]).abs().max() > 0.5 * 48 ** 0.5


def test_value_bound_holds_for_the_fp8_projection_and_is_tight_for_an_aligned_row():
    """``value_descale``: no element of the FP8 linear's output rows (V's part of a fused Q/K/V) maps
    past 448, even for an input row along the largest weight row, where the bound is nearly reached."""
    from revise.models.attention_ops import value_descale
    from revise.models.fp8 import output_bound_weights

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96)
    torch.nn.init.normal_(linear.bias, std=0.5)
    fp8 = Fp8Linear(linear)
    rows = slice(64, 96)
    bound = output_bound_weights(fp8, rows)
    weight = fp8.weight_fp8[rows].float() * fp8.weight_scale[0, rows, None]
    assert torch.allclose(bound, torch.stack([weight.norm(dim=1).max(), linear.bias[rows].abs().max()]))
    with torch.no_grad():
        spiky = torch.randn(2, 9, 64)
        spiky[0, 0, 3] = 50.0                                       # nearly all of a row's energy in one element
        aligned = torch.randn(2, 9, 64)
        aligned[1, 0] = weight[weight.norm(dim=1).argmax()] * 7 / weight.norm(dim=1).max() * aligned[0].norm(dim=1).max()
        aligned[1, 1] = -aligned[1, 0]                              # along the largest weight row, either sign
        ratios = [float(fp8(x)[..., rows].abs().max() / value_descale(x, bound)) for x in (spiky, aligned)]
    assert all(r <= 448 for r in ratios)
    assert ratios[1] > 0.8 * 448                                   # the bound is reached there, nearly


def test_fp8_linear_on_a_prequantized_input_is_the_linear():
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 48)
    x = torch.randn(2, 7, 32)
    x8, descale = quantize_tensor(x)
    y = Fp8Linear(linear).forward_quantized(x8, descale)
    assert y.shape == (2, 7, 48) and y.dtype == torch.float32
    assert rel(y, linear(x)) < 0.06


def test_fp8_attention_is_refused_with_one_line_where_it_cannot_run(monkeypatch):
    ok, why = fp8_attention_supported("cpu")
    assert not ok and "\n" not in why and why.startswith("FP8 attention needs")
    with pytest.raises(ReviseInputError, match="FP8 attention"):
        check_fp8_attention_device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA L4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 9))          # Ada: FP8 matmuls only
    ok, why = fp8_attention_supported("cuda:0")
    assert not ok and "Hopper" in why and "L4" in why


def test_pipeline_fp8_attention_needs_the_fast_path_then_edits_close_to_bf16_attention(tiny_model, clip, monkeypatch):
    from revise.models.attention_inputs import PreparedSelfAttnProcessor

    clip = F.interpolate(clip, size=(32, 32)).narrow(1, 0, 5)
    want = ReviseEditPipeline(tiny_model)(clip, "make it night", seed=1, output_type="latent", **KW).video
    plain = ReviseEditPipeline.from_pretrained("tiny", device="cpu")
    with pytest.raises(ReviseInputError, match="enable_fast_path"):
        plain.enable_fp8(allow_cpu=True, attention=True)
    pipe = ReviseEditPipeline.from_pretrained("tiny", device="cpu").enable_fast_path(compile=False)
    pipe.enable_fp8(allow_cpu=True, attention=False)
    assert pipe.quantized == {"transformer": "fp8"}
    linears_only = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    pipe.enable_fp8(allow_cpu=True, attention=True)
    assert pipe.quantized == {"transformer": "fp8", "attention": "fp8"}
    blocks = pipe.model.transformer.blocks
    assert all(isinstance(b.attn1.processor, PreparedSelfAttnProcessor) and b.attn1.processor.fp8 for b in blocks)
    calls = []
    import revise.models.attention_ops as ops
    assert ops.PAD_MULTIPLE == 128 and ops.VALUE_BOUND   # the loop's defaults since run 9c (docs/performance.md)
    monkeypatch.setattr(ops, "VALUE_BOUND", False)      # V's scale from V first, from its bound below
    real = ops.fp8_attention
    ops.fp8_attention = lambda *a, **kw: calls.append((a[0].shape, a[1].shape, kw)) or real(*a, **kw)
    try:
        got = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    finally:
        ops.fp8_attention = real
    # self- and cross-attention, per block and step, both guidance branches in one batch
    assert len(calls) == 2 * len(blocks) * KW["num_inference_steps"] and all(q[0] == 2 for q, _, _ in calls)
    # self-attention's q, k, v padded to whole tiles of 128 tokens, the real ones masked; cross-attention as is
    padded = [(q, kw) for q, k, kw in calls if kw.get("valid_q")]
    assert len(padded) == len(calls) // 2
    assert all(q[1] == 128 and 0 < kw["valid_q"] == kw["valid_kv"] < 128 for q, kw in padded)
    assert 0 < rel(got, linears_only) and rel(got, want) < 0.15
    monkeypatch.setattr(ops, "VALUE_BOUND", True)       # V's scale from its bound (the default)
    bounded = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    assert 0 < rel(bounded, got) < 0.05 and rel(bounded, want) < 1.2 * rel(got, want)   # no further from bf16
    assert all(b.attn2.processor.kv_fp8 is None for b in blocks)       # the cached e4m3 K/V dropped after the edit


def test_plan_autotuning_keeps_the_fastest_plan_that_runs(monkeypatch):
    """``fp8_attention.AUTOTUNE``: every built plan is timed on the first call's inputs, one that fails
    to run counts as infinitely slow, the fastest is kept, and ``plan_timings`` marks it. A stand-in
    graph and event clock replace cuDNN and CUDA (the kernel itself runs on a GPU only)."""
    from types import SimpleNamespace

    from revise.models import fp8_attention as fa

    cost = {0: 5.0, 1: 2.0, 2: 1.0, 3: 3.0}         # plan index -> ms a call; plan 2 fails to run
    clock = [0.0]

    class Graph:
        def execute_plan_at_index(self, pack, workspace, index, handle=None):
            if index == 2:
                raise RuntimeError("not supported")
            clock[0] += cost[index]

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self, stream=None):
            self.t = clock[0]

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return end.t - self.t

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    plans = {"built": [(0, "a"), (1, "b"), (2, "c"), (3, "d")], "chosen": None, "timings": []}
    chosen = fa._fastest_plan(Graph(), {}, SimpleNamespace(device="cuda"), None, plans)
    assert chosen == 1
    assert [n for n, _ in plans["timings"]] == ["a", "b", "c", "d"]
    assert [us for _, us in plans["timings"]] == [5000.0, 2000.0, float("inf"), 3000.0]
    plans["chosen"] = chosen
    monkeypatch.setattr(fa, "_GRAPHS", {("layout",): (None, None, None, None, None, plans)})
    assert fa.plan_timings()[("layout",)][1] == ("* b", 2000.0)
    assert fa.plan_timings()[("layout",)][0] == ("  a", 5000.0)


def test_layout_fields_drop_the_device_and_list_the_tuples():
    from revise.models.fp8_attention import layout_fields

    q = (2, 8, 4, 16, 512, 64, 16, 1)               # shape, then strides, as _graph keys them
    assert layout_fields((0, q, q, q, q, 8, 0)) == [list(q)] * 4 + [8, 0]


def test_cudnn_graph_is_built_once_per_layout_and_fed_the_calls_tensors(monkeypatch):
    """The cuDNN path of ``fp8_attention`` against a stand-in ``cudnn`` module (the real one runs on a
    GPU only): the graph sees q, k, v heads-major with their strides, the padding mask with the real
    lengths, and each call's own tensors; a second call at the same layout builds nothing."""
    import sys
    from types import SimpleNamespace

    from revise.models import fp8_attention as fa

    built, executed = [], []

    class Tensor:
        def __init__(self, name=None, **kw):
            self.name, self.kw = name, kw

        def __getattr__(self, attr):            # set_output, set_dim, set_stride, set_data_type: chained
            if attr.startswith("set_"):
                return lambda *a: self
            raise AttributeError(attr)

    class Graph:
        def __init__(self, **kw):
            built.append(self)
            self.tensors, self.sdpa = {}, None

        def tensor(self, name, dim, stride, data_type):
            self.tensors[name] = Tensor(name, dim=dim, stride=stride)
            return self.tensors[name]

        def sdpa_fp8(self, **kw):
            self.sdpa = kw
            return Tensor("o"), None, Tensor("amax_s"), Tensor("amax_o")

        def execute(self, pack, workspace, handle=None):
            executed.append(pack)

        def get_workspace_size(self):
            return 16

        def __getattr__(self, attr):            # validate, build_operation_graph, plans: nothing to do
            return lambda *a, **kw: None

    fake = SimpleNamespace(data_type=SimpleNamespace(FP8_E4M3="e4m3", FLOAT="f32", INT32="i32"),
                           heur_mode=SimpleNamespace(A="A", B="B", FALLBACK="FALLBACK"),
                           create_handle=lambda: "handle", pygraph=Graph, set_stream=lambda **kw: None)
    monkeypatch.setitem(sys.modules, "cudnn", fake)
    monkeypatch.setattr(fa, "_GRAPHS", {})
    monkeypatch.setattr(fa, "_HANDLES", {})
    monkeypatch.setattr(fa, "_STREAMS", {})
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: SimpleNamespace(cuda_stream=7))
    q, k, v = (torch.randn(2, 64, 3, 16).to(E4M3) for _ in range(3))
    scales = [torch.ones(()) for _ in range(4)]
    out = fa._cudnn_fp8_attention(q, k, v, *scales, valid_q=40, valid_kv=40)
    assert out.shape == (2, 64, 3, 16) and out.dtype == E4M3
    graph, = built
    assert graph.tensors["q"].kw == {"dim": [2, 3, 64, 16], "stride": [3072, 16, 48, 1]}
    assert graph.sdpa["use_padding_mask"] and graph.sdpa["seq_len_q"] is graph.tensors["seq_len_q"]
    pack = {t.name: x for t, x in executed[0].items()}
    assert pack["q"] is q and pack["k"] is k and pack["v"] is v and pack["o"] is out
    assert pack["seq_len_q"].dtype == torch.int32 and pack["seq_len_q"].flatten().tolist() == [40, 40]
    assert float(pack["scale_s"]) == fa.P_SCALE
    fa._cudnn_fp8_attention(q, k, v, *scales, valid_q=40, valid_kv=40)
    assert len(built) == 1 and len(executed) == 2 and next(iter(executed[1].values())) is q


def _wide_head_pipeline(device: str, dtype: torch.dtype) -> ReviseEditPipeline:
    """The tiny preset with the DiT's head size of 128 (cuDNN's FP8 kernels' size), on ``device``."""
    from revise import ReviseModel
    from revise.config import load_preset

    cfg = load_preset("tiny")
    cfg["transformer"]["attention_head_dim"] = 128
    return ReviseEditPipeline(ReviseModel.from_preset(cfg, seed=0, device=device, dtype=dtype))


def _loop_options_edit_is_close(pipe, clip, monkeypatch, **fp8_kwargs) -> None:
    """The edit with the FP8 loop's options of run 9 (padding, V's bound: the defaults; the GELU
    epilogue, ``fp8_kwargs["gelu_epilogue"]``) stays within 5% of the one without them, on ``pipe``
    made with ``enable_fp8(..., gelu_epilogue=False)``."""
    import revise.models.attention_ops as ops

    clip = F.interpolate(clip, size=(32, 32)).narrow(1, 0, 5)
    monkeypatch.setattr(ops, "PAD_MULTIPLE", 0)
    monkeypatch.setattr(ops, "VALUE_BOUND", False)
    plain = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    monkeypatch.undo()                  # the defaults: padded to 128 tokens, V's scale from its bound
    pipe.enable_fp8(attention=True, **fp8_kwargs)
    assert all(b.ffn.gelu_epilogue for b in pipe.model.transformer.blocks)
    torch._dynamo.reset()
    got = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    assert torch.isfinite(got).all() and 0 < rel(got, plain) < 0.05


def test_the_loops_fp8_options_together_at_the_dits_head_size(clip, monkeypatch):
    """Padding, V's bound and the GELU in the up-projection's epilogue together, on the CPU's
    reference attention and matmul, at head size 128."""
    pipe = _wide_head_pipeline("cpu", torch.float32).enable_fast_path(compile=False)
    pipe.enable_fp8(allow_cpu=True, attention=True, gelu_epilogue=False)
    _loop_options_edit_is_close(pipe, clip, monkeypatch, allow_cpu=True, gelu_epilogue=True)


@pytest.mark.skipif(not (torch.cuda.is_available() and fp8_attention_supported("cuda:0")[0]
                         and nvmath_available()),
                    reason="cuDNN's FP8 attention needs a Hopper GPU and the cuDNN frontend; the epilogue nvmath-python")
def test_the_loops_fp8_options_together_compiled_on_a_gpu(clip, monkeypatch):
    """The loop's path with the options of run 9: compiled blocks, cuDNN's padding mask, V's scale
    from its bound and cuBLASLt's GELU epilogue; the edit stays close to the one without them."""
    torch._dynamo.reset()
    pipe = _wide_head_pipeline("cuda", torch.bfloat16).enable_fast_path()
    pipe.enable_fp8(attention=True, fast_accum=True, gelu_epilogue=False)
    _loop_options_edit_is_close(pipe, clip, monkeypatch, fast_accum=True, gelu_epilogue="auto")


def test_enable_fp8_refuses_an_unknown_gelu_epilogue_setting_in_one_line():
    pipe = ReviseEditPipeline.from_pretrained("tiny", device="cpu")
    with pytest.raises(ReviseInputError, match="gelu_epilogue must be True, False or 'auto', not 'yes'"):
        pipe.enable_fp8(allow_cpu=True, gelu_epilogue="yes")
    assert not pipe.quantized                       # refused before anything was converted
