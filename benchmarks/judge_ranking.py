"""How often the exact RVE-Synth judge ranks target > near-miss > unedited source.

Items come from the task families (test split, balanced over families). Two kinds of near-miss:
``half`` (default): the edit carried half way (`critic_data.half_done_states`), closer to the target
than the source by construction; ``wrong_place``: the critic data's candidate with the edited
object's target track shifted sideways (or the light off), which may rightly score below the source.

    python benchmarks/judge_ranking.py [--n 200] [--seed 0] [--near half|wrong_place]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from revise.synth.critic_data import critic_candidates, half_done_states
from revise.synth.render import render_clip
from revise.synth.dataset import plan
from revise.synth.judge import score_item
from revise.synth.tasks import FAMILIES, make_item


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--near", choices=["half", "wrong_place"], default="half")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ok, used, fails = 0, 0, Counter()
    for i, (_id, family, subset, _seed) in enumerate(plan(args.n, "test", args.seed)):
        rng = np.random.default_rng([args.seed, i])
        item = make_item(rng, FAMILIES[family], "test", subset)
        if args.near == "half":
            near = render_clip(half_done_states(item))
        else:
            cands = {c["kind"]: c for c in critic_candidates(item, rng)}
            near = (cands.get("wrong_place") or cands.get("wrong_object") or {}).get("video")
        if near is None:
            continue
        used += 1
        s = {k: score_item(item, v)["overall"] for k, v in
             (("target", item.target_clip()), ("near", near), ("source", item.source_clip()))}
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
