"""What the web page accepts as a source clip, checked before any frame is decoded.

An upload is a video only if its first bytes say so (MP4/QuickTime, Matroska/WebM, GIF or AVI); its
file name is consulted for the extension alone, and only to give a clear message early. The clip is
then opened with that one demuxer forced (so FFmpeg never probes for playlists or other formats
that could reach files or URLs) and its packets are read without decoding to measure the frame
size, the duration and the frame count against the server's limits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av

from ..errors import ReviseInputError
from ..video import MAX_FRAME_PIXELS, VIDEO_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 64 * 2**20     # the file
    max_seconds: float = 60.0       # the clip's duration
    max_side: int = 4096            # frame width and height
    min_frames: int = 1             # the model's frame count: fewer cannot be edited

    def describe(self) -> str:
        return (f"{', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)}; up to {self.max_bytes / 2**20:g} MiB, "
                f"{self.max_seconds:g} s and {self.max_side} pixels a side; at least {self.min_frames} frames")


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    suffix: str          # the stored file's extension, from the content
    width: int
    height: int
    frames: int          # video packets, i.e. frames for every container accepted
    seconds: float


# first bytes -> (stored extension, the FFmpeg demuxer forced when opening)
def sniff(head: bytes) -> tuple[str, str] | None:
    """The container ``head`` (the file's first 16 bytes) starts like, or None for anything else."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return ".mp4", "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".mkv", "matroska"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif", "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi", "avi"
    return None


def check_name(name: str) -> None:
    """Refuse an upload early by the extension of the name the browser sent (never used as a path)."""
    suffix = Path(name.replace("\\", "/")).suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise ReviseInputError(f"only video files are accepted ({', '.join(VIDEO_EXTENSIONS)}), "
                               f"not '{suffix or 'a file without extension'}'")


def probe(path: Path, limits: UploadLimits, label: str = "the upload") -> ClipInfo:
    """Check the stored upload at ``path`` against ``limits``; ``label`` names it in messages (the
    server's own path is never shown to the user)."""
    size = path.stat().st_size
    if size == 0:
        raise ReviseInputError(f"{label} is empty")
    if size > limits.max_bytes:
        raise ReviseInputError(f"{label} is {size / 2**20:.1f} MiB, more than the {limits.max_bytes / 2**20:g} MiB "
                               "allowed")
    with open(path, "rb") as f:
        kind = sniff(f.read(16))
    if kind is None:
        raise ReviseInputError(f"{label} is not a video: its content is none of MP4/MOV, WebM/MKV, GIF or AVI")
    suffix, demuxer = kind
    try:
        with av.open(str(path), mode="r", format=demuxer, metadata_errors="replace") as container:
            if not container.streams.video or container.streams.video[0].codec_context is None:
                raise ReviseInputError(f"{label} has no video stream we can decode")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_size(label, width, height, limits)
            frames, first, end = 0, None, None
            max_frames = int(limits.max_seconds * 240) + 1     # 240 fps over the whole allowed duration
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                frames += 1
                if frames > max_frames:
                    raise ReviseInputError(f"{label} has more than {max_frames} frames")
                if packet.pts is not None and packet.time_base is not None:
                    start = float(packet.pts * packet.time_base)
                    stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    first = start if first is None else min(first, start)
                    end = stop if end is None else max(end, stop)
    except av.error.FFmpegError as err:
        raise ReviseInputError(f"{label} is not a readable video: {getattr(err, 'strerror', None) or err}") from None
    seconds = (end - first) if first is not None and end is not None else 0.0
    if seconds > limits.max_seconds:
        raise ReviseInputError(f"{label} lasts {seconds:.1f} s, more than the {limits.max_seconds:g} s allowed")
    if frames < limits.min_frames:
        raise ReviseInputError(f"{label} has {frames} frames; the model edits {limits.min_frames}, so it needs "
                               "at least that many")
    return ClipInfo(suffix=suffix, width=width, height=height, frames=frames, seconds=seconds)


def _check_size(label: str, width: int, height: int, limits: UploadLimits) -> None:
    if width <= 0 or height <= 0:
        raise ReviseInputError(f"{label} does not say its frame size")
    if max(width, height) > limits.max_side or width * height > MAX_FRAME_PIXELS:
        raise ReviseInputError(f"{label} is {width}x{height}, larger than the {limits.max_side} pixels a side allowed")
