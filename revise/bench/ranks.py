"""Data parallelism without a process group: each process takes every WORLD_SIZE-th item.

``torchrun`` and ``accelerate launch`` both set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a
plain process is rank 0 of 1. The shard is taken over the whole manifest (before finished items
are skipped), so every rank agrees on it however far the others have got.
"""

from __future__ import annotations

import os
from typing import Sequence, TypeVar

from ..errors import ReviseInputError

T = TypeVar("T")


def rank_world(env: dict[str, str] | None = None) -> tuple[int, int]:
    env = os.environ if env is None else env
    try:
        rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ReviseInputError(f"RANK={env.get('RANK')!r} / WORLD_SIZE={env.get('WORLD_SIZE')!r} are not integers") \
            from None
    if world < 1 or not 0 <= rank < world:
        raise ReviseInputError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return rank, world


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Items ``rank, rank + world, ...``: disjoint shards that together hold every item once."""
    return list(items[rank::world])


def local_device(env: dict[str, str] | None = None) -> str:
    """``cuda:LOCAL_RANK`` where a GPU is visible, else ``cpu``."""
    import torch

    env = os.environ if env is None else env
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(env.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"


def log_name(stem: str, rank: int, world: int) -> str:
    """A per-rank log file name: ``stem.jsonl`` alone, ``stem.rank{r}.jsonl`` with several ranks."""
    return f"{stem}.jsonl" if world == 1 else f"{stem}.rank{rank}.jsonl"
