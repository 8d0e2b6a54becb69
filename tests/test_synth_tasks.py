"""RVE-Synth task families, splits and dataset writing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest

from revise.synth.dataset import contact_sheet_png, load_items, make_dataset, plan
from revise.synth.item import CATEGORIES, SUBSETS
from revise.synth.render import render
from revise.synth.tasks import (COMBO_SPLIT, FAMILIES, MIN_EDIT, SPLITS, Draft, Family, changed_pixels, combos,
                                edit_size, families_by_category, generate_checked, main_combo, phrasing_split)
from revise.synth.world import FLOOR, PALETTE, Obj, Scene


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
    """A builder whose edit moves the main object ``step`` to the right."""
    def build(rng, combo, subset):
        colour, shape = combo
        src = Scene([Obj(f"{colour} {shape}", shape, colour, 0.06, 0.3, FLOOR + 0.06)])
        tgt = src.copy()
        tgt.objects[0].x += step
        return Draft(src, tgt, [src.objects[0].name], [], {})
    return Family("spatial/nudge", "spatial", {"RAVE": ("move it",) * 5}, build)


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
    rng = np.random.default_rng(2)
    for _ in range(5):
        item = generate_checked(rng, "causal/harder", "train", "RAVE")[0]
        name = item.edited[0]
        s, t = item.source_states(), item.target_states()
        assert t[-1].obj(name).x - t[0].obj(name).x > s[-1].obj(name).x - s[0].obj(name).x + 0.02


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
    a = make_dataset(8, "val", 7, tmp_path / "a", progress=False, workers=1)
    b = make_dataset(8, "val", 7, tmp_path / "b", progress=False, workers=2)
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


def test_plan_balanced():
    p = plan(len(FAMILIES) * 8, "train", 0)
    fams = [f for _, f, _, _ in p]
    cats = [FAMILIES[f].category for f in fams]
    assert all(cats.count(c) == len(p) // 4 for c in CATEGORIES)
    assert set(fams) == set(FAMILIES)
    with pytest.raises(ValueError):
        plan(1, "dev", 0)


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
