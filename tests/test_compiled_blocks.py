"""compile_blocks: diffusers' repeated-block compile, with Inductor's persistent-reduction heuristic
widened to rows of up to 2048 values while (and only while) the blocks compile and run."""

import types

import pytest
import torch

from revise import ReviseModel
from revise.models import compiled_blocks
from revise.models.compiled_blocks import MAX_PERSISTENT_ROW, compile_blocks

pytestmark = pytest.mark.skipif(compiled_blocks.InductorChoices is None, reason="no pluggable Inductor heuristics")


def features(row):
    return types.SimpleNamespace(reduction_numel=row)


@pytest.mark.parametrize("default", [False, True])
def test_rows_up_to_2048_are_persistent_and_the_rest_left_to_inductor(monkeypatch, default):
    base = compiled_blocks.InductorChoices
    monkeypatch.setattr(base, "should_use_persistent_reduction", staticmethod(lambda f, c: default))
    wide = compiled_blocks.WideRowReductions()
    assert wide.should_use_persistent_reduction(features(1536), False) is True
    assert wide.should_use_persistent_reduction(features(MAX_PERSISTENT_ROW), False) is True
    assert wide.should_use_persistent_reduction(features(MAX_PERSISTENT_ROW + 1), False) is default
    assert wide.should_use_persistent_reduction(features(1536), True) is default       # cooperative: Inductor's call
    import sympy
    assert wide.should_use_persistent_reduction(features(sympy.Symbol("s0")), False) is default   # dynamic length
    with compiled_blocks._inductor_config.patch({"triton.persistent_reductions": False}):
        assert wide.should_use_persistent_reduction(features(1536), False) is default


def test_the_heuristic_is_active_only_inside_the_compiled_blocks(monkeypatch):
    from torch._inductor.virtualized import V

    seen = []

    def fake_compile(fn, *args, **kwargs):      # stands in for torch.compile: records the heuristics in force
        def compiled(*a, **k):
            seen.append(type(V.choices).__name__)
            return fn(*a, **k)
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = ReviseModel.from_preset("tiny", seed=0)
    dit = model.transformer
    compile_blocks(dit)
    compile_blocks(dit)                         # again: wrapped once, not twice
    g = torch.Generator().manual_seed(0)
    c = dit.config
    x = torch.randn(1, c.in_channels, 5, 8, 8, generator=g)
    context = torch.randn(1, model.context_config.max_context_len, c.text_dim, generator=g)
    with torch.no_grad():
        dit(x, torch.tensor([500.0]), context)
    assert seen == ["WideRowReductions"] * len(dit.blocks)
    assert type(V.choices).__name__ != "WideRowReductions"
