"""Evaluate the mini-model ablation in one process: the critic on held-out critic data, and each
generator model on the val and test splits with the exact judge (per subset and category, with a
bootstrap interval of the mean), plus the unedited-source floor and the ceiling the VAE sets (the exact
targets encoded and decoded). Writes RUNS/eval/results.json and
picks the model with the best val Overall.

    python scripts/eval_mini.py --runs runs/mini --data data --models 2_sft 3_rwo 3_uso
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from revise.models.revise_model import ReviseModel
from revise.pipelines.edit import ReviseEditPipeline
from revise.stats import bootstrap_interval
from revise.synth.dataset import CLIP_FORMATS
from revise.synth.evaluate import METRICS, score_split
from revise.synth.run import critic_report, generate_split
from revise.video import read_video, write_video


def summary_with_intervals(result: dict) -> dict:
    rows = [r for r in result["items"] if not r.get("missing")]
    out = dict(result["summary"])
    out["interval95"] = {m: bootstrap_interval([r[m] for r in rows]) for m in METRICS}
    return out


@torch.no_grad()
def vae_round_trip(model: ReviseModel, split_json: Path, out_dir: Path, clip_format: str, batch: int) -> Path:
    """Write each item's exact target after a VAE encode and decode, as ``out_dir/{id}.{clip_format}``."""
    records = json.loads(split_json.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(records), batch):
        chunk = records[i:i + batch]
        clips = torch.stack([read_video(split_json.parent / r["target_video_path"], r.get("frames", 17),
                                        r.get("height", 64), r.get("width", 64)) for r in chunk])
        rec = model.decode_latents(model.encode_video(clips.to(model.device, model.dtype))).float().cpu()
        for r, clip in zip(chunk, rec):
            write_video(out_dir / f"{r['id']}.{clip_format}", clip, fps=8)
    return out_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/mini")
    ap.add_argument("--data", default="data")
    ap.add_argument("--models", nargs="+", default=["2_sft", "3_sft", "3_rwo", "3_uso"])
    ap.add_argument("--critic-model", default="1_critic")
    ap.add_argument("--critic-items", type=int, default=100, help="test items whose critic questions are asked")
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--format", choices=CLIP_FORMATS, default="mp4",
                    help="generated clips: mp4 (default) or npy (uint8 arrays, no codec); the data may be either")
    ap.add_argument("--vae-only", action="store_true", help="only the VAE ceiling of the first model (a quick check)")
    args = ap.parse_args()
    runs, data = Path(args.runs), Path(args.data)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    results: dict = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "models": {}}

    if args.vae_only:
        model = ReviseModel.load(runs / args.models[0] / "model", device=dev, dtype=dtype)
        for split in args.splits:
            split_json = data / f"mini-{split}" / f"{split}.json"
            out = vae_round_trip(model, split_json, runs / "eval" / split / "vae_ceiling", args.format, args.batch)
            s = score_split(split_json, out, progress=False, workers=args.workers)["summary"]["all"]
            print(f"targets through the VAE of {args.models[0]}, {split}: " + " ".join(f"{m} {s[m]:.2f}" for m in METRICS))
        return
    t0 = time.perf_counter()
    crit_json = data / "mini-test" / "test_critic.json"
    records = json.loads(crit_json.read_text())
    keep = sorted({r["id"] for r in records})[: args.critic_items]
    subset = [r for r in records if r["id"] in set(keep)]
    sub_path = crit_json.with_name("test_critic_eval.json")
    sub_path.write_text(json.dumps(subset))
    model = ReviseModel.load(runs / args.critic_model / "model", device=dev, dtype=dtype)
    results["critic"] = critic_report(model, sub_path, batch_size=args.batch, progress=False)
    results["critic"]["items"] = len(keep)
    print(f"critic: overall accuracy {results['critic']['question/overall']['accuracy']:.3f}, balanced "
          f"{results['critic']['question/overall']['balanced_accuracy']:.3f} ({time.perf_counter() - t0:.0f} s)")

    for split in args.splits:
        split_json = data / f"mini-{split}" / f"{split}.json"
        results.setdefault("source", {})[split] = summary_with_intervals(
            score_split(split_json, "source", progress=False, workers=args.workers))
    # the ceiling the VAE sets: every exact target encoded and decoded by the generators' (shared) VAE
    vae_model = ReviseModel.load(runs / args.models[0] / "model", device=dev, dtype=dtype)
    for split in args.splits:
        split_json = data / f"mini-{split}" / f"{split}.json"
        out = vae_round_trip(vae_model, split_json, runs / "eval" / split / "vae_ceiling", args.format, args.batch)
        results.setdefault("vae_ceiling", {})[split] = summary_with_intervals(
            score_split(split_json, out, progress=False, workers=args.workers))
        s = results["vae_ceiling"][split]["all"]
        print(f"targets through the VAE, {split}: " + " ".join(f"{m} {s[m]:.2f}" for m in METRICS))
    del vae_model
    for name in args.models:
        pipe = ReviseEditPipeline(ReviseModel.load(runs / name / "model", device=dev, dtype=dtype))
        for split in args.splits:
            t = time.perf_counter()
            split_json = data / f"mini-{split}" / f"{split}.json"
            out = generate_split(pipe, split_json, runs / "eval" / split / name, batch_size=args.batch, progress=False,
                                 clip_format=args.format)
            scored = score_split(split_json, out, progress=False, workers=args.workers)
            results["models"].setdefault(name, {})[split] = summary_with_intervals(scored)
            s = scored["summary"]["all"]
            print(f"{name} {split}: " + " ".join(f"{m} {s[m]:.2f}" for m in METRICS) + f" ({time.perf_counter() - t:.0f} s)")
    if "val" in args.splits:
        best = max(args.models, key=lambda n: results["models"][n]["val"]["all"]["overall"])
        results["best_by_val"] = best
        print(f"best by val Overall: {best}")
    (runs / "eval").mkdir(parents=True, exist_ok=True)
    (runs / "eval" / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
