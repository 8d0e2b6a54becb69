"""The RVE-Bench scores and how Overall is made from them, one place for every judge.

Every judge scores the four dimensions of the paper on the same scale, 1 (worst) to 10 (best):
Edit Accuracy (EA), Preservation Consistency (PC), Generation Naturalness (GN) and Generation
Realism (GR). Overall is computed here, at report time, from the four stored scores, so the same
formula holds for every judge and method: by default their plain mean (the paper's; docs/design.md);
``OverallFormula.parse("EA=2,PC=1,GN=1,GR=1")`` gives a weighted mean instead.
ViCLIP_T (text-video similarity) is reported beside them and never enters Overall.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import ReviseInputError
from ..vocab import DIMENSIONS

SCALE = (1.0, 10.0)


@dataclasses.dataclass(frozen=True)
class OverallFormula:
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)   # EA, PC, GN, GR

    @classmethod
    def parse(cls, text: str | None) -> "OverallFormula":
        """``None``/``"mean"`` -> the mean; ``"EA=2,PC=1,GN=1,GR=1"`` -> that weighted mean."""
        if text is None or text.strip().lower() == "mean":
            return cls()
        weights = dict.fromkeys(DIMENSIONS, 0.0)
        for part in text.split(","):
            name, _, value = part.partition("=")
            name = name.strip().upper()
            if name not in weights:
                raise ReviseInputError(f"overall weights: unknown score '{name}' in '{text}' "
                                       f"(use {', '.join(DIMENSIONS)}, e.g. EA=2,PC=1,GN=1,GR=1)")
            try:
                weights[name] = float(value)
            except ValueError:
                raise ReviseInputError(f"overall weights: '{part.strip()}' is not NAME=NUMBER") from None
        w = tuple(weights[d] for d in DIMENSIONS)
        if any(x < 0 or not math.isfinite(x) for x in w) or sum(w) <= 0:
            raise ReviseInputError(f"overall weights must be non-negative with a positive sum, not '{text}'")
        return cls(w)  # type: ignore[arg-type]

    def __call__(self, scores: dict) -> float:
        return sum(w * float(scores[d]) for w, d in zip(self.weights, DIMENSIONS)) / sum(self.weights)

    def describe(self) -> str:
        if len(set(self.weights)) == 1:
            return "Overall = mean of EA, PC, GN, GR"
        terms = " + ".join(f"{w:g}*{d}" for w, d in zip(self.weights, DIMENSIONS) if w)
        return f"Overall = ({terms}) / {sum(self.weights):g}"


def check_scores(scores: dict) -> dict[str, float]:
    """The four scores as floats within the scale; ``ValueError`` naming the first bad one."""
    out = {}
    lo, hi = SCALE
    for d in DIMENSIONS:
        if d not in scores:
            raise ValueError(f"score '{d}' is missing")
        v = scores[d]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"score '{d}' must be a number from {lo:g} to {hi:g}, got {v!r}")
        out[d] = float(v)
    return out
