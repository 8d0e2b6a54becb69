"""Reading source clips and writing results.

* :func:`read_video` turns a video file (decoded with PyAV), a folder of frames (read with
  Pillow) or a ``.npy`` clip array (uint8 ``[F, H, W, 3]``, read with numpy, never unpickled) into a
  float tensor ``[3, F, H, W]`` in ``[-1, 1]``: ``F`` evenly spaced frames over the whole clip, each
  centre-cropped to the target aspect ratio and resized.
* :func:`write_video` writes an H.264 / yuv420p mp4, or the uint8 array itself to a ``.npy`` path
  (no codec, read back bit-exact); :func:`write_image` writes a PNG. All are atomic (a temporary
  file in the destination folder, renamed into place only once it is complete).
* :func:`to_uint8` and :func:`side_by_side` convert and combine clips for those writers.

Anything wrong with a user's file is reported as :class:`~revise.errors.ReviseInputError` with a
one-sentence message that names the file; raw PyAV / Pillow / numpy exceptions do not escape.

PyAV is imported only when a video file is read or written: ``.npy`` clips and frame folders work
without it (a machine with no video codec can make, read and score RVE-Synth data as ``.npy``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tokenize
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_path
from .errors import ReviseEnvironmentError, ReviseInputError

if TYPE_CHECKING:
    import av

__all__ = [
    "ARRAY_EXTENSION",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "count_frames",
    "read_frames",
    "read_video",
    "side_by_side",
    "to_uint8",
    "write_image",
    "write_video",
]

#: Video containers :func:`read_video` accepts (lower-case suffixes).
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi")
#: Clip arrays (uint8 ``[F, H, W, 3]`` saved by numpy) that :func:`read_video` reads and
#: :func:`write_video` writes without a codec.
ARRAY_EXTENSION = ".npy"
#: Frame images :func:`read_video` picks up from a folder (lower-case suffixes).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: H.264 encoders to try, best first; ``mpeg4`` (MPEG-4 Part 2) is the last resort.
ENCODERS: tuple[str, ...] = ("libx264", "h264", "mpeg4")
#: libx264 constant-rate factor: 18 is visually near-lossless.
X264_CRF = 18
#: The largest frame (width x height) the readers decode: 8192 x 8192. A header claiming more is refused
#: before any pixel is decoded (a forged header must not make us allocate gigabytes).
MAX_FRAME_PIXELS = 8192 * 8192

_RESAMPLE = Image.Resampling.BICUBIC  # Pillow's resize antialiases (the filter widens when shrinking)
_TRANSPOSE_FOR_ROTATION = {  # display-matrix angle (counter-clockwise degrees) -> Pillow transpose
    90: Image.Transpose.ROTATE_90,
    -90: Image.Transpose.ROTATE_270,
    270: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    -180: Image.Transpose.ROTATE_180,
}


# ---- reading ----------------------------------------------------------------------------------
def read_video(path: str | os.PathLike[str], num_frames: int, height: int, width: int, *,
               skip: int | None = None) -> torch.Tensor:
    """Load ``num_frames`` frames of a clip as a float32 tensor ``[3, num_frames, height, width]``.

    ``path`` is a video file (one of :data:`VIDEO_EXTENSIONS`), a ``.npy`` clip array (uint8
    ``[n, h, w, 3]``, see :data:`ARRAY_EXTENSION`) or a folder of frame images (one of
    :data:`IMAGE_EXTENSIONS`, ordered by file name with digit runs compared as numbers, so
    ``f2.png`` comes before ``f10.png``; hidden files are ignored). The frames taken are
    ``round(linspace(0, n - 1, num_frames))`` of the clip's ``n`` frames, so the first and the last
    are always included; with ``skip``, the ``num_frames`` consecutive frames after the first
    ``skip`` (the released ReViSE script's ``--skip_num``), and a shorter clip is refused. Each
    frame is turned upright (video rotation metadata), centre-cropped to
    ``width / height`` and resized with an antialiased bicubic filter. Values are in ``[-1, 1]``.

    Only the chosen frames are kept, already at the target size: a video is decoded twice (once to
    count its frames, once to take them), a folder opens only the chosen images, an array is
    memory-mapped and only the chosen frames are read (and taken as they are when already at the
    target size, so an array written by :func:`write_video` reads back bit-exact).

    Raises:
        ReviseInputError: the path is missing, has an extension we do not read, is not a decodable
            video, has no video stream, is a folder without frames, is not a uint8 ``[n, h, w, 3]``
            ``.npy`` array, or has fewer than ``num_frames`` frames; or the requested size is not
            positive.
        ReviseEnvironmentError: a video file, and PyAV is not installed.
    """
    path = Path(path).expanduser()
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ReviseInputError(f"{name} must be a positive integer to read '{path}', got {value!r}")
    if skip is not None and (isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 0):
        raise ReviseInputError(f"skip must be a non-negative integer to read '{path}', got {skip!r}")

    def wanted(total: int) -> list[int]:
        if skip is None:
            return _even_indices(path, total, num_frames)
        if total < skip + num_frames:
            raise ReviseInputError(f"'{path}' has {total} frames: {num_frames} after the first {skip} were asked")
        return list(range(skip, skip + num_frames))

    frames = _read_frames(path, wanted, (int(width), int(height)))
    clip = np.ascontiguousarray(np.stack(frames).transpose(3, 0, 1, 2))  # [3, F, H, W] uint8
    return torch.from_numpy(clip).float().div_(127.5).sub_(1.0)


def read_frames(path: str | os.PathLike[str], indices: list[int]) -> np.ndarray:
    """Frames ``indices`` (sorted) of a clip as uint8 ``[n, h, w, 3]`` at the clip's own size (turned
    upright, not cropped or resized): for an image processor that resizes them itself.

    Raises:
        ReviseInputError: as :func:`read_video`, or when the clip has no frame ``max(indices)``.
    """
    path = Path(path).expanduser()

    def wanted(total: int) -> list[int]:
        if max(indices) >= total:
            raise ReviseInputError(f"'{path}' has {total} frames, frame {max(indices)} was asked")
        return list(indices)

    return np.stack(_read_frames(path, wanted, None))


def _read_frames(path: Path, wanted: Callable[[int], list[int]], size: tuple[int, int] | None) -> list[np.ndarray]:
    """The frames ``wanted(total)`` of a clip of ``total`` frames, fitted to ``size`` (width, height) if given."""
    if path.is_dir():
        files = _frame_files(path)
        frames = [_fit(_open_image(files[i]), size) for i in wanted(len(files))]
    elif path.suffix.lower() == ARRAY_EXTENSION:
        array = _read_array(path)
        chosen = array[wanted(len(array))]   # a copy of just these frames
        same_size = size is None or chosen.shape[1:3] == size[::-1]
        frames = list(chosen) if same_size else [_fit(Image.fromarray(frame), size) for frame in chosen]
    else:
        indices = wanted(count_frames(path))
        frames = _take_video_frames(path, indices, size)
        if len(frames) != len(indices):  # the decoder gave fewer frames the second time round
            raise ReviseInputError(f"'{path}' gave {len(frames)} of {len(indices)} frames on a second decode")
    return frames


def count_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames in a video file (by decoding it: container metadata is often wrong or
    missing), in a ``.npy`` clip array (from its header) or in a folder of frame images.

    Raises:
        ReviseInputError: as :func:`read_video`, for a path that is not a readable clip.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return len(_frame_files(path))
    if path.suffix.lower() == ARRAY_EXTENSION:
        return len(_read_array(path))
    _check_video_path(path)
    return sum(1 for _ in _decode(path))


def even_indices(total: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in ``range(total)``, first and last included (half rounds up)."""
    return np.floor(np.linspace(0, total - 1, count) + 0.5).astype(int).tolist()


def _even_indices(path: Path, total: int, count: int) -> list[int]:
    if total < count:
        raise ReviseInputError(f"'{path}' has {total} frames, {count} were asked")
    return even_indices(total, count)


def _check_video_path(path: Path) -> None:
    if not path.exists():
        raise ReviseInputError(f"video '{path}' does not exist")
    if not path.is_file():
        raise ReviseInputError(f"video '{path}' is neither a file nor a folder of frames")
    if path.suffix.lower() not in (*VIDEO_EXTENSIONS, ARRAY_EXTENSION):
        accepted = ", ".join((*VIDEO_EXTENSIONS, ARRAY_EXTENSION))
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise ReviseInputError(f"'{path}' is a single image: give a video ({accepted}) "
                                   "or a folder of frames")
        raise ReviseInputError(f"'{path}' has extension '{path.suffix}', not a video we read ({accepted})")
    if path.stat().st_size == 0:
        raise ReviseInputError(f"cannot read video '{path}': the file is empty (0 bytes)")


def _read_array(path: Path) -> np.ndarray:
    """The uint8 ``[n, h, w, 3]`` array of a ``.npy`` clip, memory-mapped (no pixel read yet).

    ``allow_pickle=False``: a file of pickled Python objects is refused, never unpickled.
    """
    _check_video_path(path)
    try:
        with np.errstate(over="ignore"):          # a forged shape overflows numpy's size count: refused, no warning
            array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError, ValueError, OverflowError, tokenize.TokenError) as err:   # a corrupt header
        if "object" in str(err).lower():          # numpy's refusals to unpickle name "object" data
            raise ReviseInputError(f"cannot read clip array '{path}': not a plain .npy array (pickled Python "
                                   "objects are never loaded)") from err
        raise ReviseInputError(f"cannot read clip array '{path}' (truncated or corrupt?): "
                               f"{_reason(err).splitlines()[0]}") from err
    if not isinstance(array, np.ndarray):       # np.load opens a zip (.npz) archive whatever its name
        array.close()
        raise ReviseInputError(f"cannot read clip array '{path}': it is an .npz archive, not a .npy array")
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3 or array.size == 0:
        raise ReviseInputError(f"'{path}' holds a {array.dtype} array of shape {list(array.shape)}, not a uint8 "
                               "[frames, height, width, 3] clip")
    _check_frame_size(path, array.shape[2], array.shape[1])
    return array


def _av():
    """PyAV, imported on first use: only video files need it."""
    try:
        import av
    except ImportError as err:
        raise ReviseEnvironmentError("PyAV is not installed: reading or writing video files needs it "
                                     "(pip install av); .npy clips and frame folders do not") from err
    return av


SMALL_FRAME = 320 * 320   # pixels: frames up to this size decode on one thread


def _decode(path: Path, frame_threads: bool = False) -> Iterator[av.VideoFrame]:
    """Yield the decoded frames of the first video stream, with PyAV errors made user errors.

    Frame threading is faster but hides decoder errors: a truncated H.264 file then just ends
    early instead of failing. So the counting pass (which every read starts with) decodes without
    it, and only the second pass over an already-checked file turns it on.
    """
    av = _av()
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")   # tags may be any bytes
    except (av.error.FFmpegError, OSError) as err:
        raise ReviseInputError(f"cannot read video '{path}': {_reason(err)}") from err
    with container:
        if not container.streams.video:
            raise ReviseInputError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise ReviseInputError(f"cannot decode video '{path}': its video stream has no codec parameters "
                                   "(truncated or corrupt?)")
        _check_frame_size(path, stream.codec_context.width, stream.codec_context.height)
        stream.thread_type = "AUTO" if frame_threads else "SLICE"
        if (stream.codec_context.width or 0) * (stream.codec_context.height or 0) <= SMALL_FRAME:
            stream.codec_context.thread_count = 1    # threads cost more than they give on small frames
        decoded = 0
        try:
            for frame in container.decode(stream):
                _check_frame_size(path, frame.width, frame.height)   # a size change mid-stream
                decoded += 1
                yield frame
        except (av.error.FFmpegError, OSError) as err:
            raise ReviseInputError(f"cannot decode video '{path}' after {decoded} frames "
                                   f"(truncated or corrupt?): {_reason(err)}") from err
    if decoded == 0:
        raise ReviseInputError(f"'{path}' has no decodable video frames")


def _check_frame_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise ReviseInputError(f"'{path}' has frames of {width}x{height}, too large: at most "
                               f"{MAX_FRAME_PIXELS:,} pixels a frame are read")


def _take_video_frames(path: Path, wanted: list[int], size: tuple[int, int] | None) -> list[np.ndarray]:
    """Decode ``path`` again, keeping only frames ``wanted`` (sorted), cropped and resized."""
    av = _av()
    frames: list[np.ndarray] = []
    targets = iter(wanted)
    target = next(targets)
    for index, frame in enumerate(_decode(path, frame_threads=True)):
        if index != target:
            continue
        try:
            image = frame.to_image()
        except (av.error.FFmpegError, ValueError) as err:
            raise ReviseInputError(f"cannot convert frame {index} of '{path}' to RGB: {_reason(err)}") from err
        turn = _TRANSPOSE_FOR_ROTATION.get(int(round(getattr(frame, "rotation", 0) or 0)))
        frames.append(_fit(image.transpose(turn) if turn is not None else image, size))
        target = next(targets, None)
        if target is None:
            break
    return frames


def _frame_files(folder: Path) -> list[Path]:
    """Frame images in ``folder``, in natural file-name order."""
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise ReviseInputError(f"folder '{folder}' has no frame images ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> tuple:
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", path.name))


def _open_image(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():   # Pillow warns of sizes that _check_frame_size refuses anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            _check_frame_size(path, *image.size)   # from the header, before any pixel is decoded
            return image.convert("RGB")  # convert() loads the pixels, so a bad file fails here
    except ReviseInputError:
        raise
    except Image.DecompressionBombError as err:
        raise ReviseInputError(f"frame image '{path}' is too large: {err}") from err
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ReviseInputError(f"cannot read frame image '{path}': {err}") from err


def _fit(image: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    """Centre-crop ``image`` to the aspect ratio of ``size`` (width, height), then resize to it
    (``size`` None: the image as it is).

    The crop is whole pixels (within half a pixel of the exact ratio), so nothing of the cut-away
    border bleeds into the result through the resize filter.
    """
    if size is None:
        return np.asarray(image, dtype=np.uint8)
    width, height = size
    src_w, src_h = image.size
    crop_w = max(1, min(src_w, round(src_h * width / height)))
    crop_h = max(1, min(src_h, round(src_w * height / width)))
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h))
    if image.size != size:
        image = image.resize(size, _RESAMPLE)
    return np.asarray(image, dtype=np.uint8)


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


# ---- converting -------------------------------------------------------------------------------
def to_uint8(video: torch.Tensor) -> np.ndarray:
    """``[3, F, H, W]`` float in ``[-1, 1]`` (values outside are clamped) -> uint8 ``[F, H, W, 3]``."""
    if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[0] != 3:
        shape = list(video.shape) if hasattr(video, "shape") else type(video).__name__
        raise ReviseInputError(f"expected a [3, F, H, W] video tensor, got {shape}")
    video = video.detach().to("cpu", torch.float32)
    pixels = video.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 3, 0).numpy())


def side_by_side(*videos: torch.Tensor | np.ndarray) -> np.ndarray:
    """Concatenate clips left to right into one uint8 ``[F, H, sum(W), 3]`` clip.

    Each clip is uint8 ``[F, H, W, 3]`` or a float ``[3, F, H, W]`` tensor in ``[-1, 1]``; all must
    have the same frame count and height.
    """
    if not videos:
        raise ReviseInputError("side_by_side needs at least one clip")
    clips = [_as_uint8_frames(v) for v in videos]
    if len({c.shape[:2] for c in clips}) != 1:
        raise ReviseInputError("side_by_side needs clips of equal frame count and height, got "
                               + ", ".join(str(list(c.shape)) for c in clips))
    return np.concatenate(clips, axis=2)


def _as_uint8_frames(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """A float ``[3, F, H, W]`` clip or a uint8 ``[F, H, W, 3]`` one -> contiguous uint8 ``[F, H, W, 3]``."""
    if isinstance(video, np.ndarray) and video.dtype != np.uint8:
        video = torch.from_numpy(video)
    if isinstance(video, torch.Tensor):
        if video.is_floating_point():
            return to_uint8(video)
        video = video.detach().cpu().numpy()
    if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4 or video.shape[3] != 3:
        desc = f"{video.dtype} {list(video.shape)}" if hasattr(video, "shape") else type(video).__name__
        raise ReviseInputError(f"expected a float [3, F, H, W] or uint8 [F, H, W, 3] clip, got {desc}")
    return np.ascontiguousarray(video)


# ---- writing ----------------------------------------------------------------------------------
@functools.cache
def video_encoder() -> str:
    """The encoder :func:`write_video` uses: the first of :data:`ENCODERS` this PyAV build has.

    The PyPI PyAV wheels ship libx264, so this is ``"libx264"`` in practice; ``"h264"`` (whatever
    H.264 encoder FFmpeg has, e.g. OpenH264) and ``"mpeg4"`` (not H.264, but plays everywhere) are
    fallbacks for PyAV builds linked against an FFmpeg without libx264.
    """
    av = _av()
    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    raise RuntimeError(f"this PyAV build has none of the video encoders {', '.join(ENCODERS)}")


def write_video(path: str | os.PathLike[str], video: torch.Tensor | np.ndarray, fps: int = 8,
                metadata: dict[str, str] | None = None) -> Path:
    """Write a clip as an H.264 (libx264, yuv420p, CRF 18) mp4, or as a ``.npy`` array, and return its path.

    ``video`` is a float ``[3, F, H, W]`` tensor in ``[-1, 1]`` (clamped) or uint8 ``[F, H, W, 3]``
    (numpy or torch). For an mp4, H and W must be even (yuv420p). A ``path`` ending in ``.npy`` gets
    the uint8 ``[F, H, W, 3]`` array itself (``np.save``: no codec, any size, ``fps`` not stored),
    which :func:`read_video` reads back bit-exact. The file is written next to ``path`` under a
    hidden temporary name and renamed onto ``path`` only once complete (for an mp4: after the
    encoder is flushed and the container closed); if anything fails the temporary file is removed
    and ``path`` is untouched. Parent folders are created. If the PyAV build lacks libx264, see
    :func:`video_encoder`. ``metadata`` becomes the mp4's container tags (``title``, ``comment`` ...;
    ``av.open(path).metadata`` reads them back); a ``.npy`` array has none.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ARRAY_EXTENSION):
        raise ReviseInputError(f"write_video writes mp4 files or {ARRAY_EXTENSION} arrays: name the output "
                               f"'*.mp4' or '*{ARRAY_EXTENSION}', not '{path}'")
    if path.is_dir():
        raise ReviseInputError(f"cannot write video '{path}': it is a folder")
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1:
        raise ReviseInputError(f"fps must be a positive integer to write '{path}', got {fps!r}")
    frames = _as_uint8_frames(video)
    count, height, width, _ = frames.shape
    if count == 0 or height == 0 or width == 0:
        raise ReviseInputError(f"cannot write an empty clip {list(frames.shape)} to '{path}'")
    if suffix == ARRAY_EXTENSION:
        with atomic_path(path, ARRAY_EXTENSION) as tmp, open(tmp, "wb") as out:
            np.save(out, frames, allow_pickle=False)
        return path
    if height % 2 or width % 2:
        raise ReviseInputError(f"cannot write {width}x{height} to '{path}': H.264 yuv420p needs even "
                               "width and height")
    av, encoder = _av(), video_encoder()
    with atomic_path(path, ".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as out:
            out.metadata.update(metadata or {})
            stream = out.add_stream(encoder, rate=int(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            _tag_bt601(stream.codec_context)
            if encoder == "libx264":
                # no macroblock-tree rate control: its float propagation makes the same frames
                # encode to different bytes from run to run (measured: 2 to 6 variants of one clip
                # in 8 runs); without it the same clip always makes the same file
                stream.options = {"crf": str(X264_CRF), "preset": "medium", "x264-params": "mbtree=0"}
            else:
                stream.bit_rate = max(2_000_000, width * height * int(fps) // 2)
            for pixels in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            out.mux(stream.encode(None))  # flush the encoder's delayed frames
    return path


def _tag_bt601(codec_context: av.video.codeccontext.VideoCodecContext) -> None:
    """Say in the stream what PyAV's RGB -> YUV conversion did (BT.601 matrix, limited range):
    untagged, players guess BT.709 for HD sizes and shift the colours slightly."""
    smpte170m, limited = 6, 1  # AVCOL_SPC/PRI/TRC_SMPTE170M, AVCOL_RANGE_MPEG
    with contextlib.suppress(AttributeError):  # not settable on older PyAV: the tags are optional
        codec_context.colorspace = codec_context.color_primaries = codec_context.color_trc = smpte170m
        codec_context.color_range = limited


def write_image(path: str | os.PathLike[str], image: np.ndarray | torch.Tensor) -> Path:
    """Write a uint8 ``[H, W, 3]`` image (numpy or torch) as a PNG, atomically; return its path."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".png":
        raise ReviseInputError(f"write_image writes PNG files: name the output '*.png', not '{path}'")
    if path.is_dir():
        raise ReviseInputError(f"cannot write image '{path}': it is a folder")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {list(image.shape)}" if hasattr(image, "shape") else type(image).__name__
        raise ReviseInputError(f"cannot write '{path}': expected a uint8 [H, W, 3] image, got {desc}")
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
    return path
