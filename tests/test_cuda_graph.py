"""The denoising loop's DiT call replayed from a CUDA graph (revise/pipelines/cuda_graph.py) and kept
between edits of one shape: the replay logic against a stand-in graph on the CPU, the context K/V kept
in place for it (cached_context_kv(keep=True)), and on a GPU the edits with and without the graph."""

from types import SimpleNamespace

import pytest
import torch

from revise import ReviseEditPipeline, ReviseModel
from revise.models.context_kv import cached_context_kv, release_kept_context
from revise.pipelines import cuda_graph
from revise.pipelines.cuda_graph import GraphedCall
from tests.test_fast_path import dit_inputs

KW = dict(num_inference_steps=4, seed=3, progress=False, output_type="latent")


class RerunGraph:
    """A stand-in for a CUDA graph: capture runs ``fn`` once to make the output tensor (a CUDA graph runs
    nothing then, but the tensor is the same kind of thing), replay recomputes it from the captured inputs
    into that same tensor, as a graph's kernels would."""

    made: list["RerunGraph"] = []

    def __init__(self):
        self.replays = 0
        RerunGraph.made.append(self)

    def capture(self, fn, inputs):
        self.fn, self.inputs = fn, inputs
        self.output = fn(*inputs)
        return self.output

    def replay(self):
        self.replays += 1
        self.output.copy_(self.fn(*self.inputs))


def test_graphed_call_runs_eagerly_then_replays_on_its_own_inputs(monkeypatch):
    monkeypatch.setattr(GraphedCall, "graph_type", RerunGraph)
    RerunGraph.made.clear()
    seen = []

    def fn(x, t):
        seen.append(x)
        return x * 2 + t

    xs = [torch.randn(3, 4) for _ in range(5)]
    ts = [torch.tensor(float(i)) for i in range(5)]
    with GraphedCall(fn, warmup=1) as call:
        outs = [call(x, t).clone() for x, t in zip(xs, ts)]
        assert seen[0] is xs[0]                           # the warm-up call: the caller's own tensors
        graph, = RerunGraph.made                           # captured once, on copies of the arguments
        assert all(x is not xs[1] for x in seen[1:]) and graph.replays == 4
        assert call(xs[0], ts[0]) is call(xs[1], ts[1])    # one output tensor, overwritten by each replay
        with pytest.raises(ValueError, match="shape"):
            call(torch.randn(2, 4), ts[0])
    for x, t, out in zip(xs, ts, outs):
        torch.testing.assert_close(out, x * 2 + t)
    assert call.graph is None and call.output is None   # released on leaving


def test_kept_context_kv_is_rewritten_in_place_for_the_next_edit_of_its_shape():
    model = ReviseModel.from_preset("tiny", seed=0)
    dit = model.transformer
    x, t, context = dit_inputs(model)
    other = context.flip(1)
    with torch.no_grad():
        want = dit(x, t, other, return_dict=False)[0]
        with cached_context_kv(dit, context, keep=True):
            first = [tensor for b in dit.blocks for tensor in b.attn2.processor.kv]
        assert all(b.attn2.processor.kv is None for b in dit.blocks)      # not used outside the block
        with cached_context_kv(dit, other, keep=True):
            second = [tensor for b in dit.blocks for tensor in b.attn2.processor.kv]
            got = dit(x, t, other, return_dict=False)[0]
        # the same tensors (a graph captured on them reads the new context's K/V), the new values
        assert all(a is b for a, b in zip(first, second))
        torch.testing.assert_close(got, want)
        with cached_context_kv(dit, other[:, :-3], keep=True):            # another shape: new tensors
            third = [tensor for b in dit.blocks for tensor in b.attn2.processor.kv]
        assert not any(a is b for a, b in zip(second, third))
        release_kept_context(dit)
        with cached_context_kv(dit, other[:, :-3], keep=True):
            assert not any(a is b for a, b in zip(third, (tensor for b in dit.blocks
                                                           for tensor in b.attn2.processor.kv)))
        release_kept_context(dit)


def test_pipeline_takes_the_graph_only_on_a_gpu(tiny_model, clip, monkeypatch):
    monkeypatch.setattr(GraphedCall, "graph_type", RerunGraph)
    RerunGraph.made.clear()
    pipe = ReviseEditPipeline(tiny_model)
    assert pipe.cuda_graph is None
    pipe.cuda_graph = True
    pipe(clip, "make it night", **KW)
    assert RerunGraph.made == [] and pipe._graph is None          # CPU latents: the loop runs as it is


def test_the_graph_is_on_by_default_with_fp8_linears_and_off_in_bf16():
    on_gpu, on_cpu = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0))
    assert not pipe._graphed(on_gpu)                                    # bf16 (or float32): off
    pipe.enable_fast_path(compile=False).enable_fp8(allow_cpu=True)
    assert pipe.cuda_graph is None and pipe._graphed(on_gpu) and not pipe._graphed(on_cpu)
    pipe.cuda_graph = False                                             # asked: off, FP8 or not
    assert not pipe._graphed(on_gpu)
    pipe.cuda_graph = True
    pipe._placement = object()                                          # offloaded: never
    assert not pipe._graphed(on_gpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("mode", ["eager", "compiled-fp8", "fp8-without-fast-path"])
def test_cuda_graph_edits_the_same_and_is_kept_for_later_edits_on_a_gpu(clip, mode, monkeypatch):
    """``fp8-without-fast-path`` is ``from_pretrained(quantize="fp8")``'s pipeline: stock processors,
    eager FP8 linears, the graph on by default."""
    if mode != "eager" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 matmuls need compute capability 8.9+")
    captured = []

    class CountingGraph(cuda_graph.CudaGraph):
        def capture(self, fn, inputs):
            captured.append(self)
            return super().capture(fn, inputs)

    monkeypatch.setattr(GraphedCall, "graph_type", CountingGraph)
    torch._dynamo.reset()
    dtype = torch.float32 if mode == "eager" else torch.bfloat16
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0, device="cuda", dtype=dtype))
    if mode != "fp8-without-fast-path":
        pipe.enable_fast_path(compile=mode == "compiled-fp8")
    if mode == "compiled-fp8":
        pipe.enable_fp8(attention="auto", fast_accum=True)
    elif mode == "fp8-without-fast-path":
        pipe.enable_fp8()
    edits = ["make it night", "show the scene an hour later"]
    # the precomputed step plan, and the scheduler stepping itself (with a step-end callback)
    for hook in ({}, {"callback_on_step_end": lambda pipe, i, t, tensors: tensors}):
        pipe.cuda_graph = False                                # FP8 takes the graph by default
        want = [pipe(clip, e, **hook, **KW).video for e in edits]
        pipe.cuda_graph = True
        got = [pipe(clip, e, **hook, **KW).video for e in edits]      # one graph, kept for the second edit
        again = pipe(clip, edits[0], **hook, **KW).video
        pipe.cuda_graph = False
        # the same kernels on the same inputs: replay gives what the eager launches gave, with each
        # edit's own context K/V
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(got[0], got[1])
        torch.testing.assert_close(again, got[0], atol=0, rtol=0)
    assert len(captured) == 2                          # one graph per hook setting, kept across its edits
    pipe(clip, edits[0], **KW)                          # without the graph: it is dropped
    assert pipe._graph is None
    pipe.cuda_graph = None                              # the default: the graph with FP8 linears only
    pipe(clip, edits[0], **KW)
    assert len(captured) == (2 if mode == "eager" else 3)
