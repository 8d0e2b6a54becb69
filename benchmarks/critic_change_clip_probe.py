"""Can the mini critic, trained from scratch, tell a right edit from no edit? With and without the change clip.

The stage-1 critic of the second run gave the exact target and the unedited source the same P(Yes) on
the edit-accuracy question (docs/results.md). This probe isolates that: RVE-Synth critic data reduced
to the edit-accuracy question with two candidates per item, the exact target (Yes) and the unedited
source (No); the mini preset's understanding VLM trained from scratch on it with the real critic
prompt, once shown the source and the edit only and once with ``critic_change_clip`` (also shown
(edit - source) / 2 as a third clip). Prints held-out accuracy and the mean P(Yes) of targets and of
sources as training goes.

    python benchmarks/critic_change_clip_probe.py --steps 150     # about 12 minutes on 2 CPU cores

``--all-negatives`` keeps every candidate kind (wrong place, wrong object, another family's edit,
flicker) on the edit-accuracy question and prints each kind's mean held-out P(Yes) at the end;
``--arms change`` trains the change-clip critic alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from revise.config import load_preset
from revise.critic import Critic
from revise.models.understanding import UnderstandingModel
from revise.synth.dataset import make_dataset
from revise.video import read_video


def edit_questions(folder: Path, n: int, split: str, seed: int, all_negatives: bool) -> list[tuple]:
    """(source, candidate, instruction, answer, kind) of the edit-accuracy question: the target and
    the unedited source, or every candidate kind."""
    make_dataset(n, split, seed, folder, progress=False, workers=2, critic=True, clip_format="npy")
    rows = json.loads((folder / f"{split}_critic.json").read_text())
    clip = lambda rel: read_video(folder / rel, 17, 64, 64)  # noqa: E731
    return [(clip(r["source_video_path"]), clip(r["candidate_video_path"]), r["instruction"],
             1.0 if r["answer"] == "Yes" else 0.0, r["kind"])
            for r in rows if r.get("dimension") == "edit_accuracy"
            and (all_negatives or r["kind"] in ("target", "source"))]


def run(change_clip: bool, train: list, val: list, steps: int, batch: int, lr: float, every: int) -> tuple[list, dict]:
    torch.manual_seed(0)
    vlm = UnderstandingModel.from_config(copy.deepcopy(load_preset("mini")["understanding"]))
    vlm.critic_change_clip = change_clip
    critic = Critic(vlm)
    opt = torch.optim.AdamW(vlm.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(0)

    def margin(rows):
        logits = critic.logits(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]),
                               [r[2] for r in rows], "edit_accuracy").float()
        return logits[:, 0] - logits[:, 1]

    log, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        rows = [train[i] for i in rng.choice(len(train), batch, replace=False)]
        loss = F.binary_cross_entropy_with_logits(margin(rows), torch.tensor([r[3] for r in rows]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vlm.parameters(), 1.0)
        opt.step()
        if step % every == 0 or step == steps:
            with torch.no_grad():
                p = torch.cat([torch.sigmoid(margin(val[i:i + 32])) for i in range(0, len(val), 32)])
            y = torch.tensor([r[3] for r in val])
            row = {"change_clip": change_clip, "step": step, "loss": loss.item(),
                   "val_accuracy": ((p > 0.5).float() == y).float().mean().item(),
                   "p_yes_target": p[[r[4] == "target" for r in val]].mean().item(),
                   "p_yes_source": p[[r[4] == "source" for r in val]].mean().item(),
                   "seconds": time.perf_counter() - start}
            print(json.dumps(row), flush=True)
            log.append(row)
    kinds = sorted({r[4] for r in val})
    by_kind = {k: float(np.mean([float(pi) for pi, r in zip(p, val) if r[4] == k])) for k in kinds}
    return log, by_kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--train-items", type=int, default=300)
    ap.add_argument("--val-items", type=int, default=60)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--all-negatives", action="store_true", help="every candidate kind, not only target and source")
    ap.add_argument("--arms", choices=("both", "change"), default="both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = edit_questions(Path(tmp) / "train", args.train_items, "train", 1, args.all_negatives)
        val = edit_questions(Path(tmp) / "val", args.val_items, "val", 0, args.all_negatives)
    print(f"{len(train)} training and {len(val)} held-out edit-accuracy questions")
    flags = (False, True) if args.arms == "both" else (True,)
    results = [run(flag, train, val, args.steps, args.batch, args.lr, args.every) for flag in flags]
    logs = [log for log, _ in results]
    print("\n| critic | step | held-out accuracy | P(Yes) target | P(Yes) unedited source |")
    print("| --- | --- | --- | --- | --- |")
    for log in logs:
        for r in log:
            name = "with the change clip" if r["change_clip"] else "source and edit only"
            print(f"| {name} | {r['step']} | {r['val_accuracy']:.3f} | {r['p_yes_target']:.3f} | "
                  f"{r['p_yes_source']:.3f} |")
    print("\nheld-out mean P(Yes) per candidate kind at the end:")
    for flag, (_, by_kind) in zip(flags, results):
        name = "with the change clip" if flag else "source and edit only"
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in by_kind.items()))


if __name__ == "__main__":
    main()
