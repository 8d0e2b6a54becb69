"""A denoising step's DiT call replayed from one CUDA graph, so the GPU never waits on Python.

With FP8 matmuls and attention a DiT block takes about 1.4 ms of GPU time at the released shapes, and
launching its kernels from Python (Dynamo's guards, Inductor's wrapper, the cuDNN frontend, the
``_scaled_mm`` calls) takes about as long. On an H100 on 2026-12-07 the FP8 loop's kernels added up
to 1.726 s of a 2.036 s profiled loop (the GPU idle 15.2% of it, the bf16 loop's 1.9%), and the same
loop took 1.977 to 2.519 s from run to run (`docs/performance.md`). A CUDA graph records the kernels
of one call once and launches them all with one call afterwards: in run 6 it took the FP8 loop from
2.015-2.227 s to 1.806-1.821 s, so the pipeline uses it by default with FP8 linears.

:class:`GraphedCall` wraps ``fn(*tensors) -> tensor``: its first ``warmup`` calls run ``fn`` as it
is (the first compiles the blocks and builds the cuDNN plans), the next captures ``fn`` on copies of
its arguments, and every call from then on copies its arguments into those copies and replays the
graph. The output is the graph's own tensor, overwritten by the next replay: copy what you keep.
Used as a context manager, it releases the graph on leaving.
What ``fn`` does must be the same at every call (same shapes, no host synchronisation, no tensors
made on the host) — the denoising loop's guided velocity is (``ReviseEditPipeline.denoise``).
Everything else the captured kernels read stays where it was at capture: the pipeline keeps one
graph per shape across edits and writes each edit's context K/V into the tensors it captured
(``cached_context_kv(keep=True)``), so only the first edit of a shape pays for the capture.
"""

from __future__ import annotations

from typing import Callable

import torch


class CudaGraph:
    """One ``torch.cuda.CUDAGraph``: :meth:`capture` records ``fn(*inputs)`` (running nothing) and
    returns its output; :meth:`replay` runs what was recorded."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
        with torch.cuda.graph(self.graph):
            return fn(*inputs)

    def replay(self) -> None:
        self.graph.replay()


class GraphedCall:
    """``fn`` run eagerly ``warmup`` times, then from a graph of type ``graph_type`` (see the module)."""

    graph_type: type = CudaGraph

    def __init__(self, fn: Callable[..., torch.Tensor], warmup: int = 1):
        self.fn, self.warmup, self.calls = fn, warmup, 0
        self.graph = self.inputs = self.output = None

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= self.warmup:
            return self.fn(*args)
        if self.graph is None:
            self.inputs = [a.detach().clone() for a in args]
            self.graph = self.graph_type()
            self.output = self.graph.capture(self.fn, self.inputs)
        else:
            for static, a in zip(self.inputs, args, strict=True):
                if static.shape != a.shape:
                    raise ValueError(f"GraphedCall: captured with an argument of shape {tuple(static.shape)}, "
                                     f"called with {tuple(a.shape)}")
                static.copy_(a)
        self.graph.replay()
        return self.output

    def release(self) -> None:
        """Drop the graph and its tensors (its memory pool goes back to PyTorch's allocator)."""
        self.graph = self.inputs = self.output = None

    def __enter__(self) -> "GraphedCall":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
