"""Where a model's edits stop generalising: RVE-Synth items whose phrasing and main-object combination
are each seen in training or held out, one at a time, scored by the exact judge.

The test split holds out both at once (whole phrasings, and 8 of 21 colour/shape combinations), so
its score alone cannot say which of the two a model fails on. This makes four sets of N items and
edits each with MODEL:

- seen:         the first N training items themselves (`--split train --seed 0`, as the mini recipe makes them)
- new scenes:   new train-split items (train phrasings and combinations; `--seed 1`)
- new phrasing: test phrasings with train combinations (`--split test --combos train`)
- new combo:    train phrasings with test combinations (`--split train --combos test`)
- both (test):  the test split itself

    python benchmarks/holdout_probe.py --model revise/assets/models/mini --n 100 --work /tmp/holdout
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

SETS = {   # name -> (split, seed, combo split)
    "seen": ("train", 0, None),
    "new scenes": ("train", 1, None),
    "new phrasing": ("test", 0, "train"),
    "new combo": ("train", 2, "test"),
    "both (test)": ("test", 0, None),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="revise/assets/models/mini")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--work", default="outputs/holdout_probe", help="folder for the items and the edits")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from revise.pipelines.edit import ReviseEditPipeline
    from revise.synth.dataset import make_dataset
    from revise.synth.evaluate import score_split
    from revise.stats import bootstrap_interval
    from revise.synth.run import generate_split

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = ReviseEditPipeline.from_pretrained(args.model, device=device, dtype=dtype)
    rows = []
    for name, (split, seed, combos) in SETS.items():
        t = time.perf_counter()
        folder = Path(args.work) / name.split(" (")[0].replace(" ", "_")
        make_dataset(args.n, split, seed, folder, progress=False, workers=args.workers, clip_format="npy",
                     combo_split=combos)
        split_json = folder / f"{split}.json"
        out = generate_split(pipe, split_json, folder / "edits", batch_size=args.batch, progress=False,
                             clip_format="npy")
        items = [r for r in score_split(split_json, out, progress=False, workers=args.workers)["items"]
                 if not r.get("missing")]
        source = score_split(split_json, "source", progress=False, workers=args.workers)["summary"]["all"]
        mean = {m: sum(r[m] for r in items) / len(items) for m in ("EA", "PC", "GN", "GR", "overall")}
        lo, hi = bootstrap_interval([r["EA"] for r in items])
        rows.append((name, split, combos or split, len(items), mean, (lo, hi), source["EA"]))
        print(f"{name}: EA {mean['EA']:.2f} [{lo:.2f}, {hi:.2f}], Overall {mean['overall']:.2f} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    d = pipe.model.sampling_config
    print(f"\nmodel {args.model}, {args.n} items per set, exact judge, {d.num_inference_steps} UniPC steps, "
          f"guidance {d.guidance_scale:g} (the model's default), seed 0, {device}")
    print("| set | phrasings of | combinations of | n | EA [95% interval] | PC | GN | GR | Overall | unedited source EA |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, split, combos, n, m, (lo, hi), src in rows:
        print(f"| {name} | {split} | {combos} | {n} | {m['EA']:.2f} [{lo:.2f}, {hi:.2f}] | {m['PC']:.2f} | "
              f"{m['GN']:.2f} | {m['GR']:.2f} | {m['overall']:.2f} | {src:.2f} |")


if __name__ == "__main__":
    main()
