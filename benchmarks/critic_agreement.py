"""Issue #22's gate: how often each critic orders two of the generator's own candidates for one held-out
item as the exact judge does, several critics in one call.

The generator (``--model``) edits every item of a split ``--seeds`` times (seeds 0..SEEDS-1, as
``revise synth generate --seed k``; kept in ``--work``, so a rerun or another critic reuses them); the
exact judge scores each candidate; then each critic (``--critics``, model folders or presets whose
VLM is the critic) gives P(Yes) of the overall and the edit-accuracy question for each candidate, and
the table gives, per critic and question, the share of candidate pairs whose judge EA differs by at
least 1 that the critic orders the same way (``sampling_sweep.pair_agreement``). The target before
any stage 3 is 0.75 on the edit-accuracy question. With ``--negatives`` (critic data, e.g.
``data/mini-test/test_critic.json``) it also gives each critic's mean P(Yes) on the fixed held-out
negatives (``revise.synth.run.critic_drift_report``): run it on a model before and after a training
run to see whether its critic drifted toward Yes.

    python benchmarks/critic_agreement.py --model runs/mini/2_sft/model --data data/mini-val/val.json \\
        --critics runs/mini/2_sft/model runs/critic_b/model runs/critic_c/model --seeds 4 \\
        --negatives data/mini-test/test_critic.json --json outputs/critic_agreement.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

import numpy as np
import torch

from revise.models.revise_model import ReviseModel
from revise.pipelines.edit import ReviseEditPipeline
from revise.synth.evaluate import METRICS, score_split
from revise.synth.run import critic_drift_report, generate_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling_sweep import QUESTIONS, critic_p_yes, pair_agreement  # noqa: E402

GATE = 0.75


def candidates(model: ReviseModel, data: Path, seeds: int, work: Path, batch: int, workers: int,
               **sampling) -> tuple[list[Path], np.ndarray]:
    """The generator's edits of every item for seeds 0..seeds-1 (folders) and their judge EA [items, seeds]."""
    pipe = ReviseEditPipeline(model)
    folders, ea = [], []
    for k in range(seeds):
        edits = work / f"seed{k}"
        generate_split(pipe, data, edits, batch_size=batch, seed=k, progress=False, clip_format="npy", **sampling)
        rows = score_split(data, edits, progress=False, workers=workers)["items"]
        folders.append(edits)
        ea.append([r[METRICS[0]] for r in rows])
    return folders, np.array(ea).T


def measure(critic: ReviseModel, records: list[dict], root: Path, folders: list[Path], ea: np.ndarray,
            batch: int, negatives: Path | None = None) -> dict:
    """One critic's pair agreement per question on the candidates in ``folders`` (judge EA ``ea``), and
    with ``negatives`` its mean P(Yes) on them."""
    p = np.stack([critic_p_yes(critic, records, root, f, batch) for f in folders], 1)   # [items, seeds, questions]
    out: dict = {"pair_agreement": {}}
    for i, name in enumerate(QUESTIONS):
        pairs, rate = pair_agreement(p[:, :, i], ea)
        out["pair_agreement"][name] = {"pairs": pairs, "rate": rate}
    out["gate"] = out["pair_agreement"]["critic, EA"]["rate"] >= GATE
    if negatives is not None:
        out["negatives"] = critic_drift_report(critic, negatives, batch_size=batch, progress=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the generator whose candidates are ranked")
    ap.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make' (held-out items)")
    ap.add_argument("--critics", nargs="+", help="models whose critic ranks them (default: MODEL's own)")
    ap.add_argument("--seeds", type=int, default=4, help="candidates per item (seeds 0..SEEDS-1)")
    ap.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    ap.add_argument("--negatives", help="critic data whose held-out negatives' mean P(Yes) is reported")
    ap.add_argument("--work", default="outputs/critic_agreement", help="folder for the edits (kept: a rerun resumes)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="judge processes")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    data = Path(args.data)
    problem = (f"{data} does not exist" if not data.is_file() else
               "--seeds must be at least 2 (pairs of candidates)" if args.seeds < 2 else
               f"{args.negatives} does not exist" if args.negatives and not Path(args.negatives).is_file() else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    model = ReviseModel.load(args.model, device=dev, dtype=dtype)
    records = json.loads(data.read_text())
    sampling = {} if args.guidance is None else {"guidance_scale": args.guidance}
    work = Path(args.work) / Path(args.model).name / data.stem / f"g{args.guidance if args.guidance is not None else 'default'}"
    folders, ea = candidates(model, data, args.seeds, work, args.batch, args.workers, **sampling)
    print(f"{args.model}: {args.seeds} candidates for each of {len(records)} items of {data}; judge EA "
          f"{ea.mean():.2f}, {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}")
    report = {"model": args.model, "data": str(data), "seeds": args.seeds, "judge_ea": ea.tolist(), "critics": {}}
    print("| critic | question | pairs | agreement | gate (EA >= 0.75) | P(Yes) on negatives |\n| --- | --- | --- | --- | --- | --- |")
    for name in args.critics or [args.model]:
        critic = model if name == args.model else ReviseModel.load(name, device=dev, dtype=dtype)
        r = measure(critic, records, data.parent, folders, ea, args.batch, Path(args.negatives) if args.negatives else None)
        report["critics"][name] = r
        neg = f"{r['negatives']['mean_p_yes']:.3f} (n={r['negatives']['n']})" if "negatives" in r else ""
        for q, a in r["pair_agreement"].items():
            print(f"| {name} | {q} | {a['pairs']} | {a['rate']:.3f} | {'yes' if r['gate'] else 'no'} | {neg} |")
        if critic is not model:
            del critic
            gc.collect()
            if dev == "cuda":
                torch.cuda.empty_cache()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
