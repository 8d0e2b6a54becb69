"""How often the exact RVE-Synth judge ranks target > near-miss > unedited source.

Items come from the task families (test split, the families and their subsets in turn). Near-misses:

* ``half`` (default): the edit carried half way (`critic_data.half_done_states`): every object, the
  light, the puddle and the water levels half way from the source to the target; where that makes
  objects run into each other (mirroring collapses every object onto the middle, a swap meets half
  way), the fraction nearest 1/2 at which none do. Closer to the target than the source by
  construction, and a state the world can show.
* ``midway``: strictly half way, objects running into each other or not (they hide each other and
  blink, which the judge rightly counts against naturalness).
* ``wrong_place``: the critic data's candidate with the edited object's target track shifted
  sideways by 0.1-0.2 (or the light off by 0.3; the edit on the wrong object where there is no
  such candidate). It is not closer to the target than the source by construction: it is ranked
  correctly when target > near-miss and near-miss and source come in the order of their exact
  distance from the target (:func:`distance`, from the simulator's states); the strict
  target > near-miss > source share is printed too.

* ``other``: the exact target of another instruction on the same source (RVE-Synth v2 groups,
  ``--n`` groups of the dataset's kind schedule): ranked correctly when the item's own target scores
  above it on both EA and Overall.

A near-miss whose clip equals the target's or the source's pixel for pixel is no near-miss (no
judge can rank it) and is left out, as are items without one.

    python benchmarks/judge_ranking.py [--n 200] [--seed 0] [--near half|midway|wrong_place|other]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import numpy as np

from revise.synth.critic_data import critic_candidates, half_done_states
from revise.synth.dataset import KIND_SCHEDULE
from revise.synth.render import render_clip
from revise.synth.judge import score_item
from revise.synth.tasks import FAMILIES, generate_group, make_item


def distance(item, states) -> float:
    """How far world states are from the item's target (world units), the mean over frames of: each
    object's distance from its target position plus its size difference (1 where it is present in
    one and not the other), the light level's and the puddle's differences, the containers' water
    height differences, and the height of each wall that is in one scene but not the other."""
    per_frame = []
    for s, t in zip(states, item.target_states()):
        d = abs(s.light - t.light) + abs(s.puddle - t.puddle)
        for o in t.objects:
            a = s.obj(o.name)
            if a.present != o.present:
                d += 1.0
            elif o.present:
                d += math.hypot(a.x - o.x, a.y - o.y) + abs(a.size - o.size)
        d += sum(abs(a.level - c.level) * c.height for a, c in zip(s.containers, t.containers))
        d += sum(w.height for w in s.walls if w not in t.walls) + sum(w.height for w in t.walls if w not in s.walls)
        per_frame.append(d)
    return float(np.mean(per_frame))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--near", choices=["half", "midway", "wrong_place", "other"], default="half")
    args = ap.parse_args()
    if args.near == "other":
        return other_targets(args.n, args.seed)
    t0 = time.perf_counter()
    ok = strict = used = 0
    fails = Counter()
    jobs = [(name, subset) for name in sorted(FAMILIES) for subset in FAMILIES[name].subsets]
    for i in range(args.n):
        family, subset = jobs[i % len(jobs)]
        rng = np.random.default_rng([args.seed, i])
        item = make_item(rng, FAMILIES[family], "test", subset)
        target, source = item.target_clip(), item.source_clip()
        order = None                     # for wrong_place: whether it is nearer the target than the source
        if args.near in ("half", "midway"):
            states = half_done_states(item, keep_apart=args.near == "half")
            near = None if states is None else render_clip(states)
        else:
            cands = {c["kind"]: c for c in critic_candidates(item, rng)}
            cand = cands.get("wrong_place") or cands.get("wrong_object") or {}
            near = cand.get("video")
            if near is not None:
                order = distance(item, cand["states"]) < distance(item, item.source_states())
        if near is None or np.array_equal(near, target) or np.array_equal(near, source):
            continue
        used += 1
        s = {k: score_item(item, v)["overall"] for k, v in (("target", target), ("near", near), ("source", source))}
        strict += s["target"] > s["near"] > s["source"]
        if order is not None:
            good = s["target"] > s["near"] and (s["near"] > s["source"]) == order and s["near"] != s["source"]
        else:
            good = s["target"] > s["near"] > s["source"]
        ok += good
        if not good:
            fails[family] += 1
    criterion = "target > near-miss > source" if args.near != "wrong_place" else \
        "target > near-miss, near-miss vs source by exact distance"
    print(f"| near-miss | items | with a near-miss | {criterion} | strict target > near-miss > source | time |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {args.near} | {args.n} | {used} | {ok} ({100 * ok / max(used, 1):.1f}%) | "
          f"{strict} ({100 * strict / max(used, 1):.1f}%) | {time.perf_counter() - t0:.0f} s |")
    if fails:
        print("misranked by family: " + ", ".join(f"{k} {v}" for k, v in fails.most_common()))


def other_targets(n: int, seed: int) -> None:
    """Each item of ``n`` v2 groups scored on its own target and on its group's other targets."""
    t0 = time.perf_counter()
    ok = pairs = 0
    ea = {"source": [], "other": []}
    fails = Counter()
    for j in range(n):
        items, source, targets = generate_group(np.random.default_rng([seed, j]), KIND_SCHEDULE[j % len(KIND_SCHEDULE)],
                                                "test")
        for a, item in enumerate(items):
            own = score_item(item, targets[a])
            ea["source"].append(score_item(item, source)["EA"])
            for b, other in enumerate(targets):
                if b != a:
                    s = score_item(item, other)
                    ea["other"].append(s["EA"])
                    good = own["EA"] > s["EA"] and own["overall"] > s["overall"]
                    ok, pairs = ok + good, pairs + 1
                    if not good:
                        fails[f"{item.family} vs {items[b].family}"] += 1
    print("| near-miss | groups | pairs | own target above (EA and Overall) | EA of the other target | "
          "EA of the source | time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| other | {n} | {pairs} | {ok} ({100 * ok / max(pairs, 1):.1f}%) | {np.mean(ea['other']):.2f} | "
          f"{np.mean(ea['source']):.2f} | {time.perf_counter() - t0:.0f} s |")
    if fails:
        print("misranked: " + ", ".join(f"{k} {v}" for k, v in fails.most_common()))


if __name__ == "__main__":
    main()
