"""Candidates for training and testing the VLM as a critic on RVE-Synth.

For one item, :func:`critic_candidates` returns the exact target (every answer Yes) and negatives
built from the item's own scenes, each with per-dimension Yes/No labels that agree with the exact
judge (:mod:`revise.synth.judge`):

=================  =============  ============  =============  =======
kind               edit_accuracy  preservation  naturalness    realism
=================  =============  ============  =============  =======
target             Yes            Yes           Yes            Yes
source             No             Yes/No [1]_   Yes            Yes
wrong_family       No             Yes/No [2]_   Yes            Yes
wrong_place        No             Yes           Yes            Yes
wrong_object       No             No            Yes            Yes
flicker            Yes            Yes           No             Yes
=================  =============  ============  =============  =======

.. [1] No when the target's preserved objects are knocked off their source tracks by the edit.
.. [2] a different edit of the source: the light changed instead (No: the light must be kept), or,
   for light edits, an object pushed 0.2 instead (No when a preserved object goes off its track).

Preservation labels come from the exact states: Yes within half the judge's position tolerance,
No when 1.5x off in a quarter of the frames; a candidate in between is left out. ``wrong_place``
moves the edited object's whole target track 0.2 (or 0.15, 0.1) sideways where it stays in frame
and passes through no other object (for light-only edits: the light off by 0.3); ``wrong_object``
applies the edited object's change (source -> target) to a preserved one, and is left out when that
changes nothing visible; ``flicker`` duplicates and drops frames of a moving target, or makes an
object blink out in two frames of a still one.

``answer`` (the overall label) is Yes only if all four labels are Yes.
"""

from __future__ import annotations

import math

import numpy as np

from ..vocab import CRITIC_DIMENSION
from .item import SynthItem
from .render import render_clip
from .judge import POS_TOL
from .world import Scene, simulate

LABELS = ("edit_accuracy", "preservation", "naturalness", "realism")
SHIFT = 0.2


def _cand(kind: str, video: np.ndarray, states: list[Scene] | None = None, **labels: bool) -> dict:
    lab = {k: "Yes" if labels.get(k, True) else "No" for k in LABELS}
    return {"kind": kind, "video": video, "states": states, "labels": lab,
            "answer": "Yes" if all(v == "Yes" for v in lab.values()) else "No"}


def _preserved(item: SynthItem, states: list[Scene], target: list[Scene]) -> bool | None:
    """True: the preserved objects follow their target tracks (within half the judge's tolerance);
    False: one is clearly off (1.5x the tolerance) in a quarter of the frames or more; None: unclear."""
    off = []
    for s, t in zip(states, target):
        dev = 0.0
        for name in item.preserve:
            a, b = s.obj(name), t.obj(name)
            if a.present != b.present:
                dev = 1.0
            elif a.present:
                dev = max(dev, abs(a.x - b.x), abs(a.y - b.y), abs(a.size - b.size))
        off.append(dev)
    off = np.array(off)
    if off.max(initial=0.0) <= POS_TOL / 2:
        return True
    if np.mean(off > 1.5 * POS_TOL) >= 0.25:
        return False
    return None


def _sim(item: SynthItem, scene: Scene, start: float) -> list[Scene]:
    return simulate(scene, item.frames, start)


def _moves(states: list[Scene], w: int) -> bool:
    """Whether some object moves by 2+ pixels in most frames (so dropped frames show)."""
    steps = []
    for a, b in zip(states, states[1:]):
        steps.append(max([abs(p.x - q.x) + abs(p.y - q.y) for p, q in zip(a.objects, b.objects)
                          if p.present and q.present] or [0.0]))
    return bool(np.mean(np.array(steps) >= 2.0 / w) > 0.75)


def critic_candidates(item: SynthItem, rng: np.random.Generator, height: int = 64, width: int = 64) -> list[dict]:
    """The target and its negatives for ``item`` (see the module doc), each
    {"kind", "video": uint8 [F, H, W, 3], "states": the world states shown where the candidate
    is a world state (wrong_place, wrong_object), else None, "labels": {dimension: "Yes"/"No"},
    "answer"}."""
    h, w = height, width
    target = item.target_states()
    out = [_cand("target", render_clip(target, h, w))]
    kept = _preserved(item, item.source_states(), target)
    if kept is not None:
        out.append(_cand("source", item.source_clip(h, w), edit_accuracy=False, preservation=kept))
    names = [o.name for o in item.target.objects]
    edited = [n for n in item.edited if n in names]
    # in this order: each draws from ``rng``
    negatives = (_wrong_family(item, rng, names, target, h, w), _wrong_place(item, rng, edited, target, h, w),
                 _wrong_object(item, rng, names, edited, target, h, w), _flicker(item, rng, names, edited, target, h, w))
    return out + [c for c in negatives if c is not None]


def _wrong_family(item: SynthItem, rng: np.random.Generator, names: list[str], target: list[Scene],
                  h: int, w: int) -> dict | None:
    """A different edit of the same source: the light changed, or for light edits an object pushed."""
    if "light" not in item.scene_edit:
        s = item.source.copy()
        s.light = 0.45 if s.light >= 0.7 else 1.0
        return _cand("wrong_family", render_clip(_sim(item, s, item.source_start), h, w),
                     edit_accuracy=False, preservation=False)
    if names:
        s = item.source.copy()
        o = s.objects[int(rng.integers(len(s.objects)))]
        o.x = _shifted(o.x, o.size)
        states = _sim(item, s, item.source_start)
        kept = _preserved(item, states, target)
        if kept is not None:
            return _cand("wrong_family", render_clip(states, h, w), edit_accuracy=False, preservation=kept)
    return None


def _wrong_place(item: SynthItem, rng: np.random.Generator, edited: list[str], target: list[Scene],
                 h: int, w: int) -> dict | None:
    """The right object at the wrong place (its target track shifted sideways), or a scene edit by
    the wrong amount."""
    visible = [n for n in edited if sum(s.obj(n).present for s in target) > len(target) // 2]
    if visible:
        name = visible[int(rng.integers(len(visible)))]
        states = _shift_track(target, name)
        return None if states is None else _cand("wrong_place", render_clip(states, h, w), states,
                                                  edit_accuracy=False)
    if "light" in item.scene_edit:
        s = item.target.copy()
        s.light = float(np.clip(s.light + (0.3 if s.light < 0.7 else -0.3), 0.25, 1.0))
        states = _sim(item, s, item.target_start)
        return _cand("wrong_place", render_clip(states, h, w), states, edit_accuracy=False)
    return None


def _wrong_object(item: SynthItem, rng: np.random.Generator, names: list[str], edited: list[str],
                  target: list[Scene], h: int, w: int) -> dict | None:
    """The edit applied to a preserved object instead (None where that changes nothing visible)."""
    preserved = [n for n in item.preserve if n in names and n not in edited]
    if not (edited and preserved):
        return None
    e, p = edited[0], preserved[int(rng.integers(len(preserved)))]
    src, tgt = item.source.obj(e), item.target.obj(e)
    delta = {k: getattr(tgt, k) - getattr(src, k) for k in ("x", "y", "vx", "vy", "size")}
    if not any(abs(v) > 1e-6 for v in delta.values()) and src.present == tgt.present:
        return None
    s = item.target.copy()
    se = s.obj(e)
    for k in ("x", "y", "vx", "vy", "size", "present", "material"):
        setattr(se, k, getattr(src, k))
    sp = s.obj(p)
    for k, v in delta.items():
        setattr(sp, k, getattr(sp, k) + v)
    sp.size = max(sp.size, 0.02)
    sp.x = min(max(sp.x, sp.size), 1 - sp.size)
    sp.y = max(sp.y, sp.size + 0.15)
    if src.present != tgt.present:
        sp.present = tgt.present
    states = _sim(item, s, item.target_start)
    if _preserved(item, states, target) is False:
        return _cand("wrong_object", render_clip(states, h, w), states, edit_accuracy=False, preservation=False)
    return None


def _flicker(item: SynthItem, rng: np.random.Generator, names: list[str], edited: list[str], target: list[Scene],
             h: int, w: int) -> dict | None:
    """The target with frames dropped and duplicated, or (in a still scene) an object blinking out."""
    f = item.frames
    if _moves(target, w) and f >= 6:
        clip = render_clip(target, h, w)
        idx = np.arange(f)
        for k in range(2 + int(rng.integers(2)), f - 1, 4):
            idx[k] = idx[k - 1]            # a duplicated frame
            idx[k + 1] = min(k + 2, f - 1)  # then a dropped one
        return _cand("flicker", clip[idx], naturalness=False)
    if names and f >= 6:
        states = [s.copy() for s in target]
        name = (edited or names)[0]
        for k in (f // 3, 2 * f // 3):
            states[k].obj(name).present = False
        return _cand("flicker", render_clip(states, h, w), naturalness=False)
    return None


def _shift_track(target: list[Scene], name: str) -> list[Scene] | None:
    """The target states with ``name``'s whole track moved sideways by SHIFT (or less, at least
    0.1), to a side where it stays inside the frame and passes through no other object; None if
    there is no such shift."""
    xs = np.array([s.obj(name).x for s in target])
    size = max(s.obj(name).size for s in target)
    right, left = float((1 - size - xs).min()), float((xs - size).min())   # room on each side
    for mag in (SHIFT, 0.15, 0.1):
        for shift in ((mag, -mag) if right >= left else (-mag, mag)):
            if (shift > 0 and shift > right) or (shift < 0 and -shift > left):
                continue
            states = [s.copy() for s in target]
            ok = True
            for s in states:
                o = s.obj(name)
                o.x += shift
                if o.present and any(q.present and q is not o and math.hypot(q.x - o.x, q.y - o.y) < q.size + o.size
                                     for q in s.objects):
                    ok = False
                    break
            if ok:
                return states
    return None


def _shifted(x: float, size: float) -> float:
    """``x`` moved SHIFT to the right, or to the left where there is no room."""
    return x + SHIFT if x + SHIFT <= 1 - size - 0.01 else x - SHIFT


FRACTIONS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9)


def part_done_states(item: SynthItem, fraction: float) -> list[Scene]:
    """The edit carried out ``fraction`` of the way: each frame of the target with every object
    (present in both clips), the light level, the puddle and the containers' water levels that
    fraction of the way from the source's to the target's. Closer to the target than the unedited
    source is, by construction."""
    source, target = item.source_states(), item.target_states()

    def mix(a: float, b: float) -> float:
        return a + fraction * (b - a)

    out = []
    for s, t in zip(source, target):
        mid = t.copy()
        mid.light, mid.puddle = mix(s.light, t.light), mix(s.puddle, t.puddle)
        if len(s.containers) == len(mid.containers):
            for a, c in zip(s.containers, mid.containers):
                c.level = mix(a.level, c.level)
        by_name = {o.name: o for o in s.objects}
        for o in mid.objects:
            a = by_name.get(o.name)
            if a is None or not (a.present and o.present):
                continue
            o.x, o.y, o.size = mix(a.x, o.x), mix(a.y, o.y), mix(a.size, o.size)
        out.append(mid)
    return out


def _close_pairs(scene: Scene, slack: float = 0.9) -> set[tuple[str, str]]:
    """Pairs of present objects that run into each other (centres closer than ``slack`` times the
    sum of their sizes)."""
    live = [o for o in scene.objects if o.present]
    return {(a.name, b.name) for i, a in enumerate(live) for b in live[i + 1:]
            if math.hypot(a.x - b.x, a.y - b.y) < slack * (a.size + b.size)}


def _overlap(item: SynthItem, states: list[Scene]) -> bool:
    """Whether two objects run into each other in some frame of ``states`` where they do not in
    the source's nor the target's same frame (mid-collision): a state the world never shows."""
    for s, a, b in zip(states, item.source_states(), item.target_states()):
        if _close_pairs(s) - _close_pairs(a) - _close_pairs(b):
            return True
    return False


def half_done_states(item: SynthItem, keep_apart: bool = True) -> list[Scene] | None:
    """The edit carried out half way (:func:`part_done_states`). With ``keep_apart``, where half
    way makes objects run into each other (mirroring collapses every object onto the middle, a swap
    meets half way), the fraction nearest 1/2 of FRACTIONS at which none do, so the near-miss is a
    state the world can show (as for the wrong-place candidate); None if there is none."""
    for f in FRACTIONS if keep_apart else (0.5,):
        states = part_done_states(item, f)
        if not keep_apart or not _overlap(item, states):
            return states
    return None


# the exact judge's metrics -> the critic's dimension names
JUDGE_DIMENSIONS = CRITIC_DIMENSION


def judged_records(split_records: list[dict], scores: list[dict], candidate_paths: dict[str, str],
                   yes_at: float = 8.0, no_at: float = 5.0) -> list[dict]:
    """Critic records for clips a model generated, labelled by the exact judge's scores.

    The critic otherwise sees only the exact target and negatives built from the item's scenes,
    never a generator's output; these records show it those too, so what a generator gets wrong
    (and what could fool the critic) becomes training data. Per dimension a score of at least
    ``yes_at`` is Yes and at most ``no_at`` is No; a score in between asks no question. The overall
    answer is No if any dimension is No, Yes if all four are Yes, else not asked. ``scores`` are the
    rows of :func:`revise.synth.evaluate.score_split`; ``candidate_paths`` maps an item id to its
    clip's path as the records should hold it (items without one, or missing, are skipped)."""
    if not no_at < yes_at:
        raise ValueError(f"no_at ({no_at}) must be below yes_at ({yes_at})")
    by_id = {r["id"]: r for r in split_records}
    out = []
    for row in scores:
        rec = by_id.get(row["id"])
        if rec is None or row.get("missing") or row["id"] not in candidate_paths:
            continue
        answers = {}
        for metric, dim in JUDGE_DIMENSIONS.items():
            if row[metric] >= yes_at:
                answers[dim] = "Yes"
            elif row[metric] <= no_at:
                answers[dim] = "No"
        if "No" in answers.values():
            overall = "No"
        elif len(answers) == len(JUDGE_DIMENSIONS):
            overall = "Yes"
        else:
            overall = None
        base = {"id": rec["id"], "kind": "generated", "source_video_path": rec["source_video_path"],
                "candidate_video_path": candidate_paths[row["id"]], "instruction": rec["instruction"],
                "type": rec["category"], "subset": rec["subset"], "category": rec["category"],
                "family": rec["family"]}
        if overall is not None:
            out.append({**base, "dimension": None, "answer": overall})
        out += [{**base, "dimension": dim, "answer": a} for dim, a in answers.items()]
    return out


# the question a preference pair is about -> the judge's metric that orders it
PAIR_QUESTIONS = {None: "overall", "edit_accuracy": "EA"}


def judged_pairs(split_records: list[dict], score_sets: list[list[dict]], candidate_sets: list[dict[str, str]],
                 min_gap: float = 1.0) -> list[dict]:
    """Preference pairs for the critic (the ``critic_pairwise`` objective) from several edits of each
    item that the exact judge scored: every two edits of one item whose judge score differs by at least
    ``min_gap`` give one record per question of :data:`PAIR_QUESTIONS` (the overall question ordered by
    the judge's overall score, the edit-accuracy one by EA), ``candidate_video_path`` the better edit and
    ``rival_video_path`` the worse. ``score_sets[k]`` are the rows of
    :func:`revise.synth.evaluate.score_split` for the edits whose paths ``candidate_sets[k]`` maps by id."""
    if min_gap <= 0:
        raise ValueError(f"min_gap must be above 0, got {min_gap}")
    if len(score_sets) != len(candidate_sets):
        raise ValueError("one candidate set per score set")
    scored: dict[str, list[tuple[dict, str]]] = {}
    for rows, paths in zip(score_sets, candidate_sets):
        for row in rows:
            if not row.get("missing") and row["id"] in paths:
                scored.setdefault(row["id"], []).append((row, paths[row["id"]]))
    out = []
    for rec in split_records:
        edits = scored.get(rec["id"], [])
        base = {"id": rec["id"], "kind": "generated_pair", "source_video_path": rec["source_video_path"],
                "instruction": rec["instruction"], "type": rec["category"], "subset": rec["subset"],
                "category": rec["category"], "family": rec["family"]}
        for a in range(len(edits)):
            for b in range(a + 1, len(edits)):
                for dimension, metric in PAIR_QUESTIONS.items():
                    (ra, pa), (rb, pb) = edits[a], edits[b]
                    gap = ra[metric] - rb[metric]
                    if abs(gap) >= min_gap:
                        better, worse = (pa, pb) if gap > 0 else (pb, pa)
                        out.append({**base, "dimension": dimension, "candidate_video_path": better,
                                    "rival_video_path": worse, "gap": abs(gap)})
    return out
