"""The denoising loop's DiT call replayed from a CUDA graph (revise/pipelines/cuda_graph.py): the replay
logic against a stand-in graph on the CPU, and the pipeline's edits with and without the graph on a GPU."""

import pytest
import torch

from revise import ReviseEditPipeline, ReviseModel
from revise.pipelines import cuda_graph
from revise.pipelines.cuda_graph import GraphedCall

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


def test_pipeline_takes_the_graph_only_where_asked_on_a_gpu(tiny_model, clip, monkeypatch):
    monkeypatch.setattr(GraphedCall, "graph_type", RerunGraph)
    RerunGraph.made.clear()
    pipe = ReviseEditPipeline(tiny_model)
    assert pipe.cuda_graph is False
    pipe.cuda_graph = True
    pipe(clip, "make it night", **KW)
    assert RerunGraph.made == []                       # CPU latents: the loop runs as it is


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("compiled_fp8", [False, True], ids=["eager", "compiled-fp8"])
def test_cuda_graph_edits_the_same_on_a_gpu(clip, compiled_fp8, monkeypatch):
    captured = []

    class CountingGraph(cuda_graph.CudaGraph):
        def capture(self, fn, inputs):
            captured.append(self)
            return super().capture(fn, inputs)

    monkeypatch.setattr(GraphedCall, "graph_type", CountingGraph)
    torch._dynamo.reset()
    dtype = torch.bfloat16 if compiled_fp8 else torch.float32
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0, device="cuda", dtype=dtype))
    pipe.enable_fast_path(compile=compiled_fp8)
    if compiled_fp8:
        pipe.enable_fp8(attention="auto", fast_accum=True)
    # the precomputed step plan, and the scheduler stepping itself (with a step-end callback)
    for hook in ({}, {"callback_on_step_end": lambda pipe, i, t, tensors: tensors}):
        want = pipe(clip, "make it night", **hook, **KW).video
        pipe.cuda_graph = True
        got = pipe(clip, "make it night", **hook, **KW).video
        again = pipe(clip, "make it night", **hook, **KW).video
        pipe.cuda_graph = False
        # the same kernels on the same inputs: replay gives what the eager launches gave
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(again, got, atol=0, rtol=0)
    assert len(captured) == 4                          # one graph per edit, captured at its second step
