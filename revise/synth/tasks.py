"""RVE-Synth task families: edits whose target is not described by the instruction but follows from
physics, time, space or common sense; the exact target clip comes from the simulator (world.py).

Each :class:`Family` belongs to one category (causal, temporal, spatial, commonsense), supports one
or both subsets (``RAVE``: edit the given clip, the target covers the same span with the edit
applied; ``ICVG``: generate the scene that follows the source, e.g. the next 17 frames, or the
moment of an event), and has at least five instruction templates ("phrasings") per subset.
``generate(rng, phrasing, combo, subset)`` builds one :class:`~revise.synth.item.SynthItem`.

Scenes: objects are named "<colour> <shape>" (colour a PALETTE key, shape circle/square/triangle);
no two objects of a scene share a colour, so each can be found by colour. Ice is always the
"ice cube" (colour "white", drawn in ICE_COLOUR; white is then not used by other objects). Every
object stays fully inside the 0..1 frame in both clips, and the target must differ visibly from the
source, by at least MIN_EDIT in what the edit is about (:func:`edit_size`; checked in
:func:`generate_checked`, which re-samples otherwise).

Splits (hold-out of whole phrasings and object combinations):

* phrasing ``p`` of a family's subset goes to ``train`` if ``p % 5 in (0, 1, 2)``, ``val`` if
  ``p % 5 == 3`` and ``test`` if ``p % 5 == 4`` (every family has >= 5 phrasings per subset);
* the main object's (colour, shape) combination (:func:`main_object`: the first solid object in
  ``edited``, else the first of ``preserve``) goes to a split by a fixed hash: for each shape the 7
  colours are ordered by ``crc32("colour shape")``; the first 2 (circle) or 1 (square, triangle)
  go to ``val``, the next 2 (square) or 1 (circle, triangle) to ``test``, the rest to ``train``:
  13 / 4 / 4 of the 21 combinations (~60/20/20), every shape present in every split.

So a test item never shares its (family, subset, phrasing) nor its main-object combination with a
train item.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Callable

import numpy as np

from .item import CATEGORIES, SUBSETS, SynthItem
from .world import FLOOR, FPS, FRICTION, GRAVITY, PALETTE, Container, Obj, Occluder, Scene, Wall, simulate  # noqa: F401

SHAPES = ("circle", "square", "triangle")
SPLITS = ("train", "val", "test")
CLIP_SECONDS = 17 / FPS           # the span of a 17-frame clip plus one frame: where the next clip starts
TAP_RATE = 0.3                    # fill rate (fraction of the height per second) of a running tap
NIGHT = 0.3
HEAVY = 10.0


class Retry(Exception):
    """The sampled layout does not work; sample again."""


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
    for name in item.edited:
        o = next((o for o in item.source.objects if o.name == name), None)
        if o is not None and o.material == "solid":
            return name
    return item.preserve[0]


def main_combo(item: SynthItem) -> tuple[str, str]:
    o = item.source.obj(main_object(item))
    return (o.colour, o.shape)


# ---- scene helpers ----------------------------------------------------------------------------
def _obj(colour: str, shape: str, size: float, x: float, y: float | None = None, **kw) -> Obj:
    return Obj(f"{colour} {shape}", shape, colour, size, x, FLOOR + size if y is None else y, **kw)


def _others(rng, k: int, used: set[str], exclude: tuple[str, ...] = ()) -> list[str]:
    free = [c for c in PALETTE if c not in used and c not in exclude]
    if len(free) < k:
        raise Retry
    return [free[i] for i in rng.permutation(len(free))[:k]]


def _shape(rng, shapes: tuple[str, ...] = SHAPES) -> str:
    return shapes[int(rng.integers(len(shapes)))]


def _size(rng, lo: float = 0.045, hi: float = 0.075) -> float:
    return float(rng.uniform(lo, hi))


def _spread(rng, sizes: list[float], lo: float, hi: float, gap: float = 0.03,
            fixed: list[tuple[float, float]] = ()) -> list[float]:
    """x positions for resting objects of ``sizes`` inside [lo, hi], apart from each other and
    from the ``fixed`` (x, half-width) spans."""
    for _ in range(200):
        xs: list[float] = []
        for s in sizes:
            if hi - lo < 2 * s:
                raise Retry
            x = float(rng.uniform(lo + s, hi - s))
            spans = list(fixed) + list(zip(xs, sizes))
            if all(abs(x - fx) >= s + fw + gap for fx, fw in spans):
                xs.append(x)
            else:
                break
        if len(xs) == len(sizes):
            return xs
    raise Retry


def _decel(shape: str) -> float:
    return FRICTION * GRAVITY * (0.3 if shape == "circle" else 1.0)


def _speed_for(shape: str, distance: float) -> float:
    """Initial floor speed after which an object slides/rolls ``distance`` before stopping."""
    return math.sqrt(2 * _decel(shape) * distance)


def _start(rng, lo: float = 0.0, hi: float = 1.0) -> float:
    """A clip start time, a whole number of frames."""
    return round(float(rng.uniform(lo, hi)) * FPS) / FPS


def _at_rest(s: Scene) -> bool:
    return all(o.vx == 0.0 and o.vy == 0.0 and o.bottom <= FLOOR + 1e-6 for o in s.objects if o.present)


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


Builder = Callable[[np.random.Generator, tuple[str, str], str], Draft]


@dataclasses.dataclass(frozen=True)
class Family:
    name: str                               # "category/what"
    category: str
    phrasings: dict[str, tuple[str, ...]]   # subset -> templates, formatted with Draft.words
    build: Builder
    main_shapes: tuple[str, ...] = SHAPES   # shapes the main object may have
    check_change: bool = True               # target must differ visibly from the source

    @property
    def subsets(self) -> tuple[str, ...]:
        return tuple(s for s in SUBSETS if s in self.phrasings)

    def generate(self, rng: np.random.Generator, phrasing: int, combo: tuple[str, str],
                 subset: str | None = None) -> SynthItem:
        subset = subset or self.subsets[0]
        template = self.phrasings[subset][phrasing]
        d = self.build(rng, combo, subset)
        text = template.format(**d.words)
        return SynthItem(id="", subset=subset, category=self.category, family=self.name,
                         instruction=text[0].upper() + text[1:], phrasing=phrasing,
                         source=d.source, target=d.target, source_start=d.source_start,
                         target_start=d.target_start, edited=d.edited, preserve=d.preserve,
                         scene_edit=d.scene_edit)


# ---- layouts ----------------------------------------------------------------------------------
def _roller_scene(rng, combo, room: float = 0.45, n_by: int | None = None,
                  slide: tuple[float, float] | None = None) -> tuple[Scene, Obj]:
    """The main object sliding right from x ~0.35..0.45 (stops after ``slide`` (lo, hi), by default
    within ``room / 4``), 1-2 resting bystanders on its left."""
    colour, shape = combo
    size = _size(rng)
    x = float(rng.uniform(0.35, 0.45))
    d = float(rng.uniform(*(slide or (0.04, room / 4))))
    main = _obj(colour, shape, size, x, vx=_speed_for(shape, d))
    n_by = int(rng.integers(1, 3)) if n_by is None else n_by
    cols = _others(rng, n_by, {colour})
    sizes = [_size(rng, 0.04, 0.06) for _ in cols]
    xs = _spread(rng, sizes, 0.0, x - size - 0.03)
    by = [_obj(c, _shape(rng), s, bx) for c, s, bx in zip(cols, sizes, xs)]
    return Scene([main] + by), main


def _thrown_scene(rng, combo, high: bool = False) -> tuple[Scene, Obj]:
    """The main object thrown from the left (in the air), 1-2 resting objects on the right."""
    colour, shape = combo
    size = _size(rng)
    y = FLOOR + size + float(rng.uniform(0.25, 0.4) if high else rng.uniform(0.0, 0.3))
    main = _obj(colour, shape, size, float(rng.uniform(0.08, 0.25)), y,
                vx=float(rng.uniform(0.25, 0.6)), vy=float(rng.uniform(0.0, 0.35)))
    cols = _others(rng, int(rng.integers(1, 3)), {colour})
    sizes = [_size(rng, 0.04, 0.065) for _ in cols]
    xs = _spread(rng, sizes, 0.55, 1.0)
    return Scene([main] + [_obj(c, _shape(rng), s, bx) for c, s, bx in zip(cols, sizes, xs)]), main


def _resting_scene(rng, combo, n: int, shapes=None, sizes=None, lo=0.0, hi=1.0, fixed=(),
                   exclude=()) -> Scene:
    colour, shape = combo
    cols = [colour] + _others(rng, n - 1, {colour}, exclude)
    shapes = shapes or [shape] + [_shape(rng) for _ in range(n - 1)]
    sizes = sizes or [_size(rng) for _ in range(n)]
    xs = _spread(rng, sizes, lo, hi, fixed=list(fixed))
    return Scene([_obj(c, s, z, x) for c, s, z, x in zip(cols, shapes, sizes, xs)])


def _names(scene: Scene, skip: tuple[str, ...] = ()) -> list[str]:
    return [o.name for o in scene.objects if o.name not in skip]


# ---- temporal ---------------------------------------------------------------------------------
def _later(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    t0 = _start(rng, 0.0, 0.5)
    return Draft(src, src.copy(), _names(src), [], {"obj": main.name}, t0, t0 + 1.0)


def _earlier(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    t0 = _start(rng, 1.0, 1.25)
    return Draft(src, src.copy(), _names(src), [], {"obj": main.name}, t0, t0 - 1.0)


def _restart(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    t0 = _start(rng, 0.75, 1.25)
    return Draft(src, src.copy(), _names(src), [], {"obj": main.name}, t0, 0.0)


def _impact(rng, combo, subset):
    """Target starts at the first frame at which the thrown object touches the floor."""
    src, main = _thrown_scene(rng, combo, high=True)
    states = simulate(src, 4 * FPS)
    for i, s in enumerate(states[1:], 1):
        if s.obj(main.name).bottom <= FLOOR + 1e-6:
            break
    else:
        raise Retry
    if i < 3:
        raise Retry
    return Draft(src, src.copy(), [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, i / FPS)


def _next(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    t0 = _start(rng, 0.0, 0.25)
    return Draft(src, src.copy(), _names(src), [], {"obj": main.name}, t0, t0 + CLIP_SECONDS)


def _rest(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    states = simulate(src, 8 * FPS)
    rest = next((i for i, s in enumerate(states) if _at_rest(s)), None)
    if rest is None or rest < 6:
        raise Retry
    return Draft(src, src.copy(), _names(src), [], {"obj": main.name}, 0.0, rest / FPS)


# ---- causal -----------------------------------------------------------------------------------
def _ict(subset: str) -> float:
    """Target start of a counterfactual: the same span (RAVE) or the clip after it (ICVG)."""
    return CLIP_SECONDS if subset == "ICVG" else 0.0


def _harder(rng, combo, subset):
    src, main = _roller_scene(rng, combo)
    tgt = src.copy()
    tgt.obj(main.name).vx *= 2
    return Draft(src, tgt, [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, _ict(subset))


def _no_push(rng, combo, subset):
    src, main = _roller_scene(rng, combo, slide=(0.1, 0.3))      # a slide long enough to see
    tgt = src.copy()
    tgt.obj(main.name).vx = 0.0
    return Draft(src, tgt, [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, 0.0)


def _reverse(rng, combo, subset):
    src, main = _roller_scene(rng, combo, n_by=0, slide=(0.06, 0.12))   # both ways apart by 0.12+
    m = src.obj(main.name)
    m.x = float(rng.uniform(0.4, 0.6))
    cols = _others(rng, int(rng.integers(1, 3)), {main.colour})
    reach = m.vx**2 / (2 * _decel(m.shape))        # how far it slides, either way
    fixed = [(m.x, m.size + reach + 0.03)]
    sizes = [_size(rng, 0.04, 0.06) for _ in cols]
    xs = _spread(rng, sizes, 0.0, 1.0, fixed=fixed)
    src.objects += [_obj(c, _shape(rng), s, x) for c, s, x in zip(cols, sizes, xs)]
    tgt = src.copy()
    tgt.obj(main.name).vx *= -1
    return Draft(src, tgt, [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, 0.0)


def _no_wall(rng, combo, subset):
    colour, shape = combo
    size = _size(rng)
    x = float(rng.uniform(0.1, 0.25))
    wall = Wall(float(rng.uniform(0.5, 0.6)), 0.03, float(rng.uniform(0.15, 0.25)))
    gap = wall.x - wall.width / 2 - (x + size)
    main = _obj(colour, shape, size, x, vx=_speed_for(shape, gap + float(rng.uniform(0.12, 0.25))))
    cols = _others(rng, int(rng.integers(0, 2)), {colour})
    sizes = [_size(rng, 0.04, 0.055) for _ in cols]
    xs = _spread(rng, sizes, 0.0, x - size - 0.02)
    src = Scene([main] + [_obj(c, _shape(rng), s, bx) for c, s, bx in zip(cols, sizes, xs)], walls=[wall])
    tgt = src.copy()
    tgt.walls = []
    return Draft(src, tgt, [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, _ict(subset),
                 ["walls"])


def _heavier(rng, combo, subset):
    """A rolling ball hits the resting main object; in the target the main object is much heavier."""
    colour, shape = combo
    size = _size(rng, 0.05, 0.07)
    bx = float(rng.uniform(0.5, 0.6))
    block = _obj(colour, shape, size, bx)
    (rc,) = _others(rng, 1, {colour})
    rsize = size
    rx = float(rng.uniform(0.1, 0.2))
    roller = _obj(rc, "circle", rsize, rx, vx=_speed_for("circle", bx - rx + 0.2))
    src = Scene([block, roller])
    tgt = src.copy()
    tgt.obj(block.name).mass = HEAVY
    # the roller bounces back off the heavy block instead of stopping: it is part of the edit too
    return Draft(src, tgt, [block.name, roller.name], [], {"obj": block.name, "other": roller.name}, 0.0, _ict(subset))


# ---- spatial ----------------------------------------------------------------------------------
def _swap_x(scene: Scene, a: str, b: str) -> None:
    oa, ob = scene.obj(a), scene.obj(b)
    oa.x, ob.x = ob.x, oa.x


def _swap_extremes(rng, combo, subset):
    sizes = sorted(float(v) for v in rng.uniform(0.035, 0.09, 3))
    if min(np.diff(sizes)) < 0.015:
        raise Retry
    sizes = [sizes[0], sizes[2], sizes[1]]          # main = smallest, then largest, middle
    src = _resting_scene(rng, combo, 3, sizes=[sizes[1]] * 3)   # spaced for the largest
    for o, s in zip(src.objects, sizes):
        o.size, o.y = s, FLOOR + s
    small, large, mid = (o.name for o in src.objects)
    tgt = src.copy()
    _swap_x(tgt, small, large)
    return Draft(src, tgt, [small, large], [mid], {}, 0.0, 0.0)


def _swap_circles(rng, combo, subset):
    colour, _ = combo
    n = int(rng.integers(3, 5))
    shapes = ["circle", "circle"] + [_shape(rng, ("square", "triangle")) for _ in range(n - 2)]
    size = 0.065
    src = _resting_scene(rng, combo, n, shapes=shapes, sizes=[size] * n)
    for o in src.objects:
        o.size = _size(rng, 0.045, 0.065)
        o.y = FLOOR + o.size
    a, b = src.objects[0].name, src.objects[1].name
    tgt = src.copy()
    _swap_x(tgt, a, b)
    return Draft(src, tgt, [a, b], _names(src, (a, b)), {}, 0.0, 0.0)


def _mirror(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    if rng.random() < 0.5:
        src.walls.append(Wall(float(rng.uniform(0.35, 0.45)), 0.03, float(rng.uniform(0.05, 0.1))))
    tgt = src.copy()
    for o in tgt.objects:
        o.x, o.vx = 1.0 - o.x, -o.vx
    for w in tgt.walls:
        w.x = 1.0 - w.x
    return Draft(src, tgt, _names(src), [], {"obj": main.name}, 0.0, 0.0, ["walls"] if src.walls else [])


def _reflect_left(rng, combo, subset):
    """Objects left of the anchor move to the mirror position on its right."""
    colour, shape = combo
    (ac,) = _others(rng, 1, {colour})
    asize = _size(rng)
    ax = float(rng.uniform(0.4, 0.55))
    n_left = int(rng.integers(1, 3))
    cols = [colour] + _others(rng, n_left - 1, {colour, ac})
    sizes = [_size(rng, 0.035, 0.055) for _ in cols]
    span = min(ax, 1 - ax) - 0.005
    xs = _spread(rng, sizes, ax - span, ax - asize - 0.02)
    left = [_obj(c, shape if i == 0 else _shape(rng), s, x) for i, (c, s, x) in enumerate(zip(cols, sizes, xs))]
    anchor = _obj(ac, _shape(rng), asize, ax)
    src = Scene(left + [anchor])
    tgt = src.copy()
    for o in left:
        tgt.obj(o.name).x = 2 * ax - o.x
    names = [o.name for o in left]
    return Draft(src, tgt, names, [anchor.name], {"anchor": anchor.name}, 0.0, 0.0)


def _hide(rng, combo, subset):
    screen = Occluder(float(rng.uniform(0.65, 0.8)), float(rng.uniform(0.16, 0.2)))
    n = int(rng.integers(2, 4))
    sizes = [_size(rng, 0.04, 0.06)] + [_size(rng) for _ in range(n - 1)]
    src = _resting_scene(rng, combo, n, sizes=sizes, fixed=[(screen.x, screen.width / 2)])
    src.occluders.append(screen)
    main = src.objects[0]
    # the hidden spot must not overlap others: others are all outside the screen already
    tgt = src.copy()
    tgt.obj(main.name).x = screen.x
    return Draft(src, tgt, [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, _ict(subset))


def _sort(rng, combo, subset):
    n = int(rng.integers(3, 5))
    sizes = [float(v) for v in rng.uniform(0.035, 0.085, n)]
    if min(np.diff(sorted(sizes))) < 0.01:
        raise Retry
    src = _resting_scene(rng, combo, n, sizes=[max(sizes)] * n)
    for o, s in zip(src.objects, sizes):
        o.size, o.y = s, FLOOR + s
    slots = sorted(o.x for o in src.objects)
    tgt = src.copy()
    for o, x in zip(sorted(tgt.objects, key=lambda o: o.size), slots):
        o.x = x
    moved = [o.name for o in src.objects if abs(o.x - tgt.obj(o.name).x) > 1e-9]
    if not moved:
        raise Retry
    return Draft(src, tgt, _names(src), [], {}, 0.0, 0.0)     # all are sorted, main first


# ---- commonsense ------------------------------------------------------------------------------
def _night(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    tgt = src.copy()
    tgt.light = NIGHT
    return Draft(src, tgt, [], _names(src), {"obj": main.name}, 0.0, 0.0, ["light"])


def _day(rng, combo, subset):
    src, main = _thrown_scene(rng, combo)
    src.light = NIGHT
    tgt = src.copy()
    tgt.light = 1.0
    return Draft(src, tgt, [], _names(src), {"obj": main.name}, 0.0, 0.0, ["light"])


def _ice_scene(rng, combo, temperature: str, puddle: float = 0.0) -> Scene:
    if combo[0] == "white":              # the ice cube is nominally white
        raise Retry
    ice = Obj("ice cube", "square", "white", _size(rng, 0.06, 0.08), float(rng.uniform(0.35, 0.65)), 0.0,
              material="ice")
    ice.y = FLOOR + ice.size
    n = int(rng.integers(1, 3))
    src = _resting_scene(rng, combo, n, fixed=[(ice.x, ice.size + 0.06)], exclude=("white",))
    src.objects.insert(0, ice)
    src.temperature = temperature
    src.puddle, src.puddle_x = puddle, ice.x
    return src


def _sun(rng, combo, subset):
    src = _ice_scene(rng, combo, "mild")
    tgt = src.copy()
    tgt.temperature = "warm"
    return Draft(src, tgt, ["ice cube"], _names(src, ("ice cube",)), {}, 0.0, _ict(subset), ["temperature"])


def _freeze(rng, combo, subset):
    src = _ice_scene(rng, combo, "warm", puddle=float(rng.uniform(0.1, 0.2)))
    tgt = src.copy()
    tgt.temperature = "cold"
    return Draft(src, tgt, ["ice cube"], _names(src, ("ice cube",)), {}, 0.0, 0.0, ["temperature"])


def _tap(rng, combo, subset):
    c = Container(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.16, 0.22)), float(rng.uniform(0.3, 0.4)),
                  level=float(rng.uniform(0.05, 0.3)))
    n = int(rng.integers(1, 3))
    src = _resting_scene(rng, combo, n, fixed=[(c.x, c.width / 2)])
    src.containers.append(c)
    tgt = src.copy()
    tgt.containers[0].fill_rate = TAP_RATE
    return Draft(src, tgt, [], _names(src), {}, 0.0, _ict(subset), ["containers"])


def _made_of_ice(rng, combo, subset):
    src = _resting_scene(rng, combo, int(rng.integers(2, 4)), exclude=("white",))
    src.temperature = "warm"
    main = src.objects[0]
    if main.size < 0.05:
        main.size, main.y = 0.05, FLOOR + 0.05
        if any(abs(o.x - main.x) < o.size + main.size + 0.01 for o in src.objects[1:]):
            raise Retry
    tgt = src.copy()
    tgt.obj(main.name).material = "ice"
    return Draft(src, tgt, [main.name], _names(src, (main.name,)), {"obj": main.name}, 0.0, 0.0)


# ---- the registry -----------------------------------------------------------------------------
def _fam(name: str, build: Builder, rave: tuple[str, ...] = (), icvg: tuple[str, ...] = (), **kw) -> Family:
    phrasings = {k: v for k, v in (("RAVE", rave), ("ICVG", icvg)) if v}
    return Family(name, name.split("/")[0], phrasings, build, **kw)


_FAMILY_LIST = [
    # temporal
    _fam("temporal/later", _later, rave=(
        "show the scene one second later",
        "make this clip start one second further into the action",
        "shift the clip forward in time by one second",
        "what would the camera have seen one second later?",
        "show the same moment of the scene, but a second afterwards",
        "play this clip as it would look if it began a second later")),
    _fam("temporal/earlier", _earlier, rave=(
        "show the scene one second earlier",
        "move this clip one second back in time",
        "what did the scene look like a second before this?",
        "make the clip begin one second sooner",
        "rewind the clip by one second")),
    _fam("temporal/restart", _restart, rave=(
        "rewind to the very start, when the {obj} was just launched",
        "show the scene from the beginning of the throw",
        "go back to the moment the {obj} was set in motion",
        "show how this scene started",
        "replay the scene from its first instant")),
    _fam("temporal/impact", _impact, rave=(
        "show the moment the {obj} hits the floor",
        "start the clip when the {obj} first lands",
        "jump to the instant the {obj} touches the ground",
        "skip ahead to when the {obj} comes down",
        "cut to the landing of the {obj}")),
    _fam("temporal/next", _next, icvg=(
        "what happens next?",
        "continue the scene: show the following moments",
        "show what comes right after this clip",
        "predict the next part of this scene",
        "keep the action going and show the following clip")),
    _fam("temporal/rest", _rest, icvg=(
        "what will it look like when everything has stopped moving?",
        "show the scene once the {obj} comes to rest",
        "fast-forward to when all motion has died down",
        "show the final resting state of the scene",
        "skip to the moment the {obj} stops")),
    # causal
    _fam("causal/harder", _harder, rave=(
        "what if the {obj} had been pushed twice as hard?",
        "show this with the {obj} given double the push",
        "imagine the {obj} started twice as fast",
        "redo the clip with a push on the {obj} twice as strong",
        "what would happen if the {obj} were launched with twice the speed?"), icvg=(
        "had the {obj} been pushed twice as hard, what would follow?",
        "if the {obj} had started twice as fast, show the next moments",
        "continue the scene as if the {obj} had been pushed with double force",
        "suppose the {obj} got twice the push: what comes after this clip?",
        "show what follows if the {obj} had been launched twice as fast")),
    _fam("causal/no_push", _no_push, rave=(
        "what if nothing had pushed the {obj}?",
        "show the clip as if the {obj} had never been set in motion",
        "imagine nobody touched the {obj}",
        "redo this with the {obj} left alone",
        "what would the scene look like without the push on the {obj}?")),
    _fam("causal/reverse", _reverse, rave=(
        "what if the {obj} had been pushed the other way?",
        "show this with the {obj} pushed in the opposite direction",
        "imagine the push on the {obj} came from the other side",
        "redo the clip with the {obj} sent the opposite way",
        "what would happen if the {obj} moved off in the reverse direction?")),
    _fam("causal/no_wall", _no_wall, rave=(
        "what if the wall were not there?",
        "remove the wall and show what the {obj} would do",
        "imagine there had never been a wall",
        "show the clip without the barrier",
        "what would happen to the {obj} with no wall in the way?"), icvg=(
        "if the wall had not been there, what would come next?",
        "without the wall, show the moments after this clip",
        "suppose there were no barrier: continue the scene",
        "show what follows if the wall had never existed",
        "imagine the wall gone from the start: what happens after this?")),
    _fam("causal/heavier", _heavier, rave=(
        "what if the {obj} were much heavier?",
        "show this as if the {obj} weighed ten times as much",
        "imagine the {obj} were made of lead",
        "redo the collision with a far heavier {obj}",
        "what would the {other} do if the {obj} were very heavy?"), icvg=(
        "if the {obj} had been much heavier, what would follow?",
        "suppose the {obj} weighed ten times as much: show the next moments",
        "continue the scene as if the {obj} were made of lead",
        "show what comes after this clip with a far heavier {obj}",
        "imagine a very heavy {obj}: what happens next?")),
    # spatial
    _fam("spatial/swap_extremes", _swap_extremes, rave=(
        "put the smallest object where the largest one is, and the largest where the smallest was",
        "swap the biggest and the smallest object",
        "exchange the places of the largest and the smallest thing",
        "let the tiniest object and the biggest one trade places",
        "switch the positions of the smallest and largest objects")),
    _fam("spatial/swap_circles", _swap_circles, rave=(
        "swap the two balls",
        "let the two round objects trade places",
        "exchange the positions of the two circles",
        "switch the two balls around",
        "put each ball where the other one is")),
    _fam("spatial/mirror", _mirror, rave=(
        "mirror the scene left to right",
        "show the scene as seen in a mirror",
        "flip everything horizontally",
        "show the same clip reflected left-right",
        "swap left and right in this scene")),
    _fam("spatial/reflect_left", _reflect_left, rave=(
        "move whatever is left of the {anchor} to the same distance on its right",
        "put everything on the left of the {anchor} on its other side, just as far away",
        "reflect the objects left of the {anchor} to its right",
        "whatever lies to the left of the {anchor} should be to its right instead, at the same distance",
        "flip the things left of the {anchor} over to its right side")),
    _fam("spatial/hide", _hide, rave=(
        "move the {obj} behind the screen",
        "hide the {obj} behind the grey panel",
        "put the {obj} where it cannot be seen, behind the screen",
        "tuck the {obj} away behind the screen",
        "place the {obj} out of sight behind the panel"), icvg=(
        "next, the {obj} is moved behind the screen: show the scene after that",
        "show the scene after someone hides the {obj} behind the panel",
        "continue: the {obj} gets put behind the screen",
        "what does the scene look like after the {obj} is tucked behind the screen?",
        "show the following moment, once the {obj} is out of sight behind the panel")),
    _fam("spatial/sort", _sort, rave=(
        "rearrange the objects from smallest on the left to largest on the right, using the same spots",
        "order the objects by size, small to big from left to right, keeping their places",
        "sort the things by size, smallest leftmost, in the positions they occupy",
        "put the objects in order of size from left to right, using the existing spots",
        "line them up by size, the smallest at the left, the largest at the right, on the same spots")),
    # commonsense
    _fam("commonsense/night", _night, rave=(
        "what if this happened at night?",
        "show the same scene after sunset",
        "make it night time",
        "show this clip as it would look in the dark evening",
        "imagine the scene at midnight")),
    _fam("commonsense/day", _day, rave=(
        "what if this happened in broad daylight?",
        "show the same scene at noon",
        "make it day time",
        "show this clip with the sun up",
        "imagine the scene in the morning light")),
    _fam("commonsense/sun", _sun, rave=(
        "what if the ice were left in the hot sun?",
        "show this on a scorching summer day",
        "imagine it were very warm here",
        "show the clip as if it were a heatwave",
        "what would happen to the ice in hot weather?"), icvg=(
        "if it had been hot all along, what would come next?",
        "suppose a heatwave: show the following moments",
        "continue the scene as if it were a very warm day",
        "show what comes after this clip on a hot summer day",
        "imagine strong sunshine: what happens next?")),
    _fam("commonsense/freeze", _freeze, rave=(
        "what if it were freezing?",
        "show this on a frosty winter day",
        "imagine the temperature were well below zero",
        "show the clip as if it were bitterly cold",
        "what would the ice and the water do in freezing weather?")),
    _fam("commonsense/tap", _tap, rave=(
        "what if the tap were left running?",
        "show this with the tap above the tank turned on",
        "imagine someone opened the tap",
        "show the clip with water flowing from the tap",
        "what would the tank look like with the tap running?"), icvg=(
        "if the tap had been left running, what would come next?",
        "suppose the tap was on all along: show the following moments",
        "continue the scene as if water were pouring from the tap",
        "show what comes after this clip with the tap open",
        "imagine the tap running: what happens next?")),
    _fam("commonsense/made_of_ice", _made_of_ice, rave=(
        "what if the {obj} were made of ice?",
        "show this with the {obj} carved from ice",
        "imagine the {obj} were a block of ice on this hot day",
        "redo the clip with an ice {obj}",
        "what would become of the {obj} if it were ice?")),
]
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILY_LIST}
_MAIN_SHAPES = {"spatial/swap_circles": ("circle",)}
for _n, _s in _MAIN_SHAPES.items():
    FAMILIES[_n] = dataclasses.replace(FAMILIES[_n], main_shapes=_s)


def families_by_category() -> dict[str, list[str]]:
    return {c: sorted(n for n, f in FAMILIES.items() if f.category == c) for c in CATEGORIES}


# ---- making items -----------------------------------------------------------------------------
MIN_CHANGED = 150        # pixels (over the whole 64x64 clip) the target must differ from the source in
MIN_EDIT = 0.075         # world units the target must differ from the source in what the edit is about


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
            size = max(size, abs(ca.level - cb.level) * ca.height)
    return size


def _inside(states) -> bool:
    for s in states:
        for o in s.objects:
            if o.present and (o.x - o.size < -1e-6 or o.x + o.size > 1 + 1e-6 or o.y + o.size > 1 + 1e-6):
                return False
    return True


def generate_checked(rng: np.random.Generator, family: Family | str, split: str, subset: str | None = None,
                     height: int = 64, width: int = 64, tries: int = 100, combo_split: str | None = None):
    """(item, source clip, target clip) for ``split``; re-samples layouts that fail the checks.
    ``combo_split`` takes the main-object combinations of another split (a diagnostic: phrasings
    held out without the combinations, or the other way round)."""
    from .render import render_clip
    family = FAMILIES[family] if isinstance(family, str) else family
    combo_split = split if combo_split is None else combo_split
    if split not in SPLITS or combo_split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r} and {combo_split!r}")
    if subset is None:
        subset = family.subsets[int(rng.integers(len(family.subsets)))]
    allowed = [p for p in range(len(family.phrasings[subset])) if phrasing_split(p) == split]
    pool = combos(combo_split, family.main_shapes)
    for _ in range(tries):
        phrasing = allowed[int(rng.integers(len(allowed)))]
        combo = pool[int(rng.integers(len(pool)))]
        try:
            item = family.generate(rng, phrasing, combo, subset)
        except Retry:
            continue
        src_states, tgt_states = item.source_states(), item.target_states()
        if not (_inside(src_states) and _inside(tgt_states)):
            continue
        src, tgt = render_clip(src_states, height, width), render_clip(tgt_states, height, width)
        scale = (64 * 64) / (height * width)
        if family.check_change and (changed_pixels(src, tgt) * scale < MIN_CHANGED
                                    or edit_size(item, src_states, tgt_states) < MIN_EDIT):
            continue
        assert main_combo(item) == combo, (family.name, main_combo(item), combo)
        return item, src, tgt
    raise RuntimeError(f"{family.name}: no valid item in {tries} tries")


def make_item(rng: np.random.Generator, family: Family | str, split: str, subset: str | None = None) -> SynthItem:
    """One checked item of ``family`` whose phrasing and main-object combination belong to ``split``."""
    return generate_checked(rng, family, split, subset)[0]
