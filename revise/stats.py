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


def pair_agreement(scores, reference, groups, min_gap: float = 1.0) -> tuple[int, int]:
    """How often ``scores`` order two candidates of one group as ``reference`` does (issue #22's gate:
    a critic's P(Yes) against the exact judge's EA, pairs of one item's candidates).

    Counts the pairs of entries with the same ``groups`` value whose ``reference`` values differ by
    ``min_gap`` or more; returns ``(pairs, agreeing)``, where a pair agrees when ``scores`` differ the
    same way (a tie in ``scores`` does not agree). Summing both over batches gives a pooled rate."""
    s, r, g = (np.asarray(a, np.float64).ravel() for a in (scores, reference, groups))
    if not len(s) == len(r) == len(g):
        raise ValueError(f"scores, reference and groups differ in length: {len(s)}, {len(r)}, {len(g)}")
    i, j = np.triu_indices(len(s), k=1)
    d_ref = r[i] - r[j]
    counted = (g[i] == g[j]) & (np.abs(d_ref) >= min_gap)
    agreeing = (s[i] - s[j]) * d_ref > 0
    return int(counted.sum()), int((counted & agreeing).sum())


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a rate of ``hits`` in ``n`` trials (a pair agreement)."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
