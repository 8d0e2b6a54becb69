"""One RVE-Synth item: a source clip, an instruction, and the exact target clip, both given as a
scene and the time at which their clip starts (clips are simulated and rendered on demand)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ..vocab import CATEGORIES, SUBSETS  # noqa: F401  (re-exported: RVE-Synth's modules import them from here)
from .render import render_clip
from .world import Scene, simulate


@dataclasses.dataclass
class SynthItem:
    id: str
    subset: Literal["RAVE", "ICVG"]
    category: Literal["causal", "temporal", "spatial", "commonsense"]
    family: str                # e.g. "temporal/later"
    instruction: str
    phrasing: int              # index of the family's template that produced the instruction
    source: Scene              # initial state of the source clip
    target: Scene              # initial state of the target clip
    source_start: float = 0.0  # seconds simulated before the source clip's first frame
    target_start: float = 0.0
    edited: list[str] = dataclasses.field(default_factory=list)     # objects the edit is about
    preserve: list[str] = dataclasses.field(default_factory=list)   # objects that must not change
    scene_edit: list[str] = dataclasses.field(default_factory=list) # scene properties changed: "light", ...
    frames: int = 17
    subject: str = ""          # the source's subject (its combination decides the split); "" before v2
    kind: str = ""             # the source's scene kind (scenes.KINDS); "" before v2
    group: str = ""            # items of one group share their source clip; "" before v2

    def source_states(self) -> list[Scene]:
        return simulate(self.source, self.frames, self.source_start)

    def target_states(self) -> list[Scene]:
        return simulate(self.target, self.frames, self.target_start)

    def source_clip(self, height: int = 64, width: int = 64) -> np.ndarray:
        return render_clip(self.source_states(), height, width)

    def target_clip(self, height: int = 64, width: int = 64) -> np.ndarray:
        return render_clip(self.target_states(), height, width)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["source"], d["target"] = self.source.describe(), self.target.describe()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SynthItem":
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        d["source"], d["target"] = Scene.from_dict(d["source"]), Scene.from_dict(d["target"])
        return cls(**d)
