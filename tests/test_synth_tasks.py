"""RVE-Synth task families, splits and dataset writing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest

from revise.errors import ReviseInputError
from revise.synth.dataset import KIND_SCHEDULE, contact_sheet_png, load_items, make_dataset, plan
from revise.synth.floors import NEUTRAL_INSTRUCTION, with_instructions
from revise.synth.item import CATEGORIES, SUBSETS, SynthItem
from revise.synth.render import render
from revise.synth.scenes import KINDS, Retry
from revise.synth.tasks import (COMBO_SPLIT, FAMILIES, GROUP_SIZE, MIN_EDIT, SPLITS, Draft, Family, changed_pixels,
                                check_item, combos, edit_size, families_by_category, generate_checked,
                                generate_group, main_combo, phrasing_split)
from revise.synth.world import FLOOR, PALETTE, Obj, Scene, simulate


def _check_item(item, fam):
    names = [o.name for o in item.source.objects]
    assert len(set(names)) == len(names)
    colours = [o.colour for o in item.source.objects]
    assert len(set(colours)) == len(colours)
    for o in item.source.objects:
        assert o.colour in PALETTE and o.shape in ("circle", "square", "triangle")
    for n in item.edited + item.preserve:
        assert n in names
    assert not set(item.edited) & set(item.preserve)
    assert item.edited or item.scene_edit
    assert not re.search(r"\d", item.instruction), item.instruction
    assert item.category == fam.category and item.subset in fam.subsets


def test_every_family_and_phrasing_generates():
    rng = np.random.default_rng(0)
    for name, fam in FAMILIES.items():
        for subset in fam.subsets:
            assert len(fam.phrasings[subset]) >= 5
            for p, template in enumerate(fam.phrasings[subset]):
                split = phrasing_split(p)
                item, src, tgt = generate_checked(rng, fam, split, subset)
                assert item.phrasing in [q for q in range(len(fam.phrasings[subset])) if phrasing_split(q) == split]
                _check_item(item, fam)
                assert COMBO_SPLIT[main_combo(item)] == split
                if fam.check_change:
                    assert changed_pixels(src, tgt) >= 150, name
                    assert edit_size(item) >= MIN_EDIT, name


def _nudge(step: float):
    """A family whose edit moves a lone object ``step`` to the right."""
    def edit(rng, src, subset):
        o = src.scene.obj(src.subject)
        scene = Scene([Obj(o.name, o.shape, o.colour, 0.06, 0.3, FLOOR + 0.06)])
        tgt = scene.copy()
        tgt.objects[0].x += step
        return Draft(scene, tgt, [o.name], [], {})
    return Family("spatial/nudge", "spatial", {"RAVE": ("move it",) * 5}, edit, ("row",))


def test_items_must_differ_from_their_source_in_what_the_edit_is_about():
    item = generate_checked(np.random.default_rng(0), _nudge(0.2), "test")[0]
    assert edit_size(item) == pytest.approx(0.2)
    # 0.05 changes plenty of pixels (a 3-pixel shift of a 8-pixel object) but is below MIN_EDIT
    with pytest.raises(RuntimeError, match="no valid item"):
        generate_checked(np.random.default_rng(0), _nudge(0.05), "test", tries=5)
    s = item.source.copy()
    s.light = 0.5
    assert edit_size(dataclasses.replace(item, target=s)) == pytest.approx(0.5)       # the light counts
    s = item.source.copy()
    s.objects[0].material = "ice"
    assert edit_size(dataclasses.replace(item, target=s)) == np.inf                  # so does a new material


def test_coverage():
    by_cat = families_by_category()
    for cat in CATEGORIES:
        assert len(by_cat[cat]) >= 5, cat
        assert {s for n in by_cat[cat] for s in FAMILIES[n].subsets} == set(SUBSETS), cat


def test_split_holdout():
    assert sorted(COMBO_SPLIT.values()).count("train") == 13
    for split in SPLITS:
        for shape in ("circle", "square", "triangle"):
            assert combos(split, (shape,))
    rng = np.random.default_rng(1)
    seen = {s: (set(), set()) for s in SPLITS}
    for split in ("train", "test"):
        for name in FAMILIES:
            for _ in range(3):
                item = generate_checked(rng, name, split)[0]
                seen[split][0].add((item.family, item.subset, item.phrasing))
                seen[split][1].add(main_combo(item))
    assert not seen["train"][0] & seen["test"][0]
    assert not seen["train"][1] & seen["test"][1]


def test_pushed_twice_as_hard_goes_further():
    def path(item, scene):          # distance the edited objects travel from the push to the clip's end
        states = simulate(scene, round(item.source_start * 8) + item.frames)
        return sum(abs(b.obj(n).x - a.obj(n).x) + abs(b.obj(n).y - a.obj(n).y)
                   for a, b in zip(states, states[1:]) for n in item.edited)

    rng = np.random.default_rng(2)
    for _ in range(5):
        item = generate_checked(rng, "causal/harder", "train", "RAVE")[0]
        assert path(item, item.target) > path(item, item.source) + 0.02


def test_one_second_later_is_frame_eight():
    rng = np.random.default_rng(3)
    for _ in range(3):
        item = generate_checked(rng, "temporal/later", "val")[0]
        assert item.target_start == item.source_start + 1.0
        np.testing.assert_array_equal(item.target_clip()[0], item.source_clip()[8])


def test_night_preserves_positions_and_dims():
    item = generate_checked(np.random.default_rng(4), "commonsense/night", "test")[0]
    assert item.scene_edit == ["light"] and item.edited == []
    assert render(item.target).mean() < render(item.source).mean() * 0.5


def test_dataset_deterministic(tmp_path):
    a = make_dataset(24, "val", 7, tmp_path / "a", progress=False, workers=1)
    b = make_dataset(24, "val", 7, tmp_path / "b", progress=False, workers=2)
    assert (tmp_path / "a" / "val.json").read_bytes() == (tmp_path / "b" / "val.json").read_bytes()
    for rec in a:
        for key in ("source_video_path", "target_video_path"):
            da = hashlib.sha256((tmp_path / "a" / rec[key]).read_bytes()).digest()
            db = hashlib.sha256((tmp_path / "b" / rec[key]).read_bytes()).digest()
            assert da == db
        assert rec["type"] == rec["category"] and rec["frames"] == 17
    assert {r["category"] for r in a} == set(CATEGORIES)
    items = load_items(tmp_path / "a" / "val.json")
    assert [i.to_dict()["instruction"] for i in items] == [r["instruction"] for r in a]
    assert json.loads((tmp_path / "a" / "val.json").read_text())[0]["id"] == "val-00000"
    contact_sheet_png(items, tmp_path / "sheet.png", max_items=2)
    assert (tmp_path / "sheet.png").stat().st_size > 0
    # item i does not depend on n
    c = make_dataset(7, "val", 7, tmp_path / "c", progress=False, workers=1)
    assert [r["instruction"] for r in c] == [r["instruction"] for r in a[:7]]


def test_groups_share_a_source_and_lead_to_different_targets(tmp_path):
    recs = make_dataset(27, "test", 3, tmp_path, progress=False, workers=1)
    groups = {}
    for r in recs:
        groups.setdefault(r["group"], []).append(r)
    assert len(groups) == 9 and all(len(g) == GROUP_SIZE for g in groups.values())
    for members in groups.values():
        assert len({m["source_video_path"] for m in members}) == 1
        assert len({m["family"] for m in members}) == len(members)
        items = [SynthItem.from_dict(m) for m in members]
        clips = [it.source_clip() for it in items]
        assert all((c == clips[0]).all() for c in clips)                      # one source clip
        targets = [it.target_clip() for it in items]
        for i in range(len(targets)):
            for j in range(i):
                assert changed_pixels(targets[i], targets[j]) >= 150          # different targets
    assert {m["kind"] for m in recs} == set(KIND_SCHEDULE)


def test_plan_balanced():
    recs = [item for j in range(36) for item in generate_group(np.random.default_rng([j, 1]),
                                                              KIND_SCHEDULE[j % len(KIND_SCHEDULE)], "train")[0]]
    cats = [r.category for r in recs]
    assert all(cats.count(c) >= 0.12 * len(recs) for c in CATEGORIES), cats
    p = plan(10, "train", 0)
    assert [t for *_, t in p] == [3, 3, 3, 1]
    with pytest.raises(ValueError):
        plan(1, "dev", 0)


def _source(rng, kind, combo=("red", "square")):
    while True:
        try:
            return KINDS[kind](rng, combo)
        except Retry:
            pass


def test_scenes_allow_opposite_edits():
    """The scene does not give the edit away: a dusk tank scene can be darkened or brightened, and the
    tank filled or drained; the mild ice scene can freeze or melt."""
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(60):
        src = _source(rng, "tank")
        for name in ("commonsense/tap", "commonsense/drain", "commonsense/night", "commonsense/day"):
            try:
                item = FAMILIES[name].generate(rng, 0, ("red", "square"), "RAVE", src)
            except Retry:
                continue
            if check_item(item, FAMILIES[name]) is not None:
                seen.add(name)
                if name == "commonsense/drain":
                    s, t = item.source_states(), item.target_states()
                    assert t[-1].containers[0].level < s[-1].containers[0].level - 0.2
        if len(seen) == 4:
            break
    assert len(seen) == 4, seen
    src = _source(rng, "ice")
    for name in ("commonsense/sun", "commonsense/freeze"):
        assert check_item(FAMILIES[name].generate(rng, 0, ("red", "square"), "RAVE", src), FAMILIES[name])


def test_test_phrasings_use_words_training_never_shows():
    def words(t):
        return set(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", t.lower())))

    train_words = set().union(*(words(t) for fam in FAMILIES.values() for templates in fam.phrasings.values()
                                for p, t in enumerate(templates) if phrasing_split(p) == "train"))
    for name, fam in FAMILIES.items():
        for subset, templates in fam.phrasings.items():
            assert len(templates) == 10, (name, subset)
            assert words(templates[9]) - train_words, (name, subset, templates[9])


def test_instruction_floors_swap_within_groups(tmp_path):
    recs = make_dataset(6, "val", 0, tmp_path, progress=False, workers=1)
    assert {r["instruction"] for r in with_instructions(recs, "neutral")} == {NEUTRAL_INSTRUCTION}
    other = with_instructions(recs, "other")
    for r, o in zip(recs, other):
        assert o["instruction"] != r["instruction"] and o["source_video_path"] == r["source_video_path"]
        assert o["instruction"] in {x["instruction"] for x in recs if x["group"] == r["group"]}
    assert with_instructions(recs, "own") == recs
    with pytest.raises(ReviseInputError, match="groups"):
        with_instructions([{**r, "group": ""} for r in recs], "other")
    with pytest.raises(ReviseInputError):
        with_instructions(recs, "blank")


def test_combo_split_holds_out_phrasings_and_combinations_separately():
    """generate_checked(..., combo_split=...): phrasings of one split with the main-object combinations
    of another, so that the two hold-outs can be measured one at a time."""
    rng = np.random.default_rng(1)
    for name, fam in list(FAMILIES.items())[:8]:
        subset = fam.subsets[0]
        for split, combo_split in (("test", "train"), ("train", "test")):
            item = generate_checked(rng, fam, split, subset, combo_split=combo_split)[0]
            assert phrasing_split(item.phrasing) == split, name
            assert COMBO_SPLIT[main_combo(item)] == combo_split, name
    with pytest.raises(ValueError):
        generate_checked(rng, fam, "test", combo_split="holdout")
