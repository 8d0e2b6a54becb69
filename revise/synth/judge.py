"""The exact judge for RVE-Synth: parse a clip back into world objects and score it against the item.

Every pixel of an RVE-Synth frame has a colour fixed by the world (PALETTE, ICE_COLOUR, the sky
gradient, GROUND, walls, ...) times the light level, so a frame can be parsed back: estimate the
light from the floor band (or the sky), label each pixel with the nearest world colour, and turn the
connected components of each object colour into :class:`Detection` s in world units. Compression
blurs object edges (H.264's chroma subsampling bleeds a pixel or two, and the sky and several
object colours differ in chroma only), so an object's area and centroid count the mixed pixels
around it by how much of the object's colour they hold, and the shape of a small object comes from
fitting each shape's own rendering to it.

:func:`score_item` compares a candidate clip with the item's exact target, rendered at the
candidate's own resolution and parsed the same way (so discretisation and occlusion cancel out),
and returns the four RVE-Bench scores on the paper's 1-10 scale (1 worst, 10 best):

* ``EA`` edit accuracy: per edited object (position and size per frame; hidden or missing where it
  should be) and per edited scene property (light level, temperature: puddle and ice; walls,
  containers, occluders), the mean of closeness to the target and progress from the unedited source
  towards it (:func:`_edit_quality`). Graded without a flat zone beyond the measurement noise
  (a pixel): the exact target scores 10, a half-done edit about half way, the source low.
* ``PC`` preservation: the preserved objects, the scene properties that were not edited, no
  spurious objects, and the pixel classes of the rest of the frame.
* ``GN`` naturalness: object tracks without jumps or accelerations beyond what the world's physics
  produced for this item, no flicker (objects vanishing and coming back), stable shape and size,
  no stutter or scrambled frames (frame-to-frame change compared with the item's own clips).
* ``GR`` realism: pixels of known world colours, sharp (few in-between colours), no noise.

Each score is ``1 + 9 * q`` where ``q`` in [0, 1] is the mean of graded checks; a check is 1 within
its tolerance and decays as ``exp(-(err - tol) / scale)`` beyond, so nearer misses score higher.
``overall(scores)`` (the mean of the four) is the RVE-Bench default.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..vocab import DIMENSIONS
from .item import SynthItem
from .render import CONTAINER, GROUND, OCCLUDER, SKY, WALL, render_clip, shape_mask
from .world import FLOOR, ICE_COLOUR, PALETTE, WATER_COLOUR, Obj, Scene, simulate

# tolerances, world units unless said otherwise; *_TOL: preservation (PC), *_EXACT: edit accuracy (EA)
POS_TOL, POS_SCALE = 0.06, 0.08
SIZE_TOL, SIZE_SCALE = 0.02, 0.03
LIGHT_TOL, LIGHT_SCALE = 0.08, 0.1
PUDDLE_TOL, PUDDLE_SCALE = 0.04, 0.06
MASK_TOL, MASK_SCALE = 0.15, 0.15      # mismatch of a wall / container / occluder pixel mask
EXACT_PX = 1.0                         # EA: an object within this many pixels of the target's is exact
LIGHT_EXACT = 0.03
PUDDLE_EXACT_PX = 3.0                  # the puddle is a 1-2 pixel band, told from the ground by chroma only
MASK_EXACT = 0.1
GATE = 0.6                             # PC: a detection further than this from where expected is not matched
MISS_ERR = 1.0                         # EA: the largest error (a missing object with nowhere to hide)
MIN_LIGHT = 0.15                       # below this a frame is taken as black, not as a world frame
KNOWN_TOL = 30.0                       # a pixel within this (RGB distance, at light 1) is a world colour

OBJECT_CLASSES = tuple(PALETTE) + ("ice", "water")
_OBJ_RGB = np.array([PALETTE[c] for c in PALETTE] + [ICE_COLOUR, WATER_COLOUR], np.float32)
# background classes after the object classes; "sky" is per row (a gradient)
BACKGROUND_CLASSES = ("sky", "ground", "wall", "container", "occluder")
CLASSES = OBJECT_CLASSES + BACKGROUND_CLASSES
_CLS = {n: i for i, n in enumerate(CLASSES)}
UNKNOWN = -1


@dataclasses.dataclass
class Detection:
    colour: str           # a PALETTE key, "ice" or "water"
    shape: str            # "circle", "square" or "triangle"
    x: float              # centre in world units (the Obj's x, y convention)
    y: float
    cy: float             # y of the area centroid (positions are compared by centroid: no shape guess)
    size: float           # radius / half side, world units
    area: float           # world units^2
    fill: float           # area / bounding-box area
    bbox: tuple[int, int, int, int]   # row0, row1, col0, col1 (inclusive), pixels
    misfit: dict[str, float] | None = None   # per shape: template mismatch / pixels (small components)


@dataclasses.dataclass
class ParsedFrame:
    light: float | None             # None: no floor or sky of the world was found
    labels: np.ndarray              # int [H, W] class index or UNKNOWN
    residual: np.ndarray            # float [H, W] distance to the nearest class colour / light
    detections: list[Detection]
    puddle: float                   # width of the melt-water band on the floor, world units


# ---------------------------------------------------------------------------------------------
# parsing


def _rows_y(h: int) -> np.ndarray:
    return 1.0 - (np.arange(h) + 0.5) / h


def estimate_light(img: np.ndarray) -> float | None:
    """Light level from the floor band (below the puddle band), else from the sky, else None."""
    img = np.asarray(img, np.float32)
    h = img.shape[0]
    ys = _rows_y(h)
    for rows, ref in (
        (ys < FLOOR - 0.03, lambda r: np.broadcast_to(GROUND, r.shape)),
        (ys > FLOOR + 0.02, lambda r: SKY * (0.55 + 0.45 * (1 - ys[rows]))[:, None, None] * np.ones(r.shape[:2] + (1,))),
    ):
        if not rows.any():
            continue
        pix = img[rows]
        expect = ref(pix).astype(np.float32)
        lam = (pix * expect).sum(-1) / np.maximum((expect * expect).sum(-1), 1e-6)
        resid = np.linalg.norm(pix - lam[..., None] * expect, axis=-1)
        ok = resid < 4.0 + 0.04 * np.linalg.norm(pix, axis=-1)
        if ok.mean() >= 0.2 and ok.sum() >= 4:
            return float(np.median(lam[ok]))
    return None


def _class_colours(h: int, light: float) -> np.ndarray:
    """The colour of every class at ``light`` in every row, float [H, K, 3] (the sky is a gradient)."""
    ys = _rows_y(h)
    flat = np.concatenate([_OBJ_RGB, np.stack([GROUND, WALL, CONTAINER, OCCLUDER])]) * light
    sky = (SKY[None] * (0.55 + 0.45 * (1 - ys))[:, None]) * light                      # [H, 3]
    n_obj = len(OBJECT_CLASSES)
    out = np.empty((h, len(CLASSES), 3), np.float32)
    out[:, :n_obj] = flat[:n_obj]
    out[:, n_obj] = sky
    out[:, n_obj + 1:] = flat[n_obj:]
    return out


def _distances(img: np.ndarray, light: float) -> np.ndarray:
    """Squared RGB distance of every pixel to every class colour at ``light``, [H, W, K]; the sky,
    walls and containers only above the floor line (where the world draws them), the ground only
    below it."""
    img = np.asarray(img, np.float32)
    h = img.shape[0]
    ys = _rows_y(h)
    diff = img[:, :, None, :] - _class_colours(h, light)[:, None]
    d = np.einsum("hwkc,hwkc->hwk", diff, diff)
    for c in ("sky", "wall", "container"):
        d[ys <= FLOOR, :, _CLS[c]] = np.inf
    d[ys > FLOOR, :, _CLS["ground"]] = np.inf
    return d


def classify(img: np.ndarray, light: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest world colour per pixel at ``light``: (labels [H, W], distance / light [H, W])."""
    d = _distances(img, light)
    return d.argmin(-1).astype(np.int64), np.sqrt(d.min(-1)) / max(light, 1e-3)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a bool mask as arrays of (row, col) pixel indices (runs + union-find)."""
    parent: list[int] = []

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    runs = []             # (row, c0, c1 exclusive, id)
    prev: list[tuple[int, int, int]] = []
    for r in range(mask.shape[0]):
        row = mask[r].astype(np.int8)
        if not row.any():
            prev = []
            continue
        edges = np.diff(np.concatenate([[0], row, [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        cur = []
        for c0, c1 in zip(starts.tolist(), ends.tolist()):
            rid = len(parent)
            parent.append(rid)
            for p0, p1, pid in prev:
                if p0 <= c1 and c0 <= p1:            # touching incl. diagonally (8-connectivity)
                    ra, rb = find(rid), find(pid)
                    if ra != rb:
                        parent[ra] = rb
            cur.append((c0, c1, rid))
            runs.append((r, c0, c1, rid))
        prev = cur
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for r, c0, c1, rid in runs:
        groups.setdefault(find(rid), []).append((r, c0, c1))
    out = []
    for g in groups.values():
        pts = [(r, c) for r, c0, c1 in g for c in range(c0, c1)]
        out.append(np.array(pts, np.int64))
    return out


def _shape_of(fill: float, pts: np.ndarray) -> str:
    # triangle: apex up, so the top half holds ~1/4 of the area; a circle/square ~1/2
    rows = pts[:, 0]
    mid = (rows.min() + rows.max()) / 2
    top = (rows < mid).mean()
    if fill < 0.64 or top < 0.36:
        return "triangle"
    return "circle" if fill < 0.89 else "square"


FIT_MAX_PIXELS = 400        # components up to this many pixels get their shape from a template fit
_SHIFTS = np.array([(dx, dy) for dx in (-0.5, 0.0, 0.5) for dy in (-0.5, 0.0, 0.5)])   # pixels


def _fit_shape(pts: np.ndarray, area: float, x: float, y: float, h: int, w: int) -> dict[str, float]:
    """Per shape, how badly its rendering (of the component's area, at its centroid moved by up to
    half a pixel) fits the component: mismatched pixels / the component's pixels; the best fit is
    the shape. Small objects are a few pixels across, where fill and symmetry depend on how the
    outline falls on the pixel grid; the renderer's own rasterisation at the same resolution does
    not."""
    r0, r1 = int(pts[:, 0].min()) - 2, int(pts[:, 0].max()) + 3
    c0, c1 = int(pts[:, 1].min()) - 2, int(pts[:, 1].max()) + 3
    comp = np.zeros((r1 - r0, c1 - c0), bool)
    comp[pts[:, 0] - r0, pts[:, 1] - c0] = True
    ys = (1.0 - (np.arange(r0, r1) + 0.5) / h)[:, None]
    xs = ((np.arange(c0, c1) + 0.5) / w)[None, :]
    sx, sy = (_SHIFTS[:, 0] / w)[:, None, None], (_SHIFTS[:, 1] / h)[:, None, None]
    misfit = {}
    for shape, k in _AREA_K.items():
        size = math.sqrt(area / k)
        yc = y + size / 3 if shape == "triangle" else y
        misfit[shape] = float((shape_mask(shape, x + sx, yc + sy, size, xs, ys) ^ comp).sum(axis=(1, 2)).min()) / len(pts)
    return misfit


RING = 2            # pixels around a component whose mixed colours count towards its area


def _dilate(mask: np.ndarray, n: int = 1) -> np.ndarray:
    """``mask`` grown by ``n`` pixels (8-neighbourhood)."""
    for _ in range(n):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= grown[:, :-1]
        grown[:, :-1] |= grown[:, 1:]
        mask = grown
    return mask


def _coverage(img: np.ndarray, labels: np.ndarray, colours: np.ndarray, owner: np.ndarray, index: int,
              k: int, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How much of each pixel in and around a component (within RING pixels) object class ``k``
    covers: the pixel's colour projected on the line from the local background's colour to the
    object's, in [0, 1] (below 0.1 taken as 0, above 0.9 as 1, so that mild noise adds nothing).
    The local background is the most common background class around the component, above and
    below the floor line (by default the sky and the ground). A clean render has 1 inside the
    component and 0 around it; compression blurs the object's edge (chroma subsampling bleeds a
    pixel or two), and the blurred edge pixels still add up to the object's area. Pixels of other
    components do not count. Returns (pixel indices [N, 2], coverage [N], local background class [N])."""
    h, w = owner.shape
    r0, r1 = max(int(pts[:, 0].min()) - RING, 0), min(int(pts[:, 0].max()) + RING + 1, h)
    c0, c1 = max(int(pts[:, 1].min()) - RING, 0), min(int(pts[:, 1].max()) + RING + 1, w)
    comp = np.zeros((r1 - r0, c1 - c0), bool)
    comp[pts[:, 0] - r0, pts[:, 1] - c0] = True
    near = _dilate(comp, RING)
    own = owner[r0:r1, c0:c1]
    near &= (own == -1) | (own == index)
    rows, cols = np.nonzero(near)
    lab = labels[r0:r1, c0:c1][rows, cols]
    above = _rows_y(h)[rows + r0] > FLOOR
    local = np.empty(len(rows), np.int64)
    for side, default in ((above, _CLS["sky"]), (~above, _CLS["ground"])):
        seen = lab[side & (lab >= len(OBJECT_CLASSES))]
        local[side] = np.bincount(seen).argmax() if len(seen) else default
    b = colours[rows + r0, local]
    span = colours[rows + r0, k] - b
    a = ((img[r0:r1, c0:c1][rows, cols] - b) * span).sum(-1) / np.maximum((span * span).sum(-1), 1.0)
    a = np.where(a < 0.1, 0.0, np.where(a > 0.9, 1.0, a))
    a[comp[rows, cols]] = np.maximum(a[comp[rows, cols]], 0.5)      # a labelled pixel is at least half the object
    return np.stack([rows + r0, cols + c0], 1), a, local


def _detection(colour: str, pts: np.ndarray, h: int, w: int, at: np.ndarray, a: np.ndarray) -> Detection:
    """A component ``pts`` as a detection; area and centroid from its coverage ``a`` of pixels ``at``."""
    r0, r1 = int(pts[:, 0].min()), int(pts[:, 0].max())
    c0, c1 = int(pts[:, 1].min()), int(pts[:, 1].max())
    n = len(pts)
    fill = n / ((r1 - r0 + 1) * (c1 - c0 + 1))
    area = float(a.sum()) / (h * w)
    x = float(((at[:, 1] + 0.5) / w * a).sum() / a.sum())
    y = float(((1.0 - (at[:, 0] + 0.5) / h) * a).sum() / a.sum())
    misfit = _fit_shape(at[a >= 0.5], area, x, y, h, w) if n <= FIT_MAX_PIXELS else None
    shape = min(misfit, key=misfit.get) if misfit else _shape_of(fill, pts)
    size = math.sqrt(area / _AREA_K[shape])
    # a triangle's area centroid is a third of the way up; the Obj y is the box centre
    return Detection(colour, shape, x, y + size / 3 if shape == "triangle" else y, y, size, area, fill,
                     (r0, r1, c0, c1), misfit)


_AREA_K = {"circle": math.pi, "square": 4.0, "triangle": 2.0}     # area = k * size^2


def _min_area(h: int, w: int) -> int:
    return max(3, round(0.0008 * h * w))


def parse(img: np.ndarray, light: float | None = None) -> ParsedFrame:
    """Parse one frame (uint8 [H, W, 3]) into labels, light level, detections and the puddle width."""
    img = np.asarray(img)
    h, w = img.shape[:2]
    if light is None:
        light = estimate_light(img)
    use = light if light is not None and light >= MIN_LIGHT else 1.0
    labels, resid = classify(img, use)
    known = resid <= KNOWN_TOL
    labels = np.where(known, labels, UNKNOWN)
    ys = _rows_y(h)
    above = (ys > FLOOR)[:, None]
    comps: list[tuple[int, np.ndarray]] = []
    owner = np.full((h, w), -1, np.int64)           # which component each pixel belongs to
    for k, colour in enumerate(OBJECT_CLASSES):
        mask = labels == k
        if colour == "water":
            mask &= above                          # the puddle band is measured separately
        if mask.sum() < _min_area(h, w):
            continue
        for pts in _components(mask):
            if len(pts) >= _min_area(h, w):
                owner[pts[:, 0], pts[:, 1]] = len(comps)
                comps.append((k, pts))
    colours = _class_colours(h, use)
    img_f = np.asarray(img, np.float32)
    dets = []
    for i, (k, pts) in enumerate(comps):
        at, a, local = _coverage(img_f, labels, colours, owner, i, k, pts)
        dets.append(_detection(OBJECT_CLASSES[k], pts, h, w, at, a))
        # stray labels at the object's blurred edge (unknown, or another object's colour: blue on
        # sky blurs to water) become the object's where it covers half the pixel, else the local background
        r, c = at[:, 0], at[:, 1]
        stray = (labels[r, c] == UNKNOWN) | ((labels[r, c] < len(OBJECT_CLASSES)) & (owner[r, c] == -1))
        labels[r[stray], c[stray]] = np.where(a[stray] >= 0.5, k, local[stray])
    band = (ys <= FLOOR) & (ys >= FLOOR - 0.02)
    if band.any():
        cols = (labels[band] == _CLS["water"]).mean(0) >= 0.5
        puddle = float(cols.sum() / w)
    else:
        puddle = 0.0
    return ParsedFrame(light, labels, resid, dets, puddle)


def parse_frame(img_uint8: np.ndarray, light: float | None = None) -> list[Detection]:
    """The objects in one frame (uint8 [H, W, 3], any size), in world units."""
    return parse(img_uint8, light).detections


# ---------------------------------------------------------------------------------------------
# scoring


def overall(scores: dict) -> float:
    """The RVE-Bench default overall score: the mean of EA, PC, GN and GR."""
    return float(np.mean([scores[k] for k in DIMENSIONS]))


def _soft(err: float, tol: float, scale: float) -> float:
    return 1.0 if err <= tol else math.exp(-(err - tol) / scale)


def _aggregate(groups: list[float]) -> float:
    """Mean of the checks' groups, pulled halfway to the worst one (one clear failure matters)."""
    return 0.5 * float(np.mean(groups)) + 0.5 * float(np.min(groups)) if groups else 1.0


def _to10(q: float) -> float:
    return float(1.0 + 9.0 * min(max(q, 0.0), 1.0))


def _colour_of(o: Obj) -> str:
    return {"ice": "ice", "water": "water"}.get(o.material, o.colour)


def _assign(objs: list[Obj], expect: dict[str, tuple[float, float] | None], dets: list[Detection],
            gate: float | None) -> tuple[dict[str, Detection | None], list[Detection]]:
    """Greedy nearest matching of objects to detections of their colour. Objects expected visible
    (``expect[name]`` a position) are matched first, within ``gate``; then objects not expected to
    be visible take any leftover detection of their colour. Returns (matches, unmatched)."""
    pairs = []
    for o in objs:
        pos = expect.get(o.name)
        if pos is None:
            continue
        for j, d in enumerate(dets):
            if d.colour == _colour_of(o):
                dist = math.hypot(d.x - pos[0], d.cy - pos[1])
                if gate is None or dist <= gate:
                    pairs.append((dist, o.name, j))
    pairs.sort()
    match: dict[str, Detection | None] = {o.name: None for o in objs}
    used: set[int] = set()
    for dist, name, j in pairs:
        if match[name] is None and j not in used:
            match[name], used = dets[j], used | {j}
    for o in objs:                                   # not expected: any leftover of its colour
        if expect.get(o.name) is None:
            for j, d in enumerate(dets):
                if j not in used and d.colour == _colour_of(o):
                    match[o.name], used = d, used | {j}
                    break
    return match, [d for j, d in enumerate(dets) if j not in used]


def _resample(video: np.ndarray, frames: int) -> np.ndarray:
    idx = np.round(np.linspace(0, len(video) - 1, frames)).astype(int)
    return video[idx]


@dataclasses.dataclass
class _Reference:
    states: list[Scene]
    parsed: list[ParsedFrame]
    expect: list[dict[str, Detection | None]]      # per frame: object -> its detection in the target


def _reference(item: SynthItem, states: list[Scene], h: int, w: int) -> _Reference:
    clip = render_clip(states, h, w)
    parsed, expect = [], []
    for s, img in zip(states, clip):
        p = parse(img, s.light)
        world = {o.name: (o.x, o.y) for o in s.objects if o.present}
        m, _ = _assign(s.objects, world, p.detections, gate=None)
        m = {n: (d if world.get(n) is not None else None) for n, d in m.items()}
        parsed.append(p)
        expect.append(m)
    return _Reference(states, parsed, expect)


_CACHE: dict = {}


def _references(item: SynthItem, h: int, w: int) -> tuple[list[Scene], _Reference, list[Scene], _Reference]:
    """Target and source states and their parsed renders at h x w (a few recent items cached)."""
    key = (repr(item.to_dict()), h, w)
    if key not in _CACHE:
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        tstates, sstates = item.target_states(), item.source_states()
        _CACHE[key] = (tstates, _reference(item, tstates, h, w), sstates, _reference(item, sstates, h, w))
    return _CACHE[key]


def _object_check(exp: Detection | None, got: Detection | None) -> tuple[float, dict]:
    """Preservation of one object in one frame: 1 within POS_TOL / SIZE_TOL of the target's."""
    if exp is None and got is None:
        return 1.0, {}
    if exp is None or got is None:
        return 0.0, {"presence": "missing" if got is None else "unexpected"}
    dpos = math.hypot(got.x - exp.x, got.cy - exp.cy)     # centroids: whatever the shape guess
    dsize = abs(math.sqrt(got.area / _AREA_K[exp.shape]) - exp.size)     # size as if of the expected shape
    q = _soft(dpos, POS_TOL, POS_SCALE) * (0.5 + 0.5 * _soft(dsize, SIZE_TOL, SIZE_SCALE))
    return q, {"pos_err": round(dpos, 4), "size_err": round(dsize, 4)}


def _edit_err(exp: Detection | None, got: Detection | None, world: tuple[float, float] | None,
              frame: ParsedFrame | None = None) -> float:
    """How far an object in one frame is from the target's (world units): position plus size error.
    Where the target has it hidden (``world``: its position behind the occluder) but it shows: its
    distance from there plus its visible size. Where it is missing: the distance from where it
    should be to the nearest place in ``frame`` that could hide it (another object at least half its
    area, or the occluder), plus its size. At most MISS_ERR (the frame's width), which is also the
    error where the target has it gone (melted) but it shows."""
    if exp is None:
        if got is None:
            return 0.0
        return MISS_ERR if world is None else min(math.hypot(got.x - world[0], got.y - world[1]) + got.size, MISS_ERR)
    if got is None:
        return min(_hiding_dist(exp, frame) + exp.size, MISS_ERR)
    dpos = math.hypot(got.x - exp.x, got.cy - exp.cy)     # centroids: whatever the shape guess
    dsize = abs(math.sqrt(got.area / _AREA_K[exp.shape]) - exp.size)     # size as if of the expected shape
    return min(dpos + dsize, MISS_ERR)


def _hiding_dist(exp: Detection, frame: ParsedFrame | None) -> float:
    """Distance from a detection's place to the nearest place in ``frame`` that could hide it: the
    centre of another object of at least half its area, or an occluder pixel in its rows."""
    if frame is None:
        return MISS_ERR
    dist = [math.hypot(d.x - exp.x, d.cy - exp.cy) for d in frame.detections
            if d.colour != exp.colour and d.area >= 0.5 * exp.area]
    w = frame.labels.shape[1]
    r0, r1 = exp.bbox[0], exp.bbox[1] + 1
    cols = np.flatnonzero((frame.labels[r0:r1] == _CLS["occluder"]).any(0))
    if len(cols):
        dist.append(float(np.abs((cols + 0.5) / w - exp.x).min()))
    return min(dist, default=MISS_ERR)


def _edit_quality(cand_err: list[float], source_err: list[float], tol: float, scale: float) -> tuple[float, dict]:
    """Edit accuracy of one edited thing from its per-frame errors, for the candidate and for the
    unedited source: the mean of closeness to the target (per frame 1 within ``tol``, the
    measurement noise, then ``exp(-(err - tol) / scale)``) and progress from the source towards the
    target (1 - the candidate's total error beyond ``tol`` over the source's, in [0, 1]). Both
    grow whenever the candidate comes closer, the source scores 0 progress by definition, and a
    half-done edit about 1/2. Where the source is itself within ``tol`` (nothing to make progress
    on), closeness alone."""
    close = float(np.mean([_soft(e, tol, scale) for e in cand_err]))
    need = sum(max(0.0, e - tol) for e in source_err)
    if need <= tol:
        return close, {"close": round(close, 3)}
    done = min(max(1.0 - sum(max(0.0, e - tol) for e in cand_err) / need, 0.0), 1.0)
    return 0.5 * close + 0.5 * done, {"close": round(close, 3), "progress": round(done, 3)}


def _mask_err(a: np.ndarray, b: np.ndarray) -> float:
    """Pixels of one mask more than a pixel away from the other, relative to their union (at least
    2% of the frame, so a few stray edge pixels of a compressed clip do not count as a wall)."""
    off = (a & ~_dilate(b)) | (b & ~_dilate(a))
    return float(off.sum() / max((a | b).sum(), 0.02 * a.size))


_TEMPERATURE = ("temperature", "puddle", "ice")
_MASK_CLASSES = {"walls": ("wall",), "wall": ("wall",), "containers": ("container", "water"),
                 "container": ("container", "water"), "occluders": ("occluder",), "occluder": ("occluder",)}


def _scene_err(prop: str, ref: ParsedFrame, cand: ParsedFrame, target: Scene, got_light: float | None,
               cand_match: dict[str, Detection | None], ref_match: dict[str, Detection | None]) -> float:
    """How far one frame is from the target's in one scene property (0: the same): the light level;
    the puddle width plus the ice cubes' errors; the water height in the tanks; or the mismatch of the
    property's pixel masks."""
    if prop == "light":
        return 1.0 if got_light is None else abs(got_light - target.light)
    if prop in _TEMPERATURE:
        ice = [_edit_err(ref_match.get(o.name), cand_match.get(o.name), (o.x, o.y) if o.present else None, cand)
               for o in target.objects if o.material == "ice"]
        return abs(cand.puddle - ref.puddle) + (float(np.mean(ice)) if ice else 0.0)
    if prop in ("containers", "container") and target.containers:
        return float(np.mean([abs(_water_height(cand, c) - _water_height(ref, c)) for c in target.containers]))
    if prop in _MASK_CLASSES:          # a container and its water as one mask: a 1-pixel rim blurs away
        idx = [_CLS[c] for c in _MASK_CLASSES[prop]]
        return _mask_err(np.isin(ref.labels, idx), np.isin(cand.labels, idx))
    return float(np.mean([_mask_err(ref.labels == _CLS[c], cand.labels == _CLS[c])     # unknown property:
                          for c in BACKGROUND_CLASSES]))                                # each background class


def _water_height(frame: ParsedFrame, c) -> float:
    """Height (world units) of the water column inside where container ``c`` stands in the target:
    the rows above the floor whose pixels across the tank's inside are mostly water. A tank
    drawn elsewhere, or empty, reads 0 there."""
    h, w = frame.labels.shape
    ys = _rows_y(h)
    inner = c.width / 2 - 0.02                     # inside the rim, away from its blurred edge
    cols = np.flatnonzero(np.abs((np.arange(w) + 0.5) / w - c.x) <= inner)
    rows = np.flatnonzero((ys > FLOOR) & (ys <= FLOOR + c.height))
    if not len(cols) or not len(rows):
        return 0.0
    water = (frame.labels[np.ix_(rows, cols)] == _CLS["water"]).mean(1) >= 0.5
    return float(water.sum() / h)


WATER_TOL, WATER_SCALE, WATER_EXACT_PX = 0.03, 0.05, 1.5    # a tank's water height: PC tolerance, scale; EA (pixels)


def _scene_tols(prop: str, exact: float) -> tuple[float, float, float]:
    """(preservation tolerance, scale, edit-accuracy tolerance) of a scene property's error;
    ``exact`` is the object tolerance (a pixel) at this resolution."""
    if prop == "light":
        return LIGHT_TOL, LIGHT_SCALE, LIGHT_EXACT
    if prop in _TEMPERATURE:
        return PUDDLE_TOL, PUDDLE_SCALE, PUDDLE_EXACT_PX * exact
    if prop in ("containers", "container"):
        return WATER_TOL, WATER_SCALE, WATER_EXACT_PX * exact
    return MASK_TOL, MASK_SCALE, MASK_EXACT


def _tracks(match_per_frame: list[dict[str, Detection | None]], names: list[str]) -> dict[str, list[Detection | None]]:
    return {n: [m.get(n) for m in match_per_frame] for n in names}


def _motion_stats(tracks: dict[str, list[Detection | None]]) -> tuple[float, float, int]:
    """Largest per-frame displacement, largest change of displacement, total presence toggles."""
    vmax = amax = 0.0
    toggles = 0
    for tr in tracks.values():
        vs = []
        for a, b in zip(tr, tr[1:]):
            if (a is None) != (b is None):
                toggles += 1
            vs.append(None if a is None or b is None else np.array([b.x - a.x, b.cy - a.cy]))
        for v in vs:
            if v is not None:
                vmax = max(vmax, float(np.hypot(*v)))
        for v0, v1 in zip(vs, vs[1:]):
            if v0 is not None and v1 is not None:
                amax = max(amax, float(np.hypot(*(v1 - v0))))
    return vmax, amax, toggles


SHAPE_MARGIN = 0.2      # a shape is clearly not another when that fits worse by this (misfit)


def _shape_changed(a: Detection, b: Detection) -> bool:
    """Whether an object's shape clearly changed between two detections: their best shapes differ
    and, for small ones, each fits its own shape better than the other's by SHAPE_MARGIN of its
    pixels (a compressed object a few pixels across may fit two shapes about equally well)."""
    if a.shape == b.shape:
        return False
    if a.misfit is None or b.misfit is None:
        return True
    return (a.misfit[b.shape] - a.misfit[a.shape] >= SHAPE_MARGIN
            and b.misfit[a.shape] - b.misfit[b.shape] >= SHAPE_MARGIN)


def _instability(tracks: dict[str, list[Detection | None]]) -> int:
    """Clear shape changes plus size jumps (by area: a shape guess does not change it) between
    consecutive frames, over all tracks."""
    n = 0
    for tr in tracks.values():
        for a, b in zip(tr, tr[1:]):
            if a is not None and b is not None:
                n += _shape_changed(a, b) + (abs(a.size - math.sqrt(b.area / _AREA_K[a.shape])) > SIZE_TOL)
    return n


def _frame_change(clip: np.ndarray, lights: list[float]) -> np.ndarray:
    """Per consecutive pair of frames: the percentage of pixels that changed by more than 25 (at light 1)."""
    f = clip.astype(np.float32) / np.maximum(np.array(lights, np.float32), MIN_LIGHT)[:, None, None, None]
    if len(f) < 2:
        return np.zeros(0)
    return 100.0 * (np.abs(np.diff(f, axis=0)).max(-1) > 25).mean(axis=(1, 2))


def _stalls(change: np.ndarray, ref_change: np.ndarray, moving: float = 0.3) -> int:
    """Frame pairs where the candidate stands still although both reference clips move, next to a
    pair where the candidate itself moves: a stutter (a duplicated frame), an abrupt stop or a
    late start. A candidate that is still throughout is a still scene, not a frozen video."""
    if len(change) == 0:
        return 0
    still = (change < 0.1 * ref_change) & (ref_change > moving)
    moves = change > moving
    beside = np.zeros_like(moves)
    beside[1:] |= moves[:-1]
    beside[:-1] |= moves[1:]
    return int((still & beside).sum())


def score_item(item: SynthItem, video_uint8: np.ndarray) -> dict:
    """Score a candidate clip (uint8 [F, H, W, 3], any size) for ``item``.

    Returns {"EA", "PC", "GN", "GR", "overall"} on the 1-10 scale plus "diagnostics"."""
    video = np.asarray(video_uint8)
    if video.dtype != np.uint8:
        video = np.clip(np.asarray(video, np.float32), 0, 255).round().astype(np.uint8)
    if video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0:
        return _all_ones({"reason": f"not a uint8 [F, H, W, 3] clip: shape {list(video.shape)}"})
    diag: dict = {}
    if len(video) != item.frames:
        diag["resampled"] = f"{len(video)} frames resampled evenly to {item.frames}"
        video = _resample(video, item.frames)
    cand = [parse(f) for f in video]
    lights = [p.light for p in cand]
    diag["light"] = [None if l is None else round(l, 3) for l in lights]
    if all(l is None or l < MIN_LIGHT for l in lights):
        diag["reason"] = "no RVE-Synth world found: no floor or sky at any light level"
        return _all_ones(diag)
    m = _match(item, video, cand)
    obj_diag: dict = {}
    scene_diag: dict = {}
    ea, edited = _edit_accuracy(m, obj_diag, scene_diag)
    pc = _preservation(m, edited, obj_diag, scene_diag, diag)
    gn = _naturalness(m, diag)
    gr = _realism(m, diag)
    diag["objects"] = obj_diag
    diag["scene"] = scene_diag
    out = {"EA": _to10(ea), "PC": _to10(pc), "GN": _to10(gn), "GR": _to10(gr)}
    out["overall"] = overall(out)
    out["diagnostics"] = diag
    return out


def _all_ones(diag: dict) -> dict:
    """The scores of a clip the judge cannot read at all: 1 everywhere."""
    out = {k: 1.0 for k in DIMENSIONS}
    out["overall"] = 1.0
    out["diagnostics"] = diag
    return out


@dataclasses.dataclass
class _Match:
    """A candidate clip parsed and matched against the item's target and source renders."""
    item: SynthItem
    video: np.ndarray                                  # uint8 [F, H, W, 3], the item's frame count
    tstates: list[Scene]
    ref: _Reference                                    # the target, rendered and parsed at the clip's size
    sstates: list[Scene]
    sref: _Reference                                   # the source, likewise
    cand: list[ParsedFrame]
    lights: list[float | None]
    names: list[str]                                   # the scene's objects
    cmatch: list[dict[str, Detection | None]]          # the candidate's objects near where the target has them
    ctrack: list[dict[str, Detection | None]]          # the candidate's objects wherever they are
    strack: list[dict[str, Detection | None]]          # the source's objects wherever they are
    spurious: list[int]                                # per frame: detections no object claims, beyond the target's
    world: list[dict[str, tuple[float, float]]]        # per frame: the target's objects' world positions

    @property
    def size(self) -> tuple[int, int]:
        return self.video.shape[1], self.video.shape[2]

    def object_group(self, name: str) -> tuple[float, list]:
        qs, errs = [], []
        for t in range(self.item.frames):
            q, e = _object_check(self.ref.expect[t].get(name), self.cmatch[t].get(name))
            qs.append(q)
            errs.append(e)
        return float(np.mean(qs)), errs

    def edit_errors(self, name: str, match: list[dict[str, Detection | None]], parsed: list[ParsedFrame]) -> list[float]:
        return [_edit_err(self.ref.expect[t].get(name), match[t].get(name), self.world[t].get(name), parsed[t])
                for t in range(self.item.frames)]

    def scene_errors(self, prop: str, parsed: list[ParsedFrame], light: list[float | None],
                     match: list[dict[str, Detection | None]]) -> list[float]:
        return [_scene_err(prop, self.ref.parsed[t], parsed[t], self.tstates[t], light[t], match[t],
                           self.ref.expect[t]) for t in range(self.item.frames)]


def _match(item: SynthItem, video: np.ndarray, cand: list[ParsedFrame]) -> _Match:
    """Match the objects of ``video`` (parsed: ``cand``) and the source's to the target's, frame by frame."""
    h, w = video.shape[1:3]
    tstates, ref, sstates, sref = _references(item, h, w)
    cmatch, ctrack, strack, spurious = [], [], [], []
    for t, (s, p) in enumerate(zip(tstates, cand)):
        exp = {n: (d.x, d.cy) if d is not None else None for n, d in ref.expect[t].items()}
        cmatch.append(_assign(s.objects, exp, p.detections, gate=GATE)[0])
        track, extra = _assign(s.objects, exp, p.detections, gate=None)
        ctrack.append(track)
        strack.append(_assign(s.objects, exp, sref.parsed[t].detections, gate=None)[0])
        # detections no scene object claims, beyond those of the target itself
        spurious.append(max(0, len(extra) - len(_assign(s.objects, exp, ref.parsed[t].detections, gate=None)[1])))
    world = [{o.name: (o.x, o.y) for o in s.objects if o.present} for s in tstates]
    return _Match(item, video, tstates, ref, sstates, sref, cand, [p.light for p in cand],
                  [o.name for o in tstates[0].objects], cmatch, ctrack, strack, spurious, world)


def _edit_accuracy(m: _Match, obj_diag: dict, scene_diag: dict) -> tuple[float, list[str]]:
    """EA: closeness to the target and progress from the source, per edited object and property;
    also the objects taken as edited."""
    item = m.item
    exact = EXACT_PX / min(m.size)
    ea_groups = []
    edited = [n for n in item.edited if n in m.names]
    if not edited and not item.scene_edit:
        edited = m.names
    for n in edited:
        errs = m.edit_errors(n, m.ctrack, m.cand)
        q, parts = _edit_quality(errs, m.edit_errors(n, m.strack, m.sref.parsed), exact, POS_SCALE)
        ea_groups.append(q)
        obj_diag[n] = {"role": "edited", "score": round(q, 3), **parts, "err": [round(e, 4) for e in errs]}
    for prop in item.scene_edit:
        _, scale, tol = _scene_tols(prop, exact)
        q, parts = _edit_quality(m.scene_errors(prop, m.cand, m.lights, m.ctrack),
                                 m.scene_errors(prop, m.sref.parsed, [p.light for p in m.sref.parsed], m.strack),
                                 tol, scale)
        ea_groups.append(q)
        scene_diag[prop] = {"score": round(q, 3), **parts}
    return _aggregate(ea_groups), edited


def _preservation(m: _Match, edited: list[str], obj_diag: dict, scene_diag: dict, diag: dict) -> float:
    """PC: the preserved objects, the scene properties not edited, no spurious objects, and the
    background's pixel classes."""
    item = m.item
    exact = EXACT_PX / min(m.size)
    pc_groups = []
    for n in item.preserve:
        if n in m.names and n not in edited:
            q, e = m.object_group(n)
            pc_groups.append(q)
            obj_diag[n] = {"role": "preserved", "score": round(q, 3), "frames": e}
    kept_props = [p for p in ("light", "temperature", "walls", "containers", "occluders")
                  if not _edits(item.scene_edit, p)]
    for prop in kept_props:
        tol, scale, _ = _scene_tols(prop, exact)
        qs = [_soft(e, tol, scale) for e in m.scene_errors(prop, m.cand, m.lights, m.cmatch)]
        pc_groups.append(float(np.mean(qs)))
        scene_diag["kept:" + prop] = round(float(np.mean(qs)), 3)
    pc_groups.append(float(np.mean([1.0 / (1 + n) for n in m.spurious])))
    diag["spurious"] = m.spurious
    bg = _background_agreement(m, set(item.preserve) - set(edited))
    diag["background_agreement"] = round(bg, 4)
    pc_groups.append(_soft(1 - bg, 0.04, 0.05))
    return _aggregate(pc_groups)


def _background_agreement(m: _Match, preserved: set[str]) -> float:
    """The share of pixels away from the objects (the preserved ones apart) and from edited scene
    parts whose class is the target's, over all frames."""
    h, w = m.size
    agree = []
    for t in range(m.item.frames):
        keep = np.ones((h, w), bool)
        for match in (m.ref.expect[t], m.cmatch[t]):
            for n, d in match.items():
                if d is not None and n not in preserved:
                    r0, r1, c0, c1 = d.bbox
                    keep[max(0, r0 - 2):r1 + 3, max(0, c0 - 2):c1 + 3] = False
        lab_r, lab_c = m.ref.parsed[t].labels, m.cand[t].labels
        for prop, cls in (("temperature", ("water", "ice")), ("walls", ("wall",)),
                          ("containers", ("container", "water")), ("occluders", ("occluder",))):
            if _edits(m.item.scene_edit, prop):
                for c in cls:
                    keep &= (lab_r != _CLS[c]) & (lab_c != _CLS[c])
        if keep.any():
            agree.append(float((lab_r[keep] == lab_c[keep]).mean()))
    return float(np.mean(agree)) if agree else 1.0


def _naturalness(m: _Match, diag: dict) -> float:
    """GN: no jumps, accelerations, flicker or shape changes beyond the item's own clips', no stutter."""
    h, w = m.size
    names = m.names
    allowed_v = allowed_a = 0.0
    allowed_toggles = 0
    for r in (m.ref, m.sref):
        v, a, tg = _motion_stats(_tracks(r.expect, names))
        allowed_v, allowed_a, allowed_toggles = max(allowed_v, v), max(allowed_a, a), max(allowed_toggles, tg)
    px = 1.5 / min(h, w)
    cv, ca, ctg = _motion_stats(_tracks(m.ctrack, names))
    q_jump = _soft(cv - (allowed_v * 1.25 + px), 0.0, 0.05)
    q_acc = _soft(ca - (allowed_a * 1.25 + 2 * px), 0.0, 0.05)
    q_flicker = 1.0 / (1 + max(0, ctg - allowed_toggles))
    instab = _instability(_tracks(m.ctrack, names))
    ref_instab = max(_instability(_tracks(r.expect, names)) for r in (m.ref, m.sref))
    q_shape = 1.0 / (1 + 0.5 * max(0, instab - ref_instab))
    ch_c = _frame_change(m.video, [l if l is not None else 1.0 for l in m.lights])
    ch_t = _frame_change(render_clip(m.tstates, h, w), [s.light for s in m.tstates])
    ch_s = _frame_change(render_clip(m.sstates, h, w), [s.light for s in m.sstates])
    ch_ref = np.maximum(ch_t, ch_s)
    mean_ref = float(ch_ref.mean()) if len(ch_ref) else 0.0
    q_change = _soft(float(ch_c.mean()) - (1.5 * mean_ref + 1.0) if len(ch_c) else 0.0, 0.0, max(mean_ref, 1.0))
    frozen = _stalls(ch_c, np.minimum(ch_t, ch_s))
    q_frozen = 1.0 / (1 + frozen)
    gn_parts = {"jump": q_jump, "accel": q_acc, "flicker": q_flicker, "shape": q_shape,
                "change": q_change, "frozen": q_frozen}
    diag["naturalness"] = {k: round(v, 3) for k, v in gn_parts.items()}
    diag["motion"] = {"max_step": round(cv, 4), "allowed_step": round(allowed_v, 4), "max_accel": round(ca, 4),
                      "allowed_accel": round(allowed_a, 4), "toggles": ctg, "allowed_toggles": allowed_toggles,
                      "frozen_frames": frozen}
    return float(np.prod(list(gn_parts.values())) ** (1 / len(gn_parts)) * 0.5 + 0.5 * min(gn_parts.values()))


def _realism(m: _Match, diag: dict) -> float:
    """GR: pixels of known world colours (as many as the target has), little noise, lit frames."""
    known = float(np.mean([(p.labels != UNKNOWN).mean() for p in m.cand]))
    ref_known = float(np.mean([(p.labels != UNKNOWN).mean() for p in m.ref.parsed]))
    noise = float(np.mean([np.median(p.residual[p.labels != UNKNOWN]) if (p.labels != UNKNOWN).any() else 99
                           for p in m.cand]))
    lit = float(np.mean([l is not None and l >= MIN_LIGHT for l in m.lights]))
    q_known = _soft(ref_known - known, 0.03, 0.05)
    q_noise = _soft(noise, 6.0, 4.0)
    gr_parts = {"known_colours": q_known, "noise": q_noise, "lit": lit}
    diag["realism"] = {"known_fraction": round(known, 4), "target_known_fraction": round(ref_known, 4),
                       "median_residual": round(noise, 2), "lit_frames": lit}
    return float(np.mean(list(gr_parts.values())))


def _edits(scene_edit: list[str], prop: str) -> bool:
    aliases = {"light": {"light"}, "temperature": {"temperature", "puddle", "ice"},
               "walls": {"walls", "wall"}, "containers": {"containers", "container"},
               "occluders": {"occluders", "occluder"}}
    return bool(aliases[prop] & set(scene_edit))
