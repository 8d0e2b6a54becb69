"""The exact RVE-Synth judge (``revise.synth.judge``) as a bench judge: items must carry the scene
fields ``revise synth make`` writes (family, source, target, ...), read back with
``SynthItem.from_dict``; the output is read at the item's own size and frame count (all its frames
when it has fewer, which the judge resamples). :class:`RenderedSynthJudge` scores the item's own
source or target as rendered instead of a file: the floor and the ceiling every method sits between."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ReviseInputError
from ...video import count_frames, read_video, to_uint8
from ..manifest import BenchItem
from .base import JudgeFailure, JudgeResult

SYNTH_FIELDS = ("family", "source", "target", "phrasing")


class SynthJudge:
    name = "synth"
    description = "exact RVE-Synth judge (revise.synth.judge: the output parsed back into world objects)"

    def check(self, items: list[BenchItem]) -> None:
        for item in items:
            missing = [f for f in SYNTH_FIELDS if f not in item.record]
            if missing:
                raise ReviseInputError(f"item '{item.id}' is not an RVE-Synth item (no {', '.join(missing)}): the "
                                       "synth judge scores manifests written by 'revise synth make' only")

    def score(self, item: BenchItem, video_path: Path | None) -> JudgeResult:
        from ...synth.item import SynthItem
        from ...synth.judge import DIMENSIONS, score_item

        try:
            synth = SynthItem.from_dict(item.record)
        except (KeyError, TypeError, ValueError) as err:
            raise JudgeFailure(f"not a readable RVE-Synth item: {err}") from None
        h, w = int(item.record.get("height", 64)), int(item.record.get("width", 64))
        result = score_item(synth, self.clip(synth, video_path, h, w))
        reason = result.get("diagnostics", {}).get("reason", "")
        return JudgeResult({d: float(result[d]) for d in DIMENSIONS}, reason)

    def clip(self, synth, video_path: Path | None, height: int, width: int) -> np.ndarray:
        """The uint8 ``[F, H, W, 3]`` clip judged for ``synth``."""
        try:
            return to_uint8(read_video(video_path, min(synth.frames, count_frames(video_path)), height, width))
        except ReviseInputError as err:
            raise JudgeFailure(str(err)) from None


class RenderedSynthJudge(SynthJudge):
    """The exact judge on each item's own ``"source"`` or ``"target"`` clip, rendered exactly (no file)."""

    def __init__(self, which: str):
        if which not in ("source", "target"):
            raise ValueError(f"which must be 'source' or 'target', not {which!r}")
        self.which = which
        self.name = f"synth-{which}"
        self.description = f"exact RVE-Synth judge on the item's own {which}, rendered"

    def clip(self, synth, video_path: Path | None, height: int, width: int) -> np.ndarray:
        return synth.source_clip(height, width) if self.which == "source" else synth.target_clip(height, width)
