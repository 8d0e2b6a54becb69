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
          ("mini_3_rwo_metrics.jsonl", "p_yes", "stage 3: RWO critic P(Yes) of x0 estimates")]


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    panels = [p for p in PANELS if (folder / p[0]).is_file() and f'"{p[1]}"' in (folder / p[0]).read_text()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
    for ax, (name, key, title) in zip(axes, panels):
        rows = [json.loads(line) for line in (folder / name).read_text().splitlines()]
        rows = [r for r in rows if key in r]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if key in ("fm", "l1", "focus_l1"):
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
