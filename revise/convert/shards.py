"""Streaming tensor I/O for conversions: read safetensors headers and tensors one at a time,
write sharded safetensors with an index, so a 14B checkpoint converts in a few GiB of memory."""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import fresh_file, write_text
from ..errors import ReviseInputError

DEFAULT_SHARD_BYTES = 2 * 1024**3
_MADV_PAGEOUT = 21  # Linux >= 5.4: reclaim these pages; contents are kept (re-read or swapped in on use)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux/glibc: releasing pages is only an optimisation
    _libc = None


def release_pages(tensor: torch.Tensor) -> None:
    """Ask the kernel to reclaim the pages under ``tensor`` (best effort, never destructive).

    Memory-mapped checkpoint tensors stay resident once read; after their shard is written this
    drops them, so the resident peak stays near one shard instead of the whole checkpoint.
    """
    if _libc is None or tensor.device.type != "cpu" or tensor.numel() == 0:
        return
    start = tensor.data_ptr() // _PAGE * _PAGE
    end = tensor.data_ptr() + tensor.numel() * tensor.element_size()
    _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_PAGEOUT)


def safetensors_files(folder: Path, weights_name: str) -> list[Path]:
    """The one file ``weights_name`` or the shards its ``.index.json`` lists."""
    index = folder / f"{weights_name}.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ReviseInputError(f"{index} is not a valid safetensors index: {err}") from None
        files = [folder / f for f in dict.fromkeys(weight_map.values())]
    else:
        files = [folder / weights_name]
    for f in files:
        if not f.is_file():
            raise ReviseInputError(f"checkpoint file {f} is missing")
    return files


def read_shapes(files: Iterable[Path]) -> dict[str, tuple[int, ...]]:
    """Names and shapes from the headers alone."""
    shapes = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as sf:
                for k in sf.keys():
                    shapes[k] = tuple(sf.get_slice(k).get_shape())
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise ReviseInputError(f"cannot read safetensors file {f}: {err}") from None
    return shapes


def iter_tensors(files: Iterable[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    for f in files:
        with safe_open(str(f), framework="pt") as sf:
            for k in sf.keys():
                yield k, sf.get_tensor(k)


class ShardedWriter:
    """Collect tensors and write them as safetensors shards of at most ``max_shard_bytes``.

    Each shard is written under a fresh hidden name and renamed to its final name by :meth:`close`
    (the index last, atomically), so a reader never finds a half-written shard under a final name.

    Shards are named as diffusers and transformers expect (``name-00001-of-00003.safetensors``
    with ``name.index.json``; a single shard keeps the plain name).
    """

    def __init__(self, folder: Path, weights_name: str, max_shard_bytes: int = DEFAULT_SHARD_BYTES,
                 dtype: torch.dtype | None = None):
        self.folder, self.weights_name, self.max_bytes, self.dtype = Path(folder), weights_name, max_shard_bytes, dtype
        self.folder.mkdir(parents=True, exist_ok=True)
        self._buffer: dict[str, torch.Tensor] = {}
        self._buffer_bytes = 0
        self._shards: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        source = tensor
        if self.dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(self.dtype)
        tensor = tensor.contiguous()
        if tensor.data_ptr() != source.data_ptr():
            release_pages(source)
        size = tensor.numel() * tensor.element_size()
        if self._buffer and self._buffer_bytes + size > self.max_bytes:
            self._flush()
        self._buffer[name] = tensor
        self._buffer_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        # under a fresh hidden name until close() knows how many shards there are and names them
        path = fresh_file(self.folder, f".shard-{len(self._shards):05d}-", ".safetensors")
        save_file(self._buffer, str(path), metadata={"format": "pt"})
        for tensor in self._buffer.values():
            release_pages(tensor)
        self._shards.append((path, list(self._buffer)))
        self._buffer, self._buffer_bytes = {}, 0

    def close(self) -> list[Path]:
        if self._buffer or not self._shards:
            self._flush()
        stem, ext = self.weights_name.rsplit(".", 1)
        n = len(self._shards)
        if n == 1:
            final = [self.folder / self.weights_name]
            os.replace(self._shards[0][0], final[0])
            return final
        final, weight_map = [], {}
        for i, (tmp, names) in enumerate(self._shards):
            name = f"{stem}-{i + 1:05d}-of-{n:05d}.{ext}"
            os.replace(tmp, self.folder / name)
            final.append(self.folder / name)
            weight_map.update({k: name for k in names})
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
        write_text(self.folder / f"{self.weights_name}.index.json", json.dumps(index, indent=2) + "\n")
        return final


def check_state(expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], what: str) -> None:
    """Report missing, unexpected and mis-shaped tensors by name."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    bad = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    problems = []
    if missing:
        problems.append(f"missing {_names(missing)}")
    if extra:
        problems.append(f"unexpected {_names(extra)}")
    if bad:
        problems.append("mis-shaped " + _names([f"{k} {list(got[k])} (expected {list(expected[k])})" for k in bad]))
    if problems:
        raise ReviseInputError(f"{what}: " + "; ".join(problems))


def _names(names: list[str], limit: int = 6) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
