"""How often the exact RVE-Synth judge ranks target > near-miss > unedited source.

Items come from the task families (test split, balanced over families); the near-miss is the
critic data's ``wrong_place`` candidate (the edited object's target track shifted sideways, or the
light level off), falling back to ``wrong_object`` where an item has none.

    python benchmarks/judge_ranking.py [--n 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from revise.synth.critic_data import critic_candidates
from revise.synth.dataset import plan
from revise.synth.judge import score_item
from revise.synth.tasks import FAMILIES, make_item


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ok, used, fails = 0, 0, Counter()
    for i, (_id, family, subset, _seed) in enumerate(plan(args.n, "test", args.seed)):
        rng = np.random.default_rng([args.seed, i])
        item = make_item(rng, FAMILIES[family], "test", subset)
        cands = {c["kind"]: c for c in critic_candidates(item, rng)}
        near = cands.get("wrong_place") or cands.get("wrong_object")
        if near is None:
            continue
        used += 1
        s = {k: score_item(item, v)["overall"] for k, v in
             (("target", cands["target"]["video"]), ("near", near["video"]), ("source", item.source_clip()))}
        if s["target"] > s["near"] > s["source"]:
            ok += 1
        else:
            fails[family] += 1
    print(f"| items | with a near-miss | target > near-miss > source | time |")
    print(f"| --- | --- | --- | --- |")
    print(f"| {args.n} | {used} | {ok} ({100 * ok / max(used, 1):.1f}%) | {time.perf_counter() - t0:.0f} s |")
    if fails:
        print("misranked by family: " + ", ".join(f"{k} {v}" for k, v in fails.most_common()))


if __name__ == "__main__":
    main()
