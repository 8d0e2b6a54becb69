"""Training data: the JSON triplet list, read clip by clip, in a resumable deterministic order.

Each item: ``source_video_path``, ``target_video_path`` (or, for critic training,
``candidate_video_path`` with ``answer`` Yes/No and an optional ``dimension``), ``instruction``,
``type``; relative paths are relative to the JSON file. A sample whose video cannot be read is
reported by path and skipped; it never stops a run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ReviseInputError
from ..manifest import read_json_list
from ..video import read_video

log = logging.getLogger("revise.train")


class TripletData:
    def __init__(self, json_path: str | Path, num_frames: int, height: int, width: int):
        path = Path(json_path)
        items = read_json_list(path, "training data")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ReviseInputError(f"training data {path}, item {i}: expected a JSON object")
            missing = [k for k in ("source_video_path", "instruction") if k not in item]
            if "target_video_path" not in item and "candidate_video_path" not in item:
                missing.append("target_video_path")
            if missing:
                raise ReviseInputError(f"training data {path}, item {i}: missing {', '.join(missing)}")
            wrong = [k for k in ("source_video_path", "target_video_path", "candidate_video_path", "instruction")
                     if k in item and not (isinstance(item[k], str) and item[k].strip() and "\x00" not in item[k])]
            if wrong:
                raise ReviseInputError(f"training data {path}, item {i}: {', '.join(wrong)} must be non-empty text")
        self.items, self.root = items, path.parent
        self.shape = (num_frames, height, width)
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    def _video(self, rel: str) -> torch.Tensor:
        p = Path(rel)
        return read_video(p if p.is_absolute() else self.root / p, *self.shape)

    def load(self, index: int) -> dict[str, Any] | None:
        item = self.items[index]
        try:
            source = self._video(item["source_video_path"])
            target = self._video(item.get("target_video_path") or item["candidate_video_path"])
        except ReviseInputError as err:
            log.warning("skipping sample %d: %s", index, err)
            self.skipped.append(str(err))
            return None
        out = {"source": source, "target": target, "instruction": item["instruction"]}
        if "answer" in item:
            out["answer"] = 1.0 if str(item["answer"]).lower() == "yes" else 0.0
            out["dimension"] = item.get("dimension")
        return out


class DataCursor:
    """Walks a fresh seeded permutation of the data each epoch; its state resumes it exactly."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch, self.pos = size, seed, 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def next(self) -> int:
        if self.pos >= self.size:
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._permutation()
        self.pos += 1
        return int(self._order[self.pos - 1])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = self._permutation()
