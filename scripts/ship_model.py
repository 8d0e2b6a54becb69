"""Copy a trained model folder into the size the repo ships: float16 weights (safetensors), each
file checked against the size limit (16 MiB) and the total against 40 MiB.

    python scripts/ship_model.py runs/mini/3_uso/model revise/assets/models/mini
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from revise.models.revise_model import ReviseModel

FILE_LIMIT, TOTAL_LIMIT = 16 * 2**20, 40 * 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--name", default="revise-mini")
    args = ap.parse_args()
    model = ReviseModel.from_pretrained(args.src, dtype=torch.float16)
    model.name = args.name
    out = model.save_pretrained(args.dst)
    files = [p for p in Path(out).rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    big = [f"{p} ({p.stat().st_size / 2**20:.1f} MiB)" for p in files if p.stat().st_size >= FILE_LIMIT]
    print(f"wrote {out}: {len(files)} files, {total / 2**20:.1f} MiB")
    if big or total >= TOTAL_LIMIT:
        raise SystemExit(f"over the shipping limits: {', '.join(big) or f'total {total / 2**20:.1f} MiB'}")


if __name__ == "__main__":
    main()
