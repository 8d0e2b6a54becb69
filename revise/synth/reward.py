"""RVE-Synth's exact judge as a training reward: an ORACLE.

Each RVE-Synth record carries its item (scenes, times, edited objects), so the judge
(:func:`revise.synth.judge.score_item`) can score any clip against the item's exact target. RWO's
``reward: judge`` weights the flow-matching loss by that score of each sample's decoded x0 estimate
instead of the critic's P(Yes): the upper bound of what a perfect critic could give. Real data has no
exact target and no judge, so this reward exists only to measure how much a better critic could buy.

The reward is a judge dimension (EA by default, edit accuracy) divided by 10: in [0.1, 1].
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np

from ..errors import ReviseInputError
from ..manifest import build
from .item import SynthItem
from .judge import DIMENSIONS, score_item

#: the record fields (beyond a training item's) that the judge needs: the item itself
ITEM_FIELDS = ("id", "subset", "category", "family", "phrasing", "source", "target")


def _score(job: tuple[dict, np.ndarray, str]) -> float:
    record, clip, dimension = job
    return float(score_item(SynthItem.from_dict(record), clip)[dimension])


class JudgeReward:
    """judge(indices, clips) -> reward [B] of each uint8 clip [F, H, W, 3] for the record at that index
    of ``records`` (a split written by ``revise synth make``). ``workers`` > 0 scores in that many
    processes (forkserver: the training process has run torch and CUDA)."""

    def __init__(self, records: Sequence[dict], dimension: str = "EA", workers: int = 0, source: str = "data"):
        if dimension not in DIMENSIONS:
            raise ReviseInputError(f"the judge reward is one of {', '.join(DIMENSIONS)}, not {dimension!r}")
        for i, rec in enumerate(records):
            missing = [k for k in ITEM_FIELDS if k not in rec]
            if missing:
                raise ReviseInputError(
                    f"{source}, item {i}: the judge reward needs RVE-Synth records (written by 'revise synth "
                    f"make'), this one lacks {', '.join(missing)}")
        if records:                          # one full check of the format (the rest are alike)
            build(SynthItem.from_dict, records[0], f"{source}, item 0")
        self.records, self.dimension, self.workers = records, dimension, workers
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, indices: Sequence[int], clips: np.ndarray) -> np.ndarray:
        jobs = [(self.records[i], clip, self.dimension) for i, clip in zip(indices, clips)]
        if self.workers > 0:
            if self._pool is None:
                methods = multiprocessing.get_all_start_methods()
                ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
            # contiguous blocks, one per worker: a group's copies of one item (adjacent rows) mostly
            # land in one process, where the judge's per-item reference cache serves all but the first
            scores = list(self._pool.map(_score, jobs, chunksize=-(-len(jobs) // self.workers)))
        else:
            scores = [_score(j) for j in jobs]
        return np.asarray(scores, np.float32) / 10.0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
