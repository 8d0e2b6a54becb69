"""RVE-Synth task families: edits whose target is not described by the instruction but follows from
physics, time, space or common sense; the exact target clip comes from the simulator (world.py).

RVE-Synth v2. A family is an *edit* applied to a *source* (:mod:`revise.synth.scenes`): a scene, the
time its clip starts and the roles of its objects. Several families apply to each scene kind, and
:func:`generate_group` makes several items from different families (and categories where the kind
allows) on ONE source clip, so the same clip leads to different targets under different instructions,
and a model has to read the instruction to score (RVE-Synth v1 drew a scene type per family, so a
night scene was always brightened and a tank always filled).

Each :class:`Family` belongs to one category (causal, temporal, spatial, commonsense), supports one
or both subsets (``RAVE``: edit the given clip, the target covers the same span with the edit
applied; ``ICVG``: generate the scene that follows the source, e.g. the next 17 frames, or the
moment of an event), and has ten instruction templates ("phrasings") per subset
(:mod:`revise.synth.phrasings`). An edit raises :class:`Retry` when it does not apply to a source
(no two balls to swap, a clip that starts too early to be shown a second earlier, ...).

Scenes: objects are named "<colour> <shape>" (colour a PALETTE key, shape circle/square/triangle);
no two objects of a scene share a colour, so each can be found by colour. Ice is always the
"ice cube" (colour "white", drawn in ICE_COLOUR). Every object stays fully inside the 0..1 frame in
both clips, and the target must differ visibly from the source, by at least MIN_EDIT in what the edit
is about (:func:`edit_size`; checked in :func:`check_item`). Objects that the edit moves (a
bystander hit by a reversed ball) count as edited, whatever the family lists.

Splits (hold-out of whole phrasings and object combinations):

* phrasing ``p`` of a family's subset goes to ``train`` if ``p % 5 in (0, 1, 2)``, ``val`` if
  ``p % 5 == 3`` and ``test`` if ``p % 5 == 4``; the test phrasings use words no train phrasing has;
* the subject's (colour, shape) combination (:func:`main_object`: the source's subject, recorded in
  the item; items written before v2 use the first solid object in ``edited``, else the first of
  ``preserve``) goes to a split by a fixed hash: for each shape the 7 colours are ordered by
  ``crc32("colour shape")``; the first 2 (circle) or 1 (square, triangle) go to ``val``, the next 2
  (square) or 1 (circle, triangle) to ``test``, the rest to ``train``: 13 / 4 / 4 of the 21
  combinations (~60/20/20), every shape present in every split.

So a test item never shares its (family, subset, phrasing) nor its subject's combination with a
train item.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Callable

import numpy as np

from .item import CATEGORIES, SUBSETS, SynthItem
from .phrasings import PHRASINGS
from .scenes import DAY, KINDS, NIGHT, SHAPES, Retry, Source
from .world import FLOOR, FPS, PALETTE, Scene, simulate

SPLITS = ("train", "val", "test")
CLIP_SECONDS = 17 / FPS           # the span of a 17-frame clip plus one frame: where the next clip starts
TAP_RATE = 0.3                    # fill rate (fraction of the height per second) of a running tap / open drain
HEAVY = 10.0
GROUP_SIZE = 3                    # items made on one source clip by generate_group


# ---- splits -----------------------------------------------------------------------------------
def phrasing_split(p: int) -> str:
    r = p % 5
    return "train" if r < 3 else "val" if r == 3 else "test"


def _combo_splits() -> dict[tuple[str, str], str]:
    out = {}
    for k, shape in enumerate(SHAPES):
        colours = sorted(PALETTE, key=lambda c: zlib.crc32(f"{c} {shape}".encode()))
        n_val = 2 if k == 0 else 1
        n_test = 2 if k == 1 else 1
        for i, c in enumerate(colours):
            out[(c, shape)] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return out


COMBO_SPLIT: dict[tuple[str, str], str] = _combo_splits()


def combos(split: str, shapes: tuple[str, ...] = SHAPES) -> list[tuple[str, str]]:
    return sorted(c for c, s in COMBO_SPLIT.items() if s == split and c[1] in shapes)


def main_object(item: SynthItem) -> str:
    """Name of the object whose (colour, shape) decides the item's split."""
    if item.subject:
        return item.subject
    for name in item.edited:
        o = next((o for o in item.source.objects if o.name == name), None)
        if o is not None and o.material == "solid":
            return name
    return item.preserve[0]


def main_combo(item: SynthItem) -> tuple[str, str]:
    o = item.source.obj(main_object(item))
    return (o.colour, o.shape)


@dataclasses.dataclass
class Draft:
    source: Scene
    target: Scene
    edited: list[str]
    preserve: list[str]
    words: dict[str, str]
    source_start: float = 0.0
    target_start: float = 0.0
    scene_edit: list[str] = dataclasses.field(default_factory=list)


Edit = Callable[[np.random.Generator, Source, str], Draft]


@dataclasses.dataclass(frozen=True)
class Family:
    name: str                               # "category/what"
    category: str
    phrasings: dict[str, tuple[str, ...]]   # subset -> templates, formatted with Draft.words
    edit: Edit
    kinds: tuple[str, ...]                  # scene kinds (scenes.KINDS) the edit applies to
    check_change: bool = True               # target must differ visibly from the source

    @property
    def subsets(self) -> tuple[str, ...]:
        return tuple(s for s in SUBSETS if s in self.phrasings)

    def generate(self, rng: np.random.Generator, phrasing: int, combo: tuple[str, str],
                 subset: str | None = None, source: Source | None = None) -> SynthItem:
        """One item; on ``source`` if given, else on a new source of one of the family's kinds."""
        subset = subset or self.subsets[0]
        template = self.phrasings[subset][phrasing]
        if source is None:
            source = KINDS[self.kinds[int(rng.integers(len(self.kinds)))]](rng, combo)
        d = self.edit(rng, source, subset)
        text = template.format(**d.words)
        return SynthItem(id="", subset=subset, category=self.category, family=self.name,
                         instruction=text[0].upper() + text[1:], phrasing=phrasing,
                         source=d.source, target=d.target, source_start=d.source_start,
                         target_start=d.target_start, edited=d.edited, preserve=d.preserve,
                         scene_edit=d.scene_edit, subject=source.subject, kind=source.kind)


def _draft(src: Source, target: Scene, edited: list[str], words: dict[str, str], target_start: float,
           scene_edit: list[str] = ()) -> Draft:
    """A draft on ``src``: the objects not in ``edited`` are to be preserved."""
    names = [o.name for o in src.scene.objects]
    return Draft(src.scene.copy(), target, list(edited), [n for n in names if n not in edited], words,
                 src.start, target_start, list(scene_edit))


def _ict(subset: str, src: Source) -> float:
    """Target start of a counterfactual: the same span (RAVE) or the clip after it (ICVG)."""
    return src.start + (CLIP_SECONDS if subset == "ICVG" else 0.0)


def _at_rest(s: Scene) -> bool:
    return all(o.vx == 0.0 and o.vy == 0.0 and o.bottom <= FLOOR + 1e-6 for o in s.objects if o.present)


def _all(src: Source) -> list[str]:
    return [o.name for o in src.scene.objects]


# ---- temporal ---------------------------------------------------------------------------------
def _later(rng, src, subset):
    return _draft(src, src.scene.copy(), _all(src), {"obj": src.roles["mover"]}, src.start + 1.0)


def _earlier(rng, src, subset):
    if src.start < 1.0:
        raise Retry
    return _draft(src, src.scene.copy(), _all(src), {"obj": src.roles["mover"]}, src.start - 1.0)


def _restart(rng, src, subset):
    if src.start < 0.75:
        raise Retry
    return _draft(src, src.scene.copy(), _all(src), {"obj": src.roles["mover"]}, 0.0)


def _impact(rng, src, subset):
    """Target starts at the first frame at which the thrown object touches the floor."""
    mover = src.roles["mover"]
    if src.scene.obj(mover).bottom <= FLOOR + 0.1:       # not thrown high enough to watch it fall
        raise Retry
    states = simulate(src.scene, 4 * FPS)
    i = next((i for i, s in enumerate(states[1:], 1) if s.obj(mover).bottom <= FLOOR + 1e-6), None)
    if i is None or i < 3:
        raise Retry
    return _draft(src, src.scene.copy(), [mover], {"obj": mover}, i / FPS)


def _next(rng, src, subset):
    return _draft(src, src.scene.copy(), _all(src), {"obj": src.roles["mover"]}, src.start + CLIP_SECONDS)


def _rest(rng, src, subset):
    states = simulate(src.scene, 8 * FPS)
    rest = next((i for i, s in enumerate(states) if _at_rest(s)), None)
    if rest is None or rest < round(src.start * FPS) + 6:
        raise Retry
    return _draft(src, src.scene.copy(), _all(src), {"obj": src.roles["mover"]}, rest / FPS)


# ---- causal -----------------------------------------------------------------------------------
def _push(src: Source, factor: float) -> tuple[Scene, str]:
    tgt = src.scene.copy()
    m = tgt.obj(src.roles["mover"])
    if m.vx == 0.0 and m.vy == 0.0:
        raise Retry
    m.vx *= factor
    m.vy *= factor if factor >= 0 else 1.0          # reversed: the other way, the same height
    return tgt, m.name


def _harder(rng, src, subset):
    tgt, name = _push(src, 2.0)
    return _draft(src, tgt, [name], {"obj": name}, _ict(subset, src))


def _no_push(rng, src, subset):
    tgt, name = _push(src, 0.0)
    return _draft(src, tgt, [name], {"obj": name}, src.start)


def _reverse(rng, src, subset):
    tgt, name = _push(src, -1.0)
    return _draft(src, tgt, [name], {"obj": name}, src.start)


def _no_wall(rng, src, subset):
    if not src.scene.walls:
        raise Retry
    tgt = src.scene.copy()
    tgt.walls = []
    mover = src.roles["mover"]
    return _draft(src, tgt, [mover], {"obj": mover}, _ict(subset, src), ["walls"])


def _heavier(rng, src, subset):
    """A rolling ball hits the resting subject; in the target the subject is much heavier."""
    if src.kind != "collision":
        raise Retry
    block, roller = src.subject, src.roles["mover"]
    tgt = src.scene.copy()
    tgt.obj(block).mass = HEAVY
    # the roller bounces back off the heavy block instead of stopping: it is part of the edit too
    return _draft(src, tgt, [block, roller], {"obj": block, "other": roller}, _ict(subset, src))


# ---- spatial ----------------------------------------------------------------------------------
def _swap_x(scene: Scene, a: str, b: str) -> None:
    oa, ob = scene.obj(a), scene.obj(b)
    oa.x, ob.x = ob.x, oa.x


def _resting(src: Source) -> list:
    objs = [o for o in src.scene.objects if o.material == "solid"]
    if src.kind != "row" or not _at_rest(src.scene):
        raise Retry
    return objs


def _swap_extremes(rng, src, subset):
    objs = sorted(_resting(src), key=lambda o: o.size)
    if len(objs) < 3 or min(np.diff([o.size for o in objs])) < 0.012:
        raise Retry
    small, large = objs[0].name, objs[-1].name
    tgt = src.scene.copy()
    _swap_x(tgt, small, large)
    return _draft(src, tgt, [small, large], {}, src.start)


def _swap_circles(rng, src, subset):
    balls = [o.name for o in _resting(src) if o.shape == "circle"]
    if len(balls) != 2:
        raise Retry
    tgt = src.scene.copy()
    _swap_x(tgt, *balls)
    return _draft(src, tgt, balls, {}, src.start)


def _mirror(rng, src, subset):
    tgt = src.scene.copy()
    for o in tgt.objects:
        o.x, o.vx = 1.0 - o.x, -o.vx
    for thing in (*tgt.walls, *tgt.containers, *tgt.occluders):
        thing.x = 1.0 - thing.x
    tgt.puddle_x = 1.0 - tgt.puddle_x
    props = [p for p in ("walls", "containers", "occluders") if getattr(src.scene, p)]
    return _draft(src, tgt, _all(src), {"obj": src.subject}, src.start, props)


def _reflect_left(rng, src, subset):
    """Objects left of the anchor move to the mirror position on its right."""
    objs = sorted(_resting(src), key=lambda o: o.x)
    anchors = [k for k in range(1, len(objs)) if 0.3 <= objs[k].x <= 0.7]
    if not anchors:
        raise Retry
    k = anchors[int(rng.integers(len(anchors)))]
    anchor, left, right = objs[k], objs[:k], objs[k + 1:]
    tgt = src.scene.copy()
    for o in left:
        x = 2 * anchor.x - o.x
        if x - o.size < 0 or x + o.size > 1 or any(abs(x - r.x) < o.size + r.size + 0.02 for r in right):
            raise Retry
        tgt.obj(o.name).x = x
    return _draft(src, tgt, [o.name for o in left], {"anchor": anchor.name}, src.start)


def _hide(rng, src, subset):
    if not src.scene.occluders:
        raise Retry
    screen = src.scene.occluders[0]
    fits = [o for o in _resting(src) if o.size < screen.width / 2 - 0.01]
    if not fits:
        raise Retry
    main = next((o for o in fits if o.name == src.subject), fits[int(rng.integers(len(fits)))])
    tgt = src.scene.copy()
    tgt.obj(main.name).x = screen.x
    return _draft(src, tgt, [main.name], {"obj": main.name}, _ict(subset, src))


def _sort(rng, src, subset):
    objs = _resting(src)
    if min(np.diff(sorted(o.size for o in objs))) < 0.01:
        raise Retry
    slots = sorted(o.x for o in objs)
    tgt = src.scene.copy()
    for o, x in zip(sorted(objs, key=lambda o: o.size), slots):
        tgt.obj(o.name).x = x
    moved = [o.name for o in objs if abs(o.x - tgt.obj(o.name).x) > 1e-9]
    if not moved:
        raise Retry
    return _draft(src, tgt, [o.name for o in objs], {}, src.start)


# ---- commonsense ------------------------------------------------------------------------------
def _relight(src: Source, subset: str, level: float) -> Draft:
    tgt = src.scene.copy()
    tgt.light = level
    return _draft(src, tgt, [], {"obj": src.subject}, _ict(subset, src), ["light"])


def _night(rng, src, subset):
    if src.scene.light < 0.45:
        raise Retry
    return _relight(src, subset, NIGHT)


def _day(rng, src, subset):
    if src.scene.light > 0.8:
        raise Retry
    return _relight(src, subset, DAY)


def _weather(src: Source, subset: str, temperature: str, start: float) -> Draft:
    if src.kind != "ice":
        raise Retry
    tgt = src.scene.copy()
    tgt.temperature = temperature
    return _draft(src, tgt, ["ice cube"], {}, start, ["temperature"])


def _sun(rng, src, subset):
    return _weather(src, subset, "warm", _ict(subset, src))


def _freeze(rng, src, subset):
    return _weather(src, subset, "cold", src.start)


def _tank(src: Source, subset: str, rate: float) -> Draft:
    if not src.scene.containers:
        raise Retry
    tgt = src.scene.copy()
    tgt.containers[0].fill_rate = rate
    return _draft(src, tgt, [], {}, _ict(subset, src), ["containers"])


def _tap(rng, src, subset):
    return _tank(src, subset, TAP_RATE)


def _drain(rng, src, subset):
    return _tank(src, subset, -TAP_RATE)


def _made_of_ice(rng, src, subset):
    if src.scene.temperature != "warm":
        raise Retry
    main = src.scene.obj(src.subject)
    if main.size < 0.05 or main.colour == "white":
        raise Retry
    tgt = src.scene.copy()
    tgt.obj(main.name).material = "ice"
    return _draft(src, tgt, [main.name], {"obj": main.name}, src.start)


# ---- the registry -----------------------------------------------------------------------------
MOVING = ("motion", "wall", "collision")
EVERY = tuple(KINDS)

_EDITS: list[tuple[str, Edit, tuple[str, ...]]] = [
    ("temporal/later", _later, MOVING),
    ("temporal/earlier", _earlier, ("motion",)),
    ("temporal/restart", _restart, ("motion",)),
    ("temporal/impact", _impact, ("motion",)),
    ("temporal/next", _next, MOVING),
    ("temporal/rest", _rest, ("motion", "wall")),
    ("causal/harder", _harder, MOVING),
    ("causal/no_push", _no_push, MOVING),
    ("causal/reverse", _reverse, ("motion",)),
    ("causal/no_wall", _no_wall, ("wall",)),
    ("causal/heavier", _heavier, ("collision",)),
    ("spatial/swap_extremes", _swap_extremes, ("row",)),
    ("spatial/swap_circles", _swap_circles, ("row",)),
    ("spatial/mirror", _mirror, EVERY),
    ("spatial/reflect_left", _reflect_left, ("row",)),
    ("spatial/hide", _hide, ("row",)),
    ("spatial/sort", _sort, ("row",)),
    ("commonsense/night", _night, EVERY),
    ("commonsense/day", _day, EVERY),
    ("commonsense/sun", _sun, ("ice",)),
    ("commonsense/freeze", _freeze, ("ice",)),
    ("commonsense/tap", _tap, ("tank",)),
    ("commonsense/drain", _drain, ("tank",)),
    ("commonsense/made_of_ice", _made_of_ice, ("row",)),
]
FAMILIES: dict[str, Family] = {name: Family(name, name.split("/")[0], PHRASINGS[name], edit, kinds)
                               for name, edit, kinds in _EDITS}


def families_by_category() -> dict[str, list[str]]:
    return {c: sorted(n for n, f in FAMILIES.items() if f.category == c) for c in CATEGORIES}


def families_of_kind(kind: str) -> list[str]:
    return [n for n, f in FAMILIES.items() if kind in f.kinds]


# ---- making items -----------------------------------------------------------------------------
MIN_CHANGED = 150        # pixels (over the whole 64x64 clip) the target must differ from the source in
MIN_EDIT = 0.075         # world units the target must differ from the source in what the edit is about
MOVED = 1e-6             # world units: a preserved object that moves more than this is edited


def changed_pixels(a: np.ndarray, b: np.ndarray, tol: int = 24) -> int:
    return int((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) > tol).sum())


def edit_size(item: SynthItem, src_states=None, tgt_states=None) -> float:
    """How far the target is from the source in what the edit is about: the largest difference, over
    the frames, of an edited object (position plus size, world units; inf where it appears, vanishes
    or changes material), of the light level, the puddle width or a container's water height (world
    units); inf where the walls or occluders differ. Items below MIN_EDIT are re-sampled: their
    unedited source would be nearly right, and a half-done edit could not be told from the target."""
    src_states = item.source_states() if src_states is None else src_states
    tgt_states = item.target_states() if tgt_states is None else tgt_states
    if item.source.walls != item.target.walls or item.source.occluders != item.target.occluders:
        return math.inf
    size = 0.0
    for s, t in zip(src_states, tgt_states):
        for name in item.edited:
            a, b = s.obj(name), t.obj(name)
            if a.present != b.present or a.material != b.material:
                return math.inf
            if a.present:
                size = max(size, math.hypot(a.x - b.x, a.y - b.y) + abs(a.size - b.size))
        size = max(size, abs(s.light - t.light), abs(s.puddle - t.puddle))
        for ca, cb in zip(s.containers, t.containers):
            size = max(size, abs(ca.level - cb.level) * ca.height, abs(ca.x - cb.x))
    return size


def _inside(states) -> bool:
    for s in states:
        for o in s.objects:
            if o.present and (o.x - o.size < -1e-6 or o.x + o.size > 1 + 1e-6 or o.y + o.size > 1 + 1e-6):
                return False
    return True


def _moved(name: str, src_states, tgt_states) -> bool:
    for s, t in zip(src_states, tgt_states):
        a, b = s.obj(name), t.obj(name)
        if (a.present, a.material) != (b.present, b.material) or math.hypot(a.x - b.x, a.y - b.y) > MOVED:
            return True
    return False


def check_item(item: SynthItem, family: Family, height: int = 64, width: int = 64):
    """(source clip, target clip) if ``item`` passes the checks (objects inside the frame, a visible
    edit of at least MIN_EDIT), else None. Preserved objects that the edit moves become edited."""
    from .render import render_clip
    src_states, tgt_states = item.source_states(), item.target_states()
    if not (_inside(src_states) and _inside(tgt_states)):
        return None
    moved = [n for n in item.preserve if _moved(n, src_states, tgt_states)]
    if moved:
        item.edited += moved
        item.preserve = [n for n in item.preserve if n not in moved]
    src, tgt = render_clip(src_states, height, width), render_clip(tgt_states, height, width)
    scale = (64 * 64) / (height * width)
    if family.check_change and (changed_pixels(src, tgt) * scale < MIN_CHANGED
                                or edit_size(item, src_states, tgt_states) < MIN_EDIT):
        return None
    return src, tgt


def _phrasings(family: Family, subset: str, split: str) -> list[int]:
    return [p for p in range(len(family.phrasings[subset])) if phrasing_split(p) == split]


def _check_split(split: str, combo_split: str) -> None:
    if split not in SPLITS or combo_split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r} and {combo_split!r}")


def generate_checked(rng: np.random.Generator, family: Family | str, split: str, subset: str | None = None,
                     height: int = 64, width: int = 64, tries: int = 100, combo_split: str | None = None):
    """(item, source clip, target clip) of one family for ``split``, on a source of its own;
    re-samples layouts that fail the checks. ``combo_split`` takes the subject combinations of
    another split (a diagnostic: phrasings held out without the combinations, or the other way round)."""
    family = FAMILIES[family] if isinstance(family, str) else family
    combo_split = split if combo_split is None else combo_split
    _check_split(split, combo_split)
    if subset is None:
        subset = family.subsets[int(rng.integers(len(family.subsets)))]
    allowed = _phrasings(family, subset, split)
    pool = combos(combo_split)
    for _ in range(tries):
        phrasing = allowed[int(rng.integers(len(allowed)))]
        combo = pool[int(rng.integers(len(pool)))]
        try:
            item = family.generate(rng, phrasing, combo, subset)
        except Retry:
            continue
        clips = check_item(item, family, height, width)
        if clips is not None:
            assert main_combo(item) == combo, (family.name, main_combo(item), combo)
            return (item, *clips)
    raise RuntimeError(f"{family.name}: no valid item in {tries} tries")


def make_item(rng: np.random.Generator, family: Family | str, split: str, subset: str | None = None) -> SynthItem:
    """One checked item of ``family`` whose phrasing and subject combination belong to ``split``."""
    return generate_checked(rng, family, split, subset)[0]


def _group_order(rng, kind: str) -> list[str]:
    """The kind's families in the order a group tries them: a random order in which a family that
    applies to fewer kinds tends to come earlier (weighted sampling without replacement, weight
    1 / its kinds, tripled for temporal families, which only moving scenes have), so that mirror and
    night, which apply everywhere, do not crowd out the rest and the categories come out about even."""
    names = families_of_kind(kind)
    weight = np.array([(3.0 if FAMILIES[n].category == "temporal" else 1.0) / len(FAMILIES[n].kinds)
                       for n in names])
    keys = rng.random(len(names)) ** (1.0 / weight)
    return [names[i] for i in np.argsort(-keys, kind="stable")]


def generate_group(rng: np.random.Generator, kind: str, split: str, n: int = GROUP_SIZE,
                   height: int = 64, width: int = 64, tries: int = 100, combo_split: str | None = None):
    """``n`` items of different families on ONE source clip of ``kind`` for ``split``:
    ([item, ...], source clip, [target clip, ...]). Their instructions lead to different targets."""
    combo_split = split if combo_split is None else combo_split
    _check_split(split, combo_split)
    pool = combos(combo_split)
    scale = (64 * 64) / (height * width)
    for _ in range(tries):
        combo = pool[int(rng.integers(len(pool)))]
        try:
            source = KINDS[kind](rng, combo)
        except Retry:
            continue
        items, src, targets = [], None, []
        for name in _group_order(rng, kind):
            family = FAMILIES[name]
            subset = family.subsets[int(rng.integers(len(family.subsets)))]
            allowed = _phrasings(family, subset, split)
            try:
                item = family.generate(rng, allowed[int(rng.integers(len(allowed)))], combo, subset, source)
            except Retry:
                continue
            clips = check_item(item, family, height, width)
            if clips is None or any(changed_pixels(clips[1], t) * scale < MIN_CHANGED for t in targets):
                continue                    # another instruction of the group already leads there
            items.append(item)
            src = clips[0]
            targets.append(clips[1])
            if len(items) == n:
                return items, src, targets
    raise RuntimeError(f"{kind}: no source with {n} valid edits in {tries} tries")
