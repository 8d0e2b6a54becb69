"""Frames of a clip at its own size, for judges and the gallery."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ReviseInputError
from ..video import ARRAY_EXTENSION, _av, _read_array, count_frames, read_video, to_uint8


def probe(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(frames, height, width) of a video file, a ``.npy`` clip array or a folder of frames."""
    path = Path(path)
    n = count_frames(path)                      # also checks the path is a readable clip
    if path.is_dir():
        from PIL import Image

        from ..video import _frame_files
        with Image.open(_frame_files(path)[0]) as image:
            w, h = image.size
        return n, h, w
    if path.suffix.lower() == ARRAY_EXTENSION:
        return _read_array(path).shape[:3]
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return n, int(stream.height), int(stream.width)
    except (av.error.FFmpegError, OSError, IndexError) as err:
        raise ReviseInputError(f"cannot read video '{path}': {err}") from None


def sample_frames(path: str | os.PathLike[str], count: int, max_side: int | None = None) -> np.ndarray:
    """``count`` evenly spaced frames (all of them if the clip is shorter) as uint8 [N, H, W, 3],
    at the clip's own aspect ratio, scaled down so that the longer side is at most ``max_side``."""
    n, h, w = probe(path)
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    return to_uint8(read_video(path, min(count, n), h, w))
