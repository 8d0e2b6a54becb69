"""Training data: the JSON triplet list, read clip by clip, in a resumable deterministic order.

Each item: ``source_video_path``, ``target_video_path`` (or, for critic training,
``candidate_video_path`` with ``answer`` Yes/No and an optional ``dimension``; or a preference pair:
``candidate_video_path`` better than ``rival_video_path`` on the question ``dimension``), ``instruction``,
``type``; relative paths are relative to the JSON file. A sample whose video cannot be read is
reported by path and skipped; it never stops a run.

``preload(workers)`` decodes every clip once, in parallel, into uint8 tensors in memory (unreadable
ones are reported and skipped then); ``load`` then reads from memory, and for a training step it
gives uint8 clips (``raw``) that become floats on the device. Small data sets (RVE-Synth at 64x64)
train far faster so.
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
            wrong = [k for k in ("source_video_path", "target_video_path", "candidate_video_path", "rival_video_path",
                                 "instruction")
                     if k in item and not (isinstance(item[k], str) and item[k].strip() and "\x00" not in item[k])]
            if wrong:
                raise ReviseInputError(f"training data {path}, item {i}: {', '.join(wrong)} must be non-empty text")
        self.items, self.root = items, path.parent
        self.shape = (num_frames, height, width)
        self.skipped: list[str] = []
        self._clips: dict[str, torch.Tensor] | None = None   # path -> uint8 [3, F, H, W], once preloaded

    def __len__(self) -> int:
        return len(self.items)

    def _path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def _video(self, rel: str, raw: bool) -> torch.Tensor:
        if self._clips is not None and rel in self._clips:
            clip = self._clips[rel]
            return clip if raw else clip.float() / 127.5 - 1
        clip = read_video(self._path(rel), *self.shape)
        return to_uint8_clip(clip) if raw else clip

    @staticmethod
    def candidate_key(item: dict[str, Any]) -> str:
        return item.get("target_video_path") or item["candidate_video_path"]

    @classmethod
    def rival_key(cls, item: dict[str, Any]) -> str:
        return item.get("rival_video_path") or cls.candidate_key(item)

    def load(self, index: int, parts: tuple[str, ...] = ("source", "target"), raw: bool = False) -> dict[str, Any] | None:
        """Sample ``index`` with the clips named in ``parts`` ("source", "target": the target or
        candidate; "rival": a pair's worse candidate, else the candidate again), float [3, F, H, W] in [-1, 1], or uint8 with ``raw`` (to convert on the device)."""
        item = self.items[index]
        keys = {"source": item["source_video_path"], "target": self.candidate_key(item), "rival": self.rival_key(item)}
        out: dict[str, Any] = {"index": index, "instruction": item["instruction"]}
        try:
            for part in parts:
                out[part] = self._video(keys[part], raw)
        except ReviseInputError as err:
            log.warning("skipping sample %d: %s", index, err)
            self.skipped.append(str(err))
            return None
        if "rival_video_path" in item:           # a preference pair (the critic_pairwise objective)
            out["pair"], out["dimension"] = True, item.get("dimension")
        elif "question" in item:                   # a short-answer question (the qa objective)
            out["question"], out["answer_text"] = item["question"], str(item["answer"])
        elif "answer" in item:
            out["answer"] = 1.0 if str(item["answer"]).lower() == "yes" else 0.0
            out["dimension"] = item.get("dimension")
        return out

    @property
    def preloaded(self) -> bool:
        return self._clips is not None

    def preload(self, workers: int = 0, progress: bool = True, parts: tuple[str, ...] = ("source", "target")) -> None:
        """Decode every distinct clip of ``parts`` once into memory (uint8), with ``workers`` processes
        (clips decoded already are kept)."""
        from tqdm.auto import tqdm

        keys = {"source": lambda it: it["source_video_path"], "target": self.candidate_key, "rival": self.rival_key}
        clips: dict[str, torch.Tensor] = dict(self._clips or {})
        paths = sorted({keys[part](it) for it in self.items for part in parts} - set(clips))
        # numpy arrays, not tensors, come back from the workers: pickled through the pipe rather than
        # shared by file descriptors (tens of thousands of clips would exhaust the open-file limit)
        loader = torch.utils.data.DataLoader(_ClipFiles(self, paths), batch_size=None, num_workers=workers,
                                             collate_fn=_as_is, worker_init_fn=_one_thread)
        for rel, clip, err in tqdm(loader, total=len(paths), desc="preloading clips", unit="clip", disable=not progress):
            if err:
                log.warning("unreadable clip: %s", err)
                self.skipped.append(err)
            else:
                clips[rel] = torch.from_numpy(clip)
        self._clips = clips

    def answers(self, pairs_aside: bool = False) -> list[float] | None:
        """Each item's answer (1 Yes, 0 No) for Yes/No critic data, else None; with ``pairs_aside`` the
        preference pairs among them are left out (and may be there)."""
        items = [it for it in self.items if not (pairs_aside and "rival_video_path" in it)]
        if not all("answer" in it and "question" not in it and "rival_video_path" not in it for it in items):
            return None
        return [1.0 if str(it["answer"]).lower() == "yes" else 0.0 for it in items]


def _as_is(sample):
    return sample


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)     # many workers, each with a thread per core, would thrash


class _ClipFiles(torch.utils.data.Dataset):
    """(path, uint8 numpy clip [3, F, H, W] or None, error or "") for each path, for a parallel DataLoader."""

    def __init__(self, data: TripletData, paths: list[str]):
        self.data, self.paths = data, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        rel = self.paths[i]
        try:
            clip = read_video(self.data._path(rel), *self.data.shape)
        except ReviseInputError as err:
            return rel, None, str(err)
        return rel, to_uint8_clip(clip).numpy(), ""


def to_uint8_clip(clip: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float clip -> uint8 (exact for clips read from 8-bit frames)."""
    return ((clip + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def clips_to_device(clips: list[torch.Tensor], device: torch.device | str) -> torch.Tensor:
    """uint8 clips -> one float batch [B, 3, F, H, W] in [-1, 1] on ``device`` (a quarter of the
    bytes of float clips cross to the GPU)."""
    return torch.stack(clips).to(device, non_blocking=True).float().div_(127.5).sub_(1.0)


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
