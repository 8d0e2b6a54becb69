"""Intervals for the numbers the project reports: a percentile bootstrap of a mean, and the mean
paired difference of one metric between two sets of per-item scores (RVE-Synth's ``synth score``,
``bench report``'s floors, the scripts' tables)."""

from __future__ import annotations

import numpy as np

from .errors import ReviseInputError


def bootstrap_interval(values, n: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of ``values`` (items resampled with replacement)."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_difference(own: list[dict], other: list[dict], metric: str = "EA") -> dict:
    """Mean of ``own[metric] - other[metric]`` over the items both scored (rows paired by ``id``; a row
    with ``missing`` set counts as not scored), with a 95% bootstrap interval."""
    by_id = {r["id"]: r for r in other if not r.get("missing")}
    diffs = [r[metric] - by_id[r["id"]][metric] for r in own if not r.get("missing") and r["id"] in by_id]
    if not diffs:
        raise ReviseInputError("the two sets of scores share no scored item (paired by id)")
    return {"mean": float(np.mean(diffs)), "interval95": bootstrap_interval(diffs), "n": len(diffs)}
