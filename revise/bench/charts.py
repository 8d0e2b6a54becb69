"""One PNG per subset: the methods' scores as grouped bars, and Overall per category as a radar."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..vocab import DIMENSIONS, OVERALL


def subset_chart(subset: str, rows_by_group: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows_by_group[subset]
    methods = [r["method"] for r in rows]
    metrics = [k for k in (*DIMENSIONS, OVERALL) if any(r[k] is not None for r in rows)] \
        or [k for k in ("ViCLIP_T",) if any(r[k] is not None for r in rows)]
    categories = [g.split("/", 1)[1] for g in rows_by_group if "/" in g]
    radar = len(categories) >= 3 and any(r[OVERALL] is not None for r in rows)
    fig = plt.figure(figsize=(11 if radar else 6.5, 4.6), dpi=110)
    ax = fig.add_subplot(1, 2 if radar else 1, 1)
    width = 0.8 / max(1, len(methods))
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(xs, [r[k] if r[k] is not None else 0 for k in metrics], width, label=r["method"])
    ax.set_xticks(range(len(metrics)), metrics)
    if metrics and metrics[0] != "ViCLIP_T":
        ax.set_ylim(0, 10)
    ax.set_title(f"{subset}: mean scores")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(4, len(rows)), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    if radar:
        rax = fig.add_subplot(1, 2, 2, projection="polar")
        angles = [2 * math.pi * k / len(categories) for k in range(len(categories))]
        for i, method in enumerate(methods):
            vals = [rows_by_group[f"{subset}/{c}"][i][OVERALL] or 0 for c in categories]
            rax.plot(angles + angles[:1], vals + vals[:1], label=method)
            rax.fill(angles + angles[:1], vals + vals[:1], alpha=0.1)
        rax.set_xticks(angles, categories)
        rax.set_ylim(0, 10)
        rax.set_title(f"{subset}: Overall per category")
    fig.tight_layout()
    try:
        with atomic_path(path, ".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
