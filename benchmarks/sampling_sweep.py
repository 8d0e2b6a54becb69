"""Sampling choices for a model on an RVE-Synth split, scored by the exact judge: the guidance scale,
and best-of-n by the model's own critic.

For each guidance scale G and each seed k < SEEDS, every item is edited as `revise synth generate
--guidance G --seed k` edits it; each candidate is scored by the exact judge and by the model's
critic (P(Yes) of the overall question and of the edit-accuracy question). The table then gives, for
n = 1, 2, 4, ... SEEDS, the mean scores of the candidate kept among the first n seeds by:

- one sample:      no choice (the mean over the SEEDS seeds of a single edit)
- critic, overall: the highest P(Yes) of the overall question (what `revise edit --best-of n` keeps)
- critic, EA:      the highest P(Yes) of the edit-accuracy question
- judge (oracle):  the highest exact-judge Overall, the best any ranking of these candidates can do

and how often the critic (with `--critic-model`, another model's) orders two candidates of one item
as the judge's EA does (pairs whose EA differs by at least 1). Pick G on val and report test with it:

    python benchmarks/sampling_sweep.py --data data/mini-val/val.json --guidance 0 1.5 3 6 --seeds 1
    python benchmarks/sampling_sweep.py --data data/mini-test/test.json --guidance 3 --seeds 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from revise import stats
from revise.critic import Critic
from revise.models.revise_model import ReviseModel
from revise.pipelines.edit import ReviseEditPipeline
from revise.stats import bootstrap_interval
from revise.synth.evaluate import METRICS, score_split
from revise.synth.run import generate_split
from revise.video import read_video

QUESTIONS = {"critic, overall": None, "critic, EA": "edit_accuracy"}


@torch.no_grad()
def critic_p_yes(model: ReviseModel, records: list[dict], root: Path, edits: Path, batch: int) -> np.ndarray:
    """[items, 2] P(Yes) of the overall and the edit-accuracy question for each item's edit in ``edits``."""
    critic = Critic(model.understanding)
    d = model.sampling_config
    out = []
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        src = torch.stack([read_video(root / r["source_video_path"], d.num_frames, d.height, d.width) for r in chunk])
        cand = torch.stack([read_video(next(edits.glob(f"{r['id']}.*")), d.num_frames, d.height, d.width)
                            for r in chunk])
        src, cand = src.to(model.device, model.dtype), cand.to(model.device, model.dtype)
        text = [r["instruction"] for r in chunk]
        out.append(torch.stack([critic.score(src, cand, text, dimension=q) for q in QUESTIONS.values()], 1).float().cpu())
    return torch.cat(out).numpy()


def pick(values: np.ndarray, key: np.ndarray) -> np.ndarray:
    """values [items, seeds, metrics] at each item's argmax of key [items, seeds] (the first on ties)."""
    return values[np.arange(len(values)), key.argmax(1)]


def pair_agreement(p: np.ndarray, ea: np.ndarray) -> tuple[int, float]:
    """Pairs of one item's candidates (p, ea: [items, seeds]) whose judge EA differs by >= 1, and the
    share the critic orders alike (:func:`revise.stats.pair_agreement`)."""
    groups = np.repeat(np.arange(len(p)), p.shape[1])
    pairs, agreeing = stats.pair_agreement(p.ravel(), ea.ravel(), groups)
    return pairs, agreeing / pairs if pairs else float("nan")


def group_rows(records: list[dict], kept: np.ndarray) -> dict[str, dict]:
    """Means of kept [items, metrics] for all items, per subset and per subset/category."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        for key in ("all", r["subset"], f"{r['subset']}/{r['category']}"):
            groups.setdefault(key, []).append(i)
    order = sorted(groups, key=lambda k: (k != "all", k.split("/")[0], "/" in k, k))
    return {k: {"n": len(groups[k]), **{m: float(kept[groups[k], j].mean()) for j, m in enumerate(METRICS)}}
            for k in order}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="revise/assets/models/mini")
    ap.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    ap.add_argument("--critic-model", help="rank with this model's critic instead (default: MODEL's own)")
    ap.add_argument("--guidance", type=float, nargs="+", help="guidance scales (default: the model's)")
    ap.add_argument("--seeds", type=int, default=4, help="candidates per item (seeds 0..SEEDS-1)")
    ap.add_argument("--work", default="outputs/sampling_sweep", help="folder for the edits (kept: a rerun resumes)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="judge processes")
    ap.add_argument("--json", help="write every candidate's scores and the table here")
    args = ap.parse_args()
    data = Path(args.data)
    problem = (f"{data} does not exist" if not data.is_file() else
               "--seeds must be at least 1" if args.seeds < 1 else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = ReviseModel.load(args.model, device=dev, dtype=torch.bfloat16 if dev == "cuda" else torch.float32)
    pipe = ReviseEditPipeline(model)
    judge_model = model if not args.critic_model else ReviseModel.load(args.critic_model, device=dev, dtype=model.dtype)
    records = json.loads(data.read_text())
    guidances = args.guidance or [model.sampling_config.guidance_scale]
    print(f"{args.model} on {data} ({len(records)} items), {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}")
    if args.critic_model:
        print(f"ranked by the critic of {args.critic_model}")
    report: dict = {"model": args.model, "critic_model": args.critic_model or args.model, "data": str(data),
                    "seeds": args.seeds, "guidance": {}}
    for g in guidances:
        t = time.perf_counter()
        judged, critic = [], []
        for k in range(args.seeds):
            edits = Path(args.work) / data.stem / f"g{g:g}" / f"seed{k}"
            generate_split(pipe, data, edits, batch_size=args.batch, seed=k, progress=False, clip_format="npy",
                           guidance_scale=g)
            rows = score_split(data, edits, progress=False, workers=args.workers)["items"]
            judged.append([[r[m] for m in METRICS] for r in rows])
            critic.append(critic_p_yes(judge_model, records, data.parent, edits, args.batch))
        judged_a = np.array(judged).transpose(1, 0, 2)    # [items, seeds, metrics]
        critic_a = np.array(critic).transpose(1, 0, 2)    # [items, seeds, questions]
        rows = {}
        n = 1
        while n <= args.seeds:
            sub, crit = judged_a[:, :n], critic_a[:, :n]
            choices = {"one sample": judged_a.mean(1) if n == 1 else None,
                       **{name: pick(sub, crit[:, :, i]) for i, name in enumerate(QUESTIONS)},
                       "judge (oracle)": pick(sub, sub[:, :, METRICS.index("overall")])}
            for name, kept in choices.items():
                if kept is None or (n == 1 and name != "one sample"):
                    continue
                rows[f"{name}, n={n}"] = {
                    **{m: float(kept[:, i].mean()) for i, m in enumerate(METRICS)},
                    "EA_interval95": bootstrap_interval(kept[:, 0]),
                    "overall_interval95": bootstrap_interval(kept[:, -1])}
            n *= 2
        by_group = group_rows(records, judged_a[:, 0])
        agree = {name: pair_agreement(critic_a[:, :, i], judged_a[:, :, 0]) for i, name in enumerate(QUESTIONS)}
        report["guidance"][f"{g:g}"] = {"rows": rows, "seed0_groups": by_group, "pair_agreement": agree,
                                        "seconds": time.perf_counter() - t, "judged": judged_a.tolist(), "critic": critic_a.tolist(),
                                        "ids": [r["id"] for r in records]}
        print(f"\nguidance {g:g}: {args.seeds} seed(s), {time.perf_counter() - t:.0f} s")
        print(f"| kept | {' | '.join(METRICS)} | EA 95% | Overall 95% |")
        print("| --- " * (len(METRICS) + 3) + "|")
        for name, r in rows.items():
            lo, hi = r["EA_interval95"]
            olo, ohi = r["overall_interval95"]
            print(f"| {name} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS) + f" | [{lo:.2f}, {hi:.2f}] | [{olo:.2f}, {ohi:.2f}] |")
        print(f"seed 0 per subset and category:\n| group | n | {' | '.join(METRICS)} |\n" + "| --- " * (len(METRICS) + 2) + "|")
        for k, r in by_group.items():
            print(f"| {k} | {r['n']} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS) + " |")
        if args.seeds > 1:
            for name, (pairs, rate) in agree.items():
                print(f"{name}: orders {rate:.2f} of {pairs} candidate pairs as the judge's EA does")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
