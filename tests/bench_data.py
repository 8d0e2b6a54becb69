"""Small RVE-Bench data for tests: clips of a coloured square on a gradient, a manifest, and a run
folder of outputs imported with ``revise bench run --videos``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from revise.cli import main
from revise.video import write_video

CATEGORIES = ("causal", "temporal", "spatial", "commonsense")


def clip(seed: int, frames: int = 9, size: int = 32) -> np.ndarray:
    """uint8 [F, H, W, 3]: a square moving over a gradient; ``seed`` picks colour and path."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 4, yy * 4, np.full_like(xx, 60)], -1).astype(np.uint8)
    colour = rng.integers(80, 255, 3)
    out = np.repeat(base[None], frames, 0)
    for t in range(frames):
        x = (int(rng.integers(0, 8)) + 2 * t) % (size - 8)
        out[t, 10:18, x:x + 8] = colour
    return out


def make_manifest(folder: Path, instructions: list[str], subsets: list[str] | None = None, targets: bool = True) -> Path:
    """Sources (and targets) under ``folder/videos``, a JSONL manifest with relative paths."""
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, text in enumerate(instructions):
        item_id = f"item-{i:03d}"
        write_video(folder / "videos" / f"{item_id}_src.mp4", clip(i))
        rec = {"id": item_id, "subset": (subsets or ["RAVE", "ICVG"])[i % len(subsets or ["RAVE", "ICVG"])],
               "category": CATEGORIES[i % 4], "source_video_path": f"videos/{item_id}_src.mp4",
               "instruction": text, "note": f"extra field {i}"}
        if targets:
            write_video(folder / "videos" / f"{item_id}_tgt.mp4", clip(1000 + i))
            rec["target_video_path"] = f"videos/{item_id}_tgt.mp4"
        lines.append(json.dumps(rec))
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_run(folder: Path, instructions: list[str], method: str = "baseline", **kw) -> tuple[Path, Path]:
    """A manifest and a run folder whose outputs are imported from a folder: (manifest, run dir)."""
    manifest = make_manifest(folder / "data", instructions, **kw)
    outs = folder / "outputs"
    outs.mkdir(parents=True, exist_ok=True)
    for i in range(len(instructions)):
        write_video(outs / f"item-{i:03d}.mp4", clip(2000 + i))
    run = folder / method
    assert main(["bench", "run", "--manifest", str(manifest), "--videos", str(outs), "--method", method,
                 "--out", str(run), "--quiet"]) == 0
    return manifest, run
