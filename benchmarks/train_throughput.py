"""Training throughput and peak GPU memory of SFT, RWO and USO steps at the released shapes, the DiT
trained in full or through a LoRA adapter.

Runs the real trainer (`revise.train.Trainer`, bf16 autocast, AdamW, float32 master weights for the
trained DiT and visual context adapter, frozen modules in bf16) on the `wan2.1-1.3b` preset with
random weights, on clips of 17x352x640 written to a temporary folder, with and without gradient
checkpointing, the T5 features cached (`cache_text`) so the 5.7B text encoder leaves the GPU. Each
configuration runs in a fresh process. Prints one table row per (objective, checkpointing, how the
DiT trains): in full (float32 master weights, gradients and Adam states for all of it) or, with
``--lora-ranks``, through a LoRA adapter of each rank on the attention projections (the config's
``lora:`` section, alpha = rank), its base weights frozen; with the trainable parameter count.

    python benchmarks/train_throughput.py [--objectives sft rwo uso] [--steps 3] [--checkpointing on off]
        [--lora-ranks 16 64] [--no-full]
    python benchmarks/train_throughput.py --preset tiny --frames 5 --height 32 --width 32 --objectives sft \
        --checkpointing on --lora-ranks 4 --steps 1          # CPU smoke run
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
    rng = np.random.default_rng(0)
    items = []
    for i in range(2):
        for kind in ("s", "t"):
            np.save(root / f"{kind}{i}.npy", rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8))
        items.append({"source_video_path": f"s{i}.npy", "target_video_path": f"t{i}.npy",
                      "instruction": "show the scene one second later", "type": "temporal"})
    (root / "train.json").write_text(json.dumps(items))
    return root / "train.json"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run(objective: str, checkpointing: bool, rank: int, data: Path, out: Path, args) -> dict:
    """One configuration's steps; ``rank`` 0 trains the DiT in full, else through a LoRA adapter."""
    from revise.train.config import TrainConfig
    from revise.train.trainer import Trainer

    cuda = torch.cuda.is_available()
    lora = {"lora": {"rank": rank, "alpha": float(rank)}} if rank else {}
    cfg = TrainConfig.from_dict(dict(model=args.preset, data=str(data), out=str(out), objective=objective,
                                     steps=10**6, mixed_precision="bf16", gradient_checkpointing=checkpointing,
                                     num_frames=args.frames, height=args.height, width=args.width,
                                     warmup_steps=1, lr=3e-6, save_every=10**6, cache_text=True, **lora))
    trainer = Trainer(cfg)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train_step()                                   # warm-up (allocator, kernels)
    sync()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        trainer.train_step()
        sync()
        times.append(time.perf_counter() - t)
    row = {"objective": objective, "checkpointing": checkpointing, "lora_rank": rank, "step_s": float(np.median(times)),
           "samples_per_s": cfg.batch_size / float(np.median(times)),
           "peak_gib": torch.cuda.max_memory_allocated() / 1024**3 if cuda else float("nan"),
           "trainable_params": sum(p.numel() for p in trainer.main_params)}
    del trainer
    if cuda:
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
    ap.add_argument("--lora-ranks", nargs="+", type=int, default=[], metavar="R",
                    help="also train the DiT through a LoRA adapter of each rank (e.g. 16 64)")
    ap.add_argument("--no-full", action="store_true", help="leave out the rows that train the DiT in full")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--one", nargs=5, metavar=("OBJECTIVE", "CKPT", "RANK", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        objective, ckpt, rank, data, out = args.one
        try:
            row = run(objective, ckpt == "on", int(rank), Path(data), Path(out), args)
        except torch.OutOfMemoryError as err:
            row = {"objective": objective, "checkpointing": ckpt == "on", "lora_rank": int(rank), "oom": True,
                   "error": str(err).split(". Of the allocated")[0][:300]}
        print("ROW " + json.dumps(row), flush=True)
        return
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {name}, torch {torch.__version__}")
    ranks = ([] if args.no_full else [0]) + list(args.lora_ranks)
    if not ranks or any(r < 0 for r in ranks):
        raise SystemExit("nothing to run: give LoRA ranks of at least 1, or leave out --no-full")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.frames, args.height, args.width)
        for ckpt in args.checkpointing:
            for objective in args.objectives:
                for rank in ranks:
                    cmd = [sys.executable, __file__, "--one", objective, ckpt, str(rank), str(data),
                           f"{tmp}/run-{objective}-{ckpt}-{rank}", "--preset", args.preset, "--steps", str(args.steps),
                           "--frames", str(args.frames), "--height", str(args.height), "--width", str(args.width)]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    found = [l[4:] for l in res.stdout.splitlines() if l.startswith("ROW ")]
                    if not found:
                        raise SystemExit(f"{objective}/{ckpt}/rank {rank} failed:\n{res.stderr[-3000:]}")
                    rows.append(json.loads(found[0]))
                    print(found[0], flush=True)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def dit_trained_as(rank: int) -> str:
    return f"LoRA rank {rank}" if rank else "in full"


def print_table(rows: list[dict]) -> None:
    """One row per configuration; each step's time also over the full-fine-tuning SFT step with the same
    checkpointing (the first such row), and the trainable parameters."""
    sft = {}
    for r in rows:
        if r["objective"] == "sft" and not r.get("lora_rank") and "step_s" in r:
            sft.setdefault(r["checkpointing"], r["step_s"])
    print("\n| objective | grad. checkpointing | DiT trained | trainable parameters | step (s) | samples/s | "
          "peak GPU memory (GiB) | step / full SFT step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        head = f"| {r['objective']} | {'on' if r['checkpointing'] else 'off'} | {dit_trained_as(r.get('lora_rank', 0))} |"
        if r.get("oom"):
            print(f"{head} | out of memory | | | |")
            continue
        ratio = r["step_s"] / sft[r["checkpointing"]] if r["checkpointing"] in sft else float("nan")
        print(f"{head} {r['trainable_params']:,} | {r['step_s']:.2f} | {r['samples_per_s']:.3f} | "
              f"{r['peak_gib']:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
