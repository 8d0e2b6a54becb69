"""One denoising step's DiT call replayed from a CUDA graph.

A DiT forward is hundreds of kernel launches. Captured as one CUDA graph, the whole forward is one
launch, so the host can never fall behind the GPU. (The loop has no host synchronisation to cause
that since the sampler runs from a ``StepPlan``; this is for hosts too slow to keep ahead anyway.)

The graph reads the latents and timestep from its own input tensors (copied in at each call) and
the context's cross-attention K/V from the tensors they were captured with, so it is captured
again for each edit (recording only: no GPU work); the first capture of a shape runs warm-up
calls first, so that ``torch.compile`` and the libraries are done initialising.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

log = logging.getLogger("revise")


class CapturedCall:
    """``fn(x, t)`` captured once, then replayed with new ``x`` and ``t`` of the same shapes."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, t: torch.Tensor,
                 warmup: int = 0, pool=None):
        self.x, self.t = x.detach().clone(), t.detach().clone()
        if warmup:
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    fn(self.x, self.t)
            torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.out = fn(self.x, self.t)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.t.copy_(t)
        self.graph.replay()
        return self.out.clone()        # the next replay overwrites the graph's output


class GraphCache:
    """Which shapes have been warmed up, and one memory pool for every capture."""

    def __init__(self) -> None:
        self.warm: set[tuple] = set()
        self.pool = None
        self.failed = False

    def capture(self, fn, x: torch.Tensor, t: torch.Tensor, key: tuple) -> Callable | None:
        """``fn`` as a replayable graph, or None (then call ``fn`` itself) if capturing fails."""
        if self.failed:
            return None
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        try:
            call = CapturedCall(fn, x, t, warmup=0 if key in self.warm else 2, pool=self.pool)
        except RuntimeError as err:             # an operation that cannot be captured
            log.warning("CUDA graph capture failed, denoising without it: %s", str(err).splitlines()[0])
            self.failed = True
            return None
        self.warm.add(key)
        return call
