"""Training curves of the mini-model stages (FOLDER/mini_*_metrics.jsonl) as one PNG; a panel
appears for each stage and metric the folder holds.

    python scripts/plot_curves.py docs/results/run2 docs/results/run2/mini_curves.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [("mini_0_vae_metrics.jsonl", "focus_l1", "stage 0: VAE L1 of the worst 2% of pixels"),
          ("mini_0_vae_metrics.jsonl", "l1", "stage 0: VAE reconstruction L1"),
          ("mini_1_critic_metrics.jsonl", "accuracy", "stage 1: critic batch accuracy"),
          ("mini_2_sft_metrics.jsonl", "fm", "stage 2: SFT flow-matching loss"),
          ("mini_3_rwo_metrics.jsonl", "p_yes", "stage 3: RWO critic P(Yes) of x0 estimates"),
          ("mini_3_*_metrics.jsonl", "fm", "stage 3: flow-matching loss (moving mean of 20)"),
          ("mini_3_uso_metrics.jsonl", "p_yes", "stage 3: USO critic P(Yes) of x0 estimates")]


def smooth(values: list[float], n: int = 20) -> list[float]:
    return [sum(values[max(0, i - n + 1):i + 1]) / len(values[max(0, i - n + 1):i + 1]) for i in range(len(values))]


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    panels = [p for p in PANELS if any(f'"{p[1]}"' in f.read_text() for f in folder.glob(p[0]))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, (pattern, key, title) in zip(axes[0], panels):
        files = sorted(folder.glob(pattern))
        for path in files:                       # several files: one line each, labelled by stage
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            rows = [r for r in rows if key in r]
            ys = [r[key] for r in rows]
            label = path.name.removeprefix("mini_").removesuffix("_metrics.jsonl")
            ax.plot([r["step"] for r in rows], smooth(ys) if len(files) > 1 else ys, lw=0.8, label=label)
        if len(files) > 1:
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if key in ("fm", "l1", "focus_l1"):
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
