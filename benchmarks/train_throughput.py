"""Training throughput and peak GPU memory of SFT, RWO and USO steps at the released shapes.

Runs the real trainer (`revise.train.Trainer`, bf16 autocast, AdamW, float32 master weights for the
trained DiT and visual context adapter, frozen modules in bf16) on the `wan2.1-1.3b` preset with
random weights, on clips of 17x352x640 written to a temporary folder, with and without gradient
checkpointing, the T5 features cached (`cache_text`) so the 5.7B text encoder leaves the GPU. Each
configuration runs in a fresh process. Prints one table row per (objective, checkpointing).

    python benchmarks/train_throughput.py [--objectives sft rwo uso] [--steps 3] [--checkpointing on off]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_data(root: Path, frames: int, height: int, width: int) -> Path:
    from revise.video import write_video

    rng = np.random.default_rng(0)
    items = []
    for i in range(2):
        for kind in ("s", "t"):
            write_video(root / f"{kind}{i}.mp4", rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8))
        items.append({"source_video_path": f"s{i}.mp4", "target_video_path": f"t{i}.mp4",
                      "instruction": "show the scene one second later", "type": "temporal"})
    (root / "train.json").write_text(json.dumps(items))
    return root / "train.json"


def run(objective: str, checkpointing: bool, data: Path, out: Path, args) -> dict:
    from revise.train.config import TrainConfig
    from revise.train.trainer import Trainer

    cfg = TrainConfig.from_dict(dict(model=args.preset, data=str(data), out=str(out), objective=objective,
                                     steps=10**6, mixed_precision="bf16", gradient_checkpointing=checkpointing,
                                     num_frames=args.frames, height=args.height, width=args.width,
                                     warmup_steps=1, lr=3e-6, save_every=10**6, cache_text=True))
    trainer = Trainer(cfg)
    torch.cuda.reset_peak_memory_stats()
    trainer.train_step()                                   # warm-up (allocator, kernels)
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        trainer.train_step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    row = {"objective": objective, "checkpointing": checkpointing, "step_s": float(np.median(times)),
           "samples_per_s": cfg.batch_size / float(np.median(times)),
           "peak_gib": torch.cuda.max_memory_allocated() / 1024**3,
           "trainable_params": sum(p.numel() for p in trainer.main_params)}
    del trainer
    torch.cuda.empty_cache()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="wan2.1-1.3b")
    ap.add_argument("--objectives", nargs="+", default=["sft", "rwo", "uso"])
    ap.add_argument("--checkpointing", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--height", type=int, default=352)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--one", nargs=4, metavar=("OBJECTIVE", "CKPT", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.one:
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    if args.one:
        objective, ckpt, data, out = args.one
        try:
            row = run(objective, ckpt == "on", Path(data), Path(out), args)
        except torch.OutOfMemoryError as err:
            row = {"objective": objective, "checkpointing": ckpt == "on", "oom": True,
                   "error": str(err).split(". Of the allocated")[0][:300]}
        print("ROW " + json.dumps(row), flush=True)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.frames, args.height, args.width)
        for ckpt in args.checkpointing:
            for objective in args.objectives:
                cmd = [sys.executable, __file__, "--one", objective, ckpt, str(data), f"{tmp}/run-{objective}-{ckpt}",
                       "--preset", args.preset, "--steps", str(args.steps), "--frames", str(args.frames),
                       "--height", str(args.height), "--width", str(args.width)]
                res = subprocess.run(cmd, capture_output=True, text=True)
                found = [l[4:] for l in res.stdout.splitlines() if l.startswith("ROW ")]
                if not found:
                    raise SystemExit(f"{objective}/{ckpt} failed:\n{res.stderr[-3000:]}")
                rows.append(json.loads(found[0]))
                print(found[0], flush=True)
    sft = {r["checkpointing"]: r["step_s"] for r in rows if r["objective"] == "sft" and "step_s" in r}
    print(f"\n| objective | grad. checkpointing | step (s) | samples/s | peak GPU memory (GiB) | step / SFT step |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r.get("oom"):
            print(f"| {r['objective']} | {'on' if r['checkpointing'] else 'off'} | out of memory | | | |")
            continue
        ratio = r["step_s"] / sft[r["checkpointing"]] if r["checkpointing"] in sft else float("nan")
        print(f"| {r['objective']} | {'on' if r['checkpointing'] else 'off'} | {r['step_s']:.2f} | "
              f"{r['samples_per_s']:.3f} | {r['peak_gib']:.1f} | {ratio:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
