"""The RVE-Synth world: a deterministic 2D side view of objects under gravity, friction,
bounces and collisions, with light level, temperature (ice melts, water freezes), containers
that fill, walls and occluders.

Coordinates are in world units: x in [0, 1] left to right, y in [0, 1] bottom to top; the floor
is the line y = FLOOR. Time advances in frames of 1/FPS s, each split into SUBSTEPS.
Everything is plain numbers: the same scene always simulates to the same states.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Literal

FLOOR = 0.15
FPS = 8
SUBSTEPS = 16
GRAVITY = 2.0          # world units / s^2
RESTITUTION = 0.5      # bounce off floor, walls and borders
FRICTION = 0.6         # rolling/sliding friction coefficient on the floor
MELT_RATE = 0.02       # ice size lost per second when warm (world units)
FREEZE_RATE = 0.5      # fraction of a puddle turned to ice per second when cold
MIN_ICE = 0.015        # ice smaller than this has melted away

Shape = Literal["circle", "square", "triangle"]
Material = Literal["solid", "ice", "water"]

# name -> RGB in daylight; chosen far apart from each other and from the backgrounds
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 50, 190),
    "orange": (245, 130, 20),
    "white": (245, 245, 245),
}
ICE_COLOUR = (170, 225, 245)
WATER_COLOUR = (30, 120, 200)


@dataclasses.dataclass
class Obj:
    name: str                  # unique in its scene, e.g. "red circle"
    shape: Shape
    colour: str                # a PALETTE key (ice and water draw in their own colours)
    size: float                # radius, or half the side of a square/triangle
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    mass: float = 1.0
    material: Material = "solid"
    present: bool = True

    @property
    def bottom(self) -> float:
        return self.y - self.size


@dataclasses.dataclass
class Wall:
    x: float                   # centre
    width: float
    height: float              # from the floor up


@dataclasses.dataclass
class Container:
    x: float
    width: float
    height: float
    level: float = 0.0         # water level as a fraction of the height
    fill_rate: float = 0.0     # fraction per second (a tap above it when > 0, an open drain when < 0)


@dataclasses.dataclass
class Occluder:
    x: float
    width: float               # a vertical screen in front of everything, floor to top


@dataclasses.dataclass
class Scene:
    objects: list[Obj]
    light: float = 1.0         # 1 day ... 0.25 night
    temperature: Literal["cold", "mild", "warm"] = "mild"
    walls: list[Wall] = dataclasses.field(default_factory=list)
    containers: list[Container] = dataclasses.field(default_factory=list)
    occluders: list[Occluder] = dataclasses.field(default_factory=list)
    puddle: float = 0.0        # area of melt water on the floor (width of the puddle band)
    puddle_x: float = 0.5
    time: float = 0.0

    def obj(self, name: str) -> Obj:
        return next(o for o in self.objects if o.name == name)

    def copy(self) -> "Scene":
        return copy.deepcopy(self)

    def describe(self) -> dict:
        """A plain-data description (for the item JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        d = dict(d)
        d["objects"] = [Obj(**o) for o in d["objects"]]
        d["walls"] = [Wall(**w) for w in d.get("walls", [])]
        d["containers"] = [Container(**c) for c in d.get("containers", [])]
        d["occluders"] = [Occluder(**o) for o in d.get("occluders", [])]
        return cls(**d)


def step(scene: Scene, seconds: float) -> None:
    """Advance ``scene`` in place by ``seconds``."""
    n = max(1, round(seconds * FPS * SUBSTEPS))
    dt = seconds / n
    for _ in range(n):
        _substep(scene, dt)
    scene.time += seconds


def simulate(scene: Scene, frames: int, start: float = 0.0) -> list[Scene]:
    """States at ``frames`` consecutive frames, after first advancing ``start`` seconds."""
    s = scene.copy()
    if start > 0:
        step(s, start)
    states = [s.copy()]
    for _ in range(frames - 1):
        step(s, 1.0 / FPS)
        states.append(s.copy())
    return states


def _substep(scene: Scene, dt: float) -> None:
    live = [o for o in scene.objects if o.present]
    for o in live:
        if o.material == "water":
            continue
        o.vy -= GRAVITY * dt
        o.x += o.vx * dt
        o.y += o.vy * dt
        if o.bottom <= FLOOR:                          # floor: bounce, then friction while resting
            o.y = FLOOR + o.size
            o.vy = -o.vy * RESTITUTION if o.vy < -0.05 else 0.0
        if o.vy == 0.0 and o.bottom <= FLOOR + 1e-6 and o.vx != 0.0:
            dv = FRICTION * GRAVITY * dt * (0.3 if o.shape == "circle" else 1.0)
            o.vx = 0.0 if abs(o.vx) <= dv else o.vx - math.copysign(dv, o.vx)
        if o.x - o.size < 0 and o.vx < 0 or o.x + o.size > 1 and o.vx > 0:
            o.vx = -o.vx * RESTITUTION
        o.x = min(max(o.x, o.size), 1 - o.size)
        for w in scene.walls:                          # walls block from either side
            if o.bottom < FLOOR + w.height and abs(o.x - w.x) < o.size + w.width / 2:
                side = 1 if o.x > w.x else -1
                o.x = w.x + side * (o.size + w.width / 2)
                if o.vx * side < 0:
                    o.vx = -o.vx * RESTITUTION
    _collide(live)
    for o in live:                                     # temperature
        if o.material == "ice" and scene.temperature == "warm":
            melted = min(o.size, MELT_RATE * dt)
            o.size -= melted
            scene.puddle += 2 * melted
            scene.puddle_x = o.x
            if o.size < MIN_ICE:
                o.present = False
                scene.puddle += 2 * o.size
    if scene.temperature == "cold" and scene.puddle > 0:
        scene.puddle = max(0.0, scene.puddle - FREEZE_RATE * dt * scene.puddle)
    for c in scene.containers:
        c.level = min(1.0, max(0.0, c.level + c.fill_rate * dt))


def _collide(objs: list[Obj]) -> None:
    """Elastic collisions between pairs of round-ish bodies (momentum-conserving impulses)."""
    for i, a in enumerate(objs):
        for b in objs[i + 1:]:
            if a.material == "water" or b.material == "water":
                continue
            dx, dy = b.x - a.x, b.y - a.y
            dist = math.hypot(dx, dy)
            overlap = a.size + b.size - dist
            if overlap <= 0 or dist == 0:
                continue
            nx, ny = dx / dist, dy / dist
            rel = (b.vx - a.vx) * nx + (b.vy - a.vy) * ny
            total = a.mass + b.mass
            if rel < 0:
                j = -2 * rel / total
                a.vx -= j * b.mass * nx
                a.vy -= j * b.mass * ny
                b.vx += j * a.mass * nx
                b.vy += j * a.mass * ny
            a.x -= nx * overlap * b.mass / total
            a.y -= ny * overlap * b.mass / total
            b.x += nx * overlap * a.mass / total
            b.y += ny * overlap * a.mass / total
