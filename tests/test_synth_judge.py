"""The exact RVE-Synth judge and the critic candidates, on hand-made items, and on a few generated
items the judge used to get wrong."""

import numpy as np
import pytest

from revise.synth.critic_data import LABELS, _overlap, critic_candidates, half_done_states, part_done_states
from revise.synth.item import SynthItem
from revise.synth.judge import DIMENSIONS, overall, parse_frame, score_item
from revise.synth.render import render, render_clip
from revise.synth.tasks import FAMILIES, generate_checked, make_item
from revise.synth.world import Obj, Scene, Wall

DIM = dict(zip(LABELS, DIMENSIONS))


def _item(id, src, tgt, edited=(), preserve=(), scene_edit=(), **kw):
    return SynthItem(id=id, subset="RAVE", category="causal", family=id.rstrip("0123456789"), instruction="",
                     phrasing=0, source=src, target=tgt, edited=list(edited), preserve=list(preserve),
                     scene_edit=list(scene_edit), **kw)


def _obj(colour, shape="circle", x=0.2, vx=0.0, size=0.06, y=None, **kw):
    return Obj(f"{colour} {shape}", shape, colour, size, x, 0.15 + size if y is None else y, vx=vx, **kw)


def make_items() -> list[SynthItem]:
    """20 items, 5 kinds of edit: faster ball, moved object, night, melted ice, removed wall."""
    out = []
    for i, (bx, bv, sx, col, scol, sshape) in enumerate([
            (0.2, 0.8, 0.75, "red", "blue", "square"), (0.3, 0.6, 0.85, "green", "yellow", "triangle"),
            (0.15, 1.0, 0.6, "orange", "purple", "square"), (0.25, 0.7, 0.8, "blue", "white", "circle")]):
        ball, other = _obj(col, x=bx, vx=bv * 0.4), _obj(scol, sshape, x=sx, size=0.07)
        s = Scene([ball, other]); t = s.copy(); t.objects[0].vx = bv
        out.append(_item(f"faster{i}", s, t, [ball.name], [other.name]))
        s = Scene([_obj(col, x=bx), other]); t = s.copy(); t.objects[0].x = bx + 0.3
        out.append(_item(f"moved{i}", s, t, [ball.name], [other.name]))
        s = Scene([_obj(col, x=bx, vx=bv * 0.5), other]); t = s.copy(); t.light = 0.3 + 0.1 * i
        out.append(_item(f"night{i}", s, t, [], [ball.name, other.name], ["light"]))
        ice = Obj("ice cube", "square", "white", 0.05 + 0.01 * i, 0.5, 0.2 + 0.01 * i, material="ice")
        s = Scene([ice, _obj(col, x=bx)]); t = s.copy(); t.temperature = "warm"
        out.append(_item(f"melt{i}", s, t, ["ice cube"], [s.objects[1].name], ["temperature"], target_start=0.5 + 0.5 * i))
        s = Scene([_obj(col, x=bx, vx=bv), _obj(scol, sshape, x=0.9, size=0.05)], walls=[Wall(0.55, 0.04, 0.3)])
        t = s.copy(); t.walls = []
        out.append(_item(f"wall{i}", s, t, [s.objects[0].name], [s.objects[1].name], ["walls"]))
    return out


ITEMS = make_items()


def near_miss(item: SynthItem) -> np.ndarray:
    """The edit half done: edited objects, light and puddle halfway between source and target (the
    target's walls: a wall is there or not)."""
    src, tgt = item.source_states(), item.target_states()
    states = []
    for s, t in zip(src, tgt):
        m = t.copy()
        for name in item.edited:
            a, b = s.obj(name), m.obj(name)
            if a.present and b.present:
                b.x, b.y, b.size = (a.x + b.x) / 2, (a.y + b.y) / 2, (a.size + b.size) / 2
        m.light = (s.light + t.light) / 2
        m.puddle = (s.puddle + t.puddle) / 2
        states.append(m)
    return render_clip(states)


@pytest.fixture(scope="module")
def faster():
    return ITEMS[0]


def test_parse_frame_finds_objects_any_size():
    scene = Scene([_obj("red", x=0.3), _obj("blue", "square", x=0.7, size=0.08), _obj("green", "triangle", x=0.5, size=0.07)])
    for h, w in ((64, 64), (48, 80), (128, 128)):
        dets = {d.colour: d for d in parse_frame(render(scene, h, w))}
        assert set(dets) == {"red", "blue", "green"}
        for o in scene.objects:
            d = dets[o.colour]
            assert d.shape == o.shape, (h, w, d)
            assert abs(d.x - o.x) < 0.03 and abs(d.y - o.y) < 0.03 and abs(d.size - o.size) < 0.02
    night = scene.copy(); night.light = 0.3
    assert {d.colour for d in parse_frame(render(night))} == {"red", "blue", "green"}


def test_target_scores_max_also_resized_noisy_and_mp4(tmp_path, faster):
    video = faster.target_clip()
    rng = np.random.default_rng(0)
    noisy = np.clip(video + rng.normal(0, 3, video.shape), 0, 255).astype(np.uint8)
    clips = [video, faster.target_clip(96, 128), noisy]
    try:
        from revise.video import read_video, write_video
        write_video(tmp_path / "t.mp4", video)
        v = read_video(tmp_path / "t.mp4", faster.frames, 64, 64)
        clips.append(((v.permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8))
    except Exception as e:  # no encoder in this build
        print("mp4 skipped:", e)
    for clip in clips:
        r = score_item(faster, clip)
        assert all(r[k] >= 9.5 for k in DIMENSIONS), r
        assert r["overall"] == pytest.approx(overall(r))


def test_source_blank_shuffled_score_low(faster):
    r = score_item(faster, faster.source_clip())
    assert r["EA"] <= 6 and r["PC"] >= 7 and r["GN"] >= 9
    for blank in (np.zeros_like(faster.target_clip()), np.full_like(faster.target_clip(), 128)):
        r = score_item(faster, blank)
        assert all(r[k] <= 2 for k in DIMENSIONS), r
    video = faster.target_clip()
    shuffled = video[np.random.default_rng(0).permutation(len(video))]
    assert score_item(faster, shuffled)["GN"] <= 4
    # wrong length: resampled evenly, and the duplicated frames cost naturalness
    r = score_item(faster, video[::2])
    assert "resampled" in r["diagnostics"] and r["GN"] < 9


def test_ranking_target_near_miss_source():
    ok = 0
    for item in ITEMS:
        t, n, s = (score_item(item, v)["overall"] for v in (item.target_clip(), near_miss(item), item.source_clip()))
        ok += t > n > s
        assert t >= 9.5, item.id
    assert ok / len(ITEMS) >= 0.95


@pytest.mark.parametrize("idx", [0, 6, 2, 3, 4])    # faster, moved, night, melt, wall
def test_critic_candidates_agree_with_judge(idx):
    item = ITEMS[idx]
    cands = critic_candidates(item, np.random.default_rng(idx))
    kinds = [c["kind"] for c in cands]
    assert kinds[0] == "target" and "flicker" in kinds and len(kinds) >= 4, kinds
    assert "wrong_place" in kinds
    scores = {}
    for c in cands:
        v = c["video"]
        assert v.dtype == np.uint8 and v.shape == (item.frames, 64, 64, 3)
        assert c["answer"] == ("Yes" if all(x == "Yes" for x in c["labels"].values()) else "No")
        assert set(c["labels"]) == set(LABELS)
        scores[c["kind"]] = score_item(item, v)
    assert cands[0]["answer"] == "Yes" and all(c["answer"] == "No" for c in cands[1:])
    pos = scores["target"]
    for c in cands[1:]:
        for lab, val in c["labels"].items():
            if val == "No":
                assert scores[c["kind"]][DIM[lab]] < pos[DIM[lab]] - 1, (c["kind"], lab, scores[c["kind"]][DIM[lab]])
            else:
                assert scores[c["kind"]][DIM[lab]] >= 7, (c["kind"], lab, scores[c["kind"]][DIM[lab]])


def test_edit_accuracy_grows_as_the_edit_comes_closer():
    """No flat zone at the top: every step towards the target scores higher, the target 10."""
    for item in (ITEMS[1], ITEMS[2]):                  # an object moved 0.3; night
        ea = [score_item(item, render_clip(part_done_states(item, f)))["EA"] for f in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)]
        assert all(a < b for a, b in zip(ea, ea[1:])), (item.id, ea)
        assert ea[0] <= 2 and ea[-1] == 10, (item.id, ea)


@pytest.mark.parametrize("family", ["causal/no_push", "causal/heavier", "commonsense/tap", "spatial/hide",
                                    "spatial/mirror"])
def test_half_done_edit_scores_between_source_and_target(family):
    """Families whose half-done edit used to tie with the target or the source."""
    item = generate_checked(np.random.default_rng(11), family, "test")[0]
    states = half_done_states(item)
    if family == "spatial/mirror":                     # strictly half way, every object lands on x = 0.5
        assert _overlap(item, part_done_states(item, 0.5)) and not _overlap(item, states)
    clips = {"target": item.target_clip(), "near": render_clip(states), "source": item.source_clip()}
    assert not np.array_equal(clips["near"], clips["target"])
    r = {k: score_item(item, v) for k, v in clips.items()}
    assert r["target"]["EA"] == 10 and r["target"]["overall"] == 10
    assert r["target"]["EA"] > r["near"]["EA"] > r["source"]["EA"], {k: v["EA"] for k, v in r.items()}
    assert r["target"]["overall"] > r["near"]["overall"] > r["source"]["overall"]
    assert r["source"]["EA"] <= 6


@pytest.mark.parametrize("index, family", [(25, "temporal/earlier"), (80, "causal/harder"), (95, "commonsense/tap"),
                                           (195, "commonsense/day")])
def test_generated_target_survives_mp4(tmp_path, index, family):
    """Small objects in colours that differ from the sky only in chroma, a 1-pixel container rim:
    H.264's chroma subsampling blurs them (these scored GN 5-8 or EA 3 before the judge counted
    blurred edges)."""
    from revise.video import read_video, write_video
    item = make_item(np.random.default_rng([0, index]), FAMILIES[family], "test", "RAVE")
    write_video(tmp_path / "t.mp4", item.target_clip())
    v = read_video(tmp_path / "t.mp4", item.frames, 64, 64)
    clip = ((v.permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    r = score_item(item, clip)
    # GR reads compression noise relative to the light level: at night (light 0.3, which RVE-Synth v2
    # sources can have) an exact target through H.264 reads GR 9.0-9.1 (measured), by day 10
    assert all(r[k] >= (9.0 if k == "GR" and item.source.light < 0.5 else 9.5) for k in DIMENSIONS), \
        (family, {k: r[k] for k in DIMENSIONS})


def test_still_clip_is_not_frozen_but_a_stutter_is(faster):
    video = faster.target_clip()
    still = score_item(faster, np.repeat(video[:1], len(video), 0))
    assert still["diagnostics"]["motion"]["frozen_frames"] == 0 and still["EA"] < 9
    stutter = video.copy()
    stutter[2] = stutter[1]                              # one duplicated frame mid-motion
    r = score_item(faster, stutter)
    assert r["diagnostics"]["motion"]["frozen_frames"] >= 1 and r["GN"] < 9
