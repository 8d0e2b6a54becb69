"""The shipping rule fixed before issue #22's runs (docs/results.md, "Self-reflection on v2"): among the
trained arms, the one with the highest mean EA on RVE-Synth v2 val (own instructions, seed 0) replaces
the shipped model only if its EA beats the shipped model's on the same items with the paired 95%
bootstrap interval of the difference above 0. Prints the table; with --pack and a winner, writes the
winner's float16 copy (scripts/ship_model.py's limits) as a .tgz.

    python scripts/select_arm.py --shipped runs/v2/eval_shipped/val/scores.json \\
        --arms sft=runs/v2/eval_sft/val/scores.json rwo_b=runs/v2/eval_rwo_b/val/scores.json \\
        --models runs/v2 --pack runs/v2/winner.tgz --json runs/v2/select.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from revise.stats import paired_difference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shipped", required=True, help="the shipped model's val scores ('revise synth score --out')")
    ap.add_argument("--arms", nargs="+", required=True, metavar="NAME=SCORES", help="each arm's val scores")
    ap.add_argument("--models", default="runs/v2", help="folder holding PREFIXNAME/model for each arm")
    ap.add_argument("--prefix", default="s3_", help="each arm's folder name before its NAME (stage 3's: s3_)")
    ap.add_argument("--pack", help="write the winner's float16 copy here (.tgz)")
    ap.add_argument("--json", help="write the decision here")
    args = ap.parse_args()
    shipped = json.loads(Path(args.shipped).read_text())
    rows = {}
    for spec in args.arms:
        name, _, path = spec.partition("=")
        if not Path(path).is_file():
            print(f"{name}: no scores at {path}, left out", file=sys.stderr)
            continue
        scores = json.loads(Path(path).read_text())
        rows[name] = {"EA": scores["summary"]["all"]["EA"], "overall": scores["summary"]["all"]["overall"],
                      "vs_shipped": paired_difference(scores["items"], shipped["items"])}
    print(f"shipped: val EA {shipped['summary']['all']['EA']:.2f}")
    print("| arm | val EA | Overall | EA - shipped [95%] |\n| --- | --- | --- | --- |")
    for name, r in rows.items():
        lo, hi = r["vs_shipped"]["interval95"]
        print(f"| {name} | {r['EA']:.2f} | {r['overall']:.2f} | {r['vs_shipped']['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] |")
    best = max(rows, key=lambda n: rows[n]["EA"]) if rows else None
    wins = best is not None and rows[best]["vs_shipped"]["interval95"][0] > 0
    decision = {"shipped_EA": shipped["summary"]["all"]["EA"], "arms": rows, "best": best, "ships": wins}
    print(f"best arm: {best}; {'it replaces the shipped model' if wins else 'the shipped model stays'}")
    if wins and args.pack:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "model"
            subprocess.run([sys.executable, "scripts/ship_model.py", str(Path(args.models) / f"{args.prefix}{best}" / "model"),
                            str(copy)], check=True)
            with tarfile.open(args.pack, "w:gz") as tar:
                tar.add(copy, arcname=f"{args.prefix}{best}")
    if args.json:
        Path(args.json).write_text(json.dumps(decision, indent=1))


if __name__ == "__main__":
    main()
