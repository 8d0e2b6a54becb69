"""RVE-Synth source scenes: the clips that edits start from.

A :class:`Source` is a scene, the time its clip starts and the roles its objects play. Each scene
*kind* is built so that several different edits are plausible on it, and so that the scene alone does
not tell which one is asked for (RVE-Synth v2): every kind can be lit by day, at dusk or at night (so a
dusk scene can be darkened or brightened), the ice scene sits in mild weather with a little melt water
(it can freeze or melt), the tank is partly full (it can fill or drain), a moving object can be shown
earlier or later, pushed harder, reversed or left alone.

Kinds (``KINDS``):

* ``motion``: the subject thrown from the left through the air, or sliding right along the floor,
  with 1-2 resting bystanders; the clip starts 0-1.25 s into the motion.
* ``wall``: the subject sliding towards a low wall that stops it; bystanders on its left.
* ``collision``: a ball rolling into the resting subject.
* ``row``: 3-4 resting objects of clearly different sizes, sometimes exactly two of them balls,
  sometimes a grey screen on the right; warm or mild.
* ``ice``: an ice cube with a little melt water beside it, mild weather, 1-2 other objects.
* ``tank``: a partly full water tank, 1-2 other objects.

Roles: ``subject`` is the object whose (colour, shape) decides the split (always the drawn
combination); ``mover`` is the object a push acts on (the subject, or the rolling ball).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from .world import FLOOR, FPS, FRICTION, GRAVITY, PALETTE, Container, Obj, Occluder, Scene, Wall

SHAPES = ("circle", "square", "triangle")
DAY, DUSK, NIGHT = 1.0, 0.6, 0.3      # light levels a source can have
LIGHTS = (DAY, DUSK, NIGHT)
LIGHT_P = (0.4, 0.3, 0.3)
ROW_SIZES = np.array([0.035, 0.048, 0.061, 0.074])    # a row's sizes: any two at least 0.011 apart


class Retry(Exception):
    """The sampled layout does not work; sample again."""


@dataclasses.dataclass
class Source:
    kind: str
    scene: Scene
    start: float                              # seconds simulated before the clip's first frame
    roles: dict[str, str]                     # role -> object name ("subject", "mover", ...)

    @property
    def subject(self) -> str:
        return self.roles["subject"]


# ---- helpers ----------------------------------------------------------------------------------
def obj(colour: str, shape: str, size: float, x: float, y: float | None = None, **kw) -> Obj:
    return Obj(f"{colour} {shape}", shape, colour, size, x, FLOOR + size if y is None else y, **kw)


def other_colours(rng, k: int, used: set[str], exclude: tuple[str, ...] = ()) -> list[str]:
    free = [c for c in PALETTE if c not in used and c not in exclude]
    if len(free) < k:
        raise Retry
    return [free[i] for i in rng.permutation(len(free))[:k]]


def pick_shape(rng, shapes: tuple[str, ...] = SHAPES) -> str:
    return shapes[int(rng.integers(len(shapes)))]


def size(rng, lo: float = 0.045, hi: float = 0.075) -> float:
    return float(rng.uniform(lo, hi))


def spread(rng, sizes: list[float], lo: float, hi: float, gap: float = 0.03,
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


def decel(shape: str) -> float:
    return FRICTION * GRAVITY * (0.3 if shape == "circle" else 1.0)


def speed_for(shape: str, distance: float) -> float:
    """Initial floor speed after which an object slides/rolls ``distance`` before stopping."""
    return math.sqrt(2 * decel(shape) * distance)


def start_time(rng, lo: float = 0.0, hi: float = 1.0) -> float:
    """A clip start time, a whole number of frames."""
    return round(float(rng.uniform(lo, hi)) * FPS) / FPS


def light(rng) -> float:
    return float(LIGHTS[int(rng.choice(len(LIGHTS), p=LIGHT_P))])


def bystanders(rng, used: set[str], n: int, lo: float, hi: float, fixed=(), small=(0.04, 0.06),
               exclude: tuple[str, ...] = ()) -> list[Obj]:
    cols = other_colours(rng, n, used, exclude)
    sizes = [size(rng, *small) for _ in cols]
    xs = spread(rng, sizes, lo, hi, fixed=list(fixed))
    return [obj(c, pick_shape(rng), s, x) for c, s, x in zip(cols, sizes, xs)]


# ---- kinds ------------------------------------------------------------------------------------
def thrown(rng, combo, high: bool = False) -> tuple[Scene, Obj]:
    """The subject thrown from the left (in the air), 1-2 resting objects on the right."""
    colour, shape = combo
    s = size(rng)
    y = FLOOR + s + float(rng.uniform(0.25, 0.4) if high else rng.uniform(0.0, 0.3))
    main = obj(colour, shape, s, float(rng.uniform(0.08, 0.25)), y,
               vx=float(rng.uniform(0.25, 0.6)), vy=float(rng.uniform(0.0, 0.35)))
    by = bystanders(rng, {colour}, int(rng.integers(1, 3)), 0.55, 1.0, small=(0.04, 0.065))
    return Scene([main] + by), main


def rolling(rng, combo, slide: tuple[float, float] = (0.1, 0.3)) -> tuple[Scene, Obj]:
    """The subject sliding right from x ~0.35..0.45 (it stops after ``slide``), 1-2 resting
    bystanders on its left."""
    colour, shape = combo
    s = size(rng)
    x = float(rng.uniform(0.35, 0.45))
    main = obj(colour, shape, s, x, vx=speed_for(shape, float(rng.uniform(*slide))))
    by = bystanders(rng, {colour}, int(rng.integers(1, 3)), 0.0, x - s - 0.03)
    return Scene([main] + by), main


def motion_source(rng, combo) -> Source:
    scene, main = thrown(rng, combo, high=bool(rng.random() < 0.5)) if rng.random() < 0.5 else rolling(rng, combo)
    scene.light = light(rng)
    return Source("motion", scene, start_time(rng, 0.0, 1.25), {"subject": main.name, "mover": main.name})


def wall_source(rng, combo) -> Source:
    colour, shape = combo
    s = size(rng)
    x = float(rng.uniform(0.1, 0.25))
    wall = Wall(float(rng.uniform(0.5, 0.6)), 0.03, float(rng.uniform(0.15, 0.25)))
    gap = wall.x - wall.width / 2 - (x + s)
    main = obj(colour, shape, s, x, vx=speed_for(shape, gap + float(rng.uniform(0.12, 0.25))))
    by = bystanders(rng, {colour}, int(rng.integers(0, 2)), 0.0, x - s - 0.02, small=(0.04, 0.055))
    scene = Scene([main] + by, light=light(rng), walls=[wall])
    return Source("wall", scene, start_time(rng, 0.0, 0.25), {"subject": main.name, "mover": main.name})


def collision_source(rng, combo) -> Source:
    """A ball rolls into the resting subject."""
    colour, shape = combo
    s = size(rng, 0.05, 0.07)
    bx = float(rng.uniform(0.5, 0.6))
    block = obj(colour, shape, s, bx)
    (rc,) = other_colours(rng, 1, {colour})
    rx = float(rng.uniform(0.1, 0.2))
    roller = obj(rc, "circle", s, rx, vx=speed_for("circle", bx - rx + 0.2))
    scene = Scene([block, roller], light=light(rng))
    return Source("collision", scene, 0.0, {"subject": block.name, "mover": roller.name})


def row_source(rng, combo) -> Source:
    """3-4 resting objects of clearly different sizes, spaced so that any two can trade places."""
    colour, shape = combo
    n = int(rng.integers(3, 5))
    sizes = [float(v) for v in rng.choice(ROW_SIZES, n, replace=False) + rng.uniform(-0.001, 0.001, n)]
    shapes = [shape] + [pick_shape(rng) for _ in range(n - 1)]
    if rng.random() < 0.5:                                       # exactly two balls
        balls = [0, 1] if shape == "circle" else [1, 2]
        shapes = [("circle" if i in balls else (s if s != "circle" else pick_shape(rng, ("square", "triangle"))))
                  for i, s in enumerate(shapes)]
    fixed = []
    occluders = []
    if rng.random() < 0.6:
        screen = Occluder(float(rng.uniform(0.68, 0.8)), float(rng.uniform(0.16, 0.2)))
        occluders.append(screen)
        fixed.append((screen.x, screen.width / 2))
    cols = [colour] + other_colours(rng, n - 1, {colour}, ("white",))
    xs = spread(rng, [max(sizes)] * n, 0.0, 1.0, fixed=fixed)
    scene = Scene([obj(c, sh, z, x) for c, sh, z, x in zip(cols, shapes, sizes, xs)], light=light(rng),
                  temperature="warm" if rng.random() < 0.4 else "mild", occluders=occluders)
    return Source("row", scene, 0.0, {"subject": scene.objects[0].name})


def ice_source(rng, combo) -> Source:
    """An ice cube with melt water beside it in mild weather: it can freeze or melt."""
    if combo[0] == "white":              # the ice cube is nominally white
        raise Retry
    ice = Obj("ice cube", "square", "white", size(rng, 0.06, 0.08), float(rng.uniform(0.35, 0.65)), 0.0,
              material="ice")
    ice.y = FLOOR + ice.size
    n = int(rng.integers(1, 3))
    cols = [combo[0]] + other_colours(rng, n - 1, {combo[0]}, ("white",))
    sizes = [size(rng) for _ in cols]
    xs = spread(rng, sizes, 0.0, 1.0, fixed=[(ice.x, ice.size + 0.06)])
    objs = [obj(c, combo[1] if i == 0 else pick_shape(rng), s, x) for i, (c, s, x) in enumerate(zip(cols, sizes, xs))]
    scene = Scene([ice] + objs, light=light(rng), temperature="mild", puddle=float(rng.uniform(0.2, 0.35)),
                  puddle_x=ice.x)
    return Source("ice", scene, 0.0, {"subject": objs[0].name})


def tank_source(rng, combo) -> Source:
    """A partly full water tank: it can fill or drain."""
    c = Container(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.16, 0.22)), float(rng.uniform(0.3, 0.4)),
                  level=float(rng.uniform(0.25, 0.5)))
    n = int(rng.integers(1, 3))
    cols = [combo[0]] + other_colours(rng, n - 1, {combo[0]})
    sizes = [size(rng) for _ in cols]
    xs = spread(rng, sizes, 0.0, 1.0, fixed=[(c.x, c.width / 2)])
    objs = [obj(col, combo[1] if i == 0 else pick_shape(rng), s, x)
            for i, (col, s, x) in enumerate(zip(cols, sizes, xs))]
    scene = Scene(objs, light=light(rng), containers=[c])
    return Source("tank", scene, 0.0, {"subject": objs[0].name})


KINDS: dict[str, Callable[[np.random.Generator, tuple[str, str]], Source]] = {
    "motion": motion_source, "wall": wall_source, "collision": collision_source, "row": row_source,
    "ice": ice_source, "tank": tank_source,
}
