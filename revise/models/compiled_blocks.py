"""The DiT's repeated blocks compiled as one graph, with rows of up to 2048 reduced in one read.

``compile_blocks`` is diffusers' ``compile_repeated_blocks`` (every Wan block runs the same compiled
graph) plus one change to Inductor's heuristics while those blocks compile. The block's LayerNorms and
their modulation are fused reductions over rows of d = 1536 values. Inductor keeps a whole row in
registers ("persistent" reduction) only up to 1024 values for this kind of fused kernel (64 when it
can't classify the reduction), so at d = 1536 it emits a looped reduction that reads each row twice:
once for the mean and variance, once to normalise. ``WideRowReductions`` lets rows of up to 2048
values stay persistent. On an H100 at the released shapes that took the block's elementwise kernels
from 5.3 to 3.8 ms of a 64 ms step (`docs/performance.md`).

The heuristic is active only while these blocks are called (Inductor compiles on the first call), so
nothing else compiled in the process is affected.
"""

from __future__ import annotations

from contextlib import nullcontext

from torch import nn

MAX_PERSISTENT_ROW = 2048

try:
    from torch._inductor import config as _inductor_config
    from torch._inductor.choices import InductorChoices
    from torch._inductor.virtualized import V
except ImportError:          # an Inductor without pluggable heuristics: compile with its defaults
    InductorChoices = None


if InductorChoices is not None:
    class WideRowReductions(InductorChoices):
        """Inductor's heuristics, except that a reduction over a fixed row of up to 2048 values is
        done in one read (persistent)."""

        @staticmethod
        def should_use_persistent_reduction(features, cooperative_reduction: bool) -> bool:
            default = InductorChoices.should_use_persistent_reduction(features, cooperative_reduction)
            if default or cooperative_reduction or not _inductor_config.triton.persistent_reductions:
                return default
            try:
                row = int(features.reduction_numel)      # a symbolic (dynamic) length raises
            except TypeError:
                return default
            return row <= MAX_PERSISTENT_ROW

        def uuid(self) -> str:
            return f"revise.WideRowReductions({MAX_PERSISTENT_ROW})"


def wide_row_reductions():
    """A context in which Inductor compiles with :class:`WideRowReductions`."""
    if InductorChoices is None:
        return nullcontext()
    return V.set_choices_handler(WideRowReductions())


def compile_blocks(transformer: nn.Module, mode: str | None = None) -> None:
    """``torch.compile`` the repeated blocks of ``transformer`` (one graph for all of them), compiled
    on their first call with :class:`WideRowReductions`."""
    transformer.compile_repeated_blocks(fullgraph=True, mode=mode)
    for block in transformer.modules():
        compiled = getattr(block, "_compiled_call_impl", None)
        if compiled is None or getattr(compiled, "_revise_wide_rows", False):
            continue

        def call(*args, _compiled=compiled, **kwargs):
            with wide_row_reductions():
                return _compiled(*args, **kwargs)

        call._revise_wide_rows = True
        block._compiled_call_impl = call
