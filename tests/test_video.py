"""Tests for revise.video: reading clips (files, frame folders, .npy arrays), writing mp4/npy/PNG atomically."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from revise import video as V
from revise.errors import ReviseInputError


# ---- helpers ----------------------------------------------------------------------------------
def moving_square(frames: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 [F, H, W, 3]: a smooth colour gradient with a yellow square sliding to the right."""
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    clip = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        frame = np.stack([60 + 120 * x + 0 * y, 50 + 150 * y + 0 * x, 200 - 100 * x * y], axis=-1)
        left = 4 + i * (width - 20) // max(frames - 1, 1)
        frame[height // 3:height // 3 + 12, left:left + 12] = (230, 220, 40)
        clip[i] = frame.round().astype(np.uint8)
    return clip


def flat_levels(count: int, step: int = 12) -> list[int]:
    """A distinct grey level per frame."""
    return [8 + step * i for i in range(count)]


def encode(path: Path, clip: np.ndarray, codec: str = "libx264", fps: int = 8, rotation: int | None = None) -> Path:
    """Write a clip with PyAV directly (independently of write_video)."""
    pix_fmt = "yuv420p"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width, stream.pix_fmt = clip.shape[1], clip.shape[2], pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for pixels in clip:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def write_frames(folder: Path, clip: np.ndarray, pattern: str = "frame_{:04d}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(clip):
        Image.fromarray(pixels).save(folder / pattern.format(i))
    return folder


def grey_clip(levels: list[int], height: int = 32, width: int = 32) -> np.ndarray:
    return np.stack([np.full((height, width, 3), v, np.uint8) for v in levels])


def to_levels(video: torch.Tensor) -> np.ndarray:
    """Mean grey level (0..255) of each frame of a [3, F, H, W] tensor."""
    return ((video + 1) * 127.5).mean(dim=(0, 2, 3)).numpy()


def as_tensor(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clip).permute(3, 0, 1, 2).float() / 127.5 - 1


# ---- reading ----------------------------------------------------------------------------------
def test_round_trip_mp4(tmp_path):
    clip = moving_square()
    out = V.write_video(tmp_path / "clip.mp4", as_tensor(clip), fps=8)
    assert out == tmp_path / "clip.mp4"
    back = V.read_video(out, 12, 48, 64)
    assert back.shape == (3, 12, 48, 64) and back.dtype == torch.float32
    assert back.min() >= -1 and back.max() <= 1
    assert (back - as_tensor(clip)).abs().mean() < 0.03
    assert V.count_frames(out) == 12


def test_written_mp4_is_h264_yuv420p(tmp_path):
    out = V.write_video(tmp_path / "sub" / "dir" / "clip.mp4", moving_square(), fps=8)  # uint8 numpy
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (64, 48)
        assert stream.average_rate == 8
        assert stream.codec_context.colorspace == 6  # tagged BT.601 (SMPTE 170M), as converted
        assert sum(1 for _ in container.decode(stream)) == 12
    assert V.video_encoder() == "libx264"
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4"]  # no temp file left


def test_write_video_accepts_uint8_tensor_and_clamps_floats(tmp_path):
    clip = torch.from_numpy(moving_square(4, 32, 32))
    V.write_video(tmp_path / "a.mp4", clip)
    loud = torch.full((3, 4, 32, 32), 5.0)
    loud[:, :, :, :16] = -7.0
    back = V.read_video(V.write_video(tmp_path / "b.mp4", loud), 4, 32, 32)
    assert back[:, :, :, :12].mean() < -0.95 and back[:, :, :, 20:].mean() > 0.95


def test_frame_sampling_is_evenly_spaced_folder(tmp_path):
    levels = flat_levels(20)
    folder = write_frames(tmp_path / "frames", grey_clip(levels))
    got = to_levels(V.read_video(folder, 5, 16, 16))
    wanted = [levels[i] for i in (0, 5, 10, 14, 19)]  # round(linspace(0, 19, 5)), half up
    np.testing.assert_allclose(got, wanted, atol=0.01)
    assert V.count_frames(folder) == 20


def test_frame_sampling_is_evenly_spaced_mp4(tmp_path):
    levels = flat_levels(17, step=14)
    path = encode(tmp_path / "levels.mp4", grey_clip(levels))
    got = to_levels(V.read_video(path, 4, 16, 16))
    picked = [int(np.argmin(np.abs(np.array(levels) - g))) for g in got]
    assert picked == [0, 5, 11, 16]  # round(linspace(0, 16, 4)) = 0, 5.33, 10.67, 16
    all_frames = to_levels(V.read_video(path, 17, 16, 16))
    assert np.abs(all_frames - levels).max() < 3


def test_folder_is_sorted_by_name_with_numbers_compared_as_numbers(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    levels = flat_levels(11)
    for i, v in enumerate(levels):  # unpadded names: plain sorting would put 10 before 2
        Image.fromarray(grey_clip([v])[0]).save(folder / f"f{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"not an image")
    got = to_levels(V.read_video(folder, 11, 8, 8))
    np.testing.assert_allclose(got, levels, atol=0.01)


def test_folder_mixed_image_formats(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    clip = grey_clip([40, 120, 200], 20, 30)
    Image.fromarray(clip[0]).save(folder / "0.jpg", quality=95)
    Image.fromarray(clip[1]).convert("RGBA").save(folder / "1.PNG")
    Image.fromarray(clip[2]).convert("L").save(folder / "2.bmp")
    got = to_levels(V.read_video(folder, 3, 10, 10))
    np.testing.assert_allclose(got, [40, 120, 200], atol=2)


@pytest.mark.parametrize("src_hw, out_hw", [((40, 80), (24, 24)), ((80, 40), (24, 24)), ((60, 60), (20, 40))])
def test_centre_crop(tmp_path, src_hw, out_hw):
    """Bands that the centre crop must cut away are red; the kept middle is green."""
    (sh, sw), (oh, ow) = src_hw, out_hw
    image = np.zeros((sh, sw, 3), np.uint8)
    image[..., 0] = 255                           # red everywhere ...
    if sw * oh > sh * ow:                         # wide source: keep the centre columns
        keep = sh * ow // oh
        image[:, (sw - keep) // 2:(sw + keep) // 2] = (0, 255, 0)
    else:                                         # tall source: keep the centre rows
        keep = sw * oh // ow
        image[(sh - keep) // 2:(sh + keep) // 2, :] = (0, 255, 0)
    folder = write_frames(tmp_path / "frames", image[None])
    got = V.read_video(folder, 1, oh, ow)
    assert got.shape == (3, 1, oh, ow)
    rgb = (got[:, 0] + 1) * 127.5
    assert rgb[0].max() < 1 and rgb[1].min() > 254 and rgb[2].max() < 1


def test_centre_crop_mp4_keeps_middle(tmp_path):
    clip = np.zeros((3, 48, 96, 3), np.uint8)
    clip[:, :, :24] = (250, 10, 10)
    clip[:, :, 24:72] = (10, 250, 10)
    clip[:, :, 72:] = (10, 10, 250)
    got = (V.read_video(encode(tmp_path / "wide.mp4", clip), 3, 32, 32) + 1) * 127.5
    inner = got[:, :, 2:-2, 2:-2]  # away from the chroma-subsampled border with the cut bands
    assert inner[1].min() > 200 and inner[0].max() < 60 and inner[2].max() < 60


def test_rotation_metadata_is_applied(tmp_path):
    clip = np.zeros((2, 32, 64, 3), np.uint8)
    clip[:, :, :16] = 255                         # left quarter white in the stored picture
    path = encode(tmp_path / "rotated.mp4", clip, rotation=90)
    got = (V.read_video(path, 2, 64, 32) + 1) * 127.5  # displayed upright: 32 wide, 64 tall
    # a 90-degree counter-clockwise turn takes the left columns to the bottom rows
    assert got[:, :, -14:].mean() > 240 and got[:, :, :44].mean() < 15


def test_gif_input(tmp_path):
    levels = [30, 90, 150, 210, 250]
    frames = [Image.fromarray(f) for f in grey_clip(levels, 24, 36)]
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    got = V.read_video(path, 5, 16, 24)
    assert got.shape == (3, 5, 16, 24)
    np.testing.assert_allclose(to_levels(got), levels, atol=3)


@pytest.mark.parametrize("suffix, codec", [(".webm", "libvpx"), (".mkv", "libx264"), (".mov", "libx264"),
                                           (".avi", "mpeg4")])
def test_other_containers(tmp_path, suffix, codec):
    clip = moving_square(6, 48, 64)
    path = encode(tmp_path / f"clip{suffix}", clip, codec=codec)
    got = V.read_video(path, 6, 48, 64)
    assert got.shape == (3, 6, 48, 64)
    assert (got - as_tensor(clip)).abs().mean() < 0.1


def test_downscale_is_antialiased(tmp_path):
    stripes = np.zeros((1, 64, 64, 3), np.uint8)
    stripes[:, :, ::2] = 255                      # 1-pixel stripes: an aliasing resize keeps them
    got = (V.read_video(write_frames(tmp_path / "f", stripes), 1, 16, 16) + 1) * 127.5
    assert (got - 127.5).abs().max() < 20


# ---- bad input --------------------------------------------------------------------------------
def _raises_naming(path: Path, *args, match: str | None = None) -> ReviseInputError:
    with pytest.raises(ReviseInputError, match=match) as info:
        V.read_video(path, *(args or (2, 16, 16)))
    assert str(path) in str(info.value)
    return info.value


def test_missing_path(tmp_path):
    _raises_naming(tmp_path / "nope.mp4", match="does not exist")
    _raises_naming(tmp_path / "nope", match="does not exist")


def test_folder_without_frames(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises_naming(empty, match="no frame images")
    (empty / "readme.txt").write_text("hi")
    _raises_naming(empty, match="no frame images")


def test_too_few_frames(tmp_path):
    folder = write_frames(tmp_path / "frames", grey_clip(flat_levels(9), 8, 8))
    _raises_naming(folder, 17, 8, 8, match="has 9 frames, 17 were asked")
    mp4 = encode(tmp_path / "short.mp4", grey_clip(flat_levels(3), 16, 16))
    _raises_naming(mp4, 4, 8, 8, match="has 3 frames, 4 were asked")


@pytest.mark.parametrize("name, content", [("text.mp4", b"this is not a video\n" * 50), ("zero.mp4", b""),
                                           ("noise.webm", bytes(range(256)) * 40), ("empty.gif", b"")])
def test_not_a_video(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    _raises_naming(path, match="cannot read video|no video stream|no decodable")


@pytest.mark.parametrize("faststart, fraction", [(False, 0.5), (True, 0.02), (True, 0.5), (True, 0.97)])
def test_truncated_video(tmp_path, faststart, fraction):
    """Cut anywhere, with the index at the end (unreadable) or at the front (frames missing)."""
    clip = np.random.default_rng(0).integers(0, 256, (10, 48, 64, 3), dtype=np.uint8)  # big frames
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), mode="w", container_options={"movflags": "+faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264", rate=8)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for pixels in clip:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * fraction)])
    # 4 of 10 frames: what is left would be enough, so only noticing the damage fails the read
    _raises_naming(cut, 4, 16, 16, match="cannot read video|cannot decode video")


def test_no_video_stream(tmp_path):
    path = tmp_path / "audio_only.mkv"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.int16), format="s16", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        out.mux(stream.encode(samples))
        out.mux(stream.encode(None))
    _raises_naming(path, match="no video stream")


@pytest.mark.parametrize("name", ["clip.txt", "clip.flv", "frame.png", "noext"])
def test_extension_not_accepted(tmp_path, name):
    path = tmp_path / name
    encode(tmp_path / "real.mp4", grey_clip([100, 100], 16, 16)).rename(path)  # valid content, wrong name
    _raises_naming(path, match="not a video we read|single image")


def test_corrupt_frame_in_folder(tmp_path):
    folder = write_frames(tmp_path / "frames", grey_clip(flat_levels(3), 8, 8))
    bad = folder / "frame_0002.png"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(ReviseInputError, match="cannot read frame image") as info:
        V.read_video(folder, 3, 8, 8)
    assert str(bad) in str(info.value)


def test_bad_sizes(tmp_path):
    folder = write_frames(tmp_path / "frames", grey_clip([1, 2], 8, 8))
    for args in [(0, 8, 8), (2, -1, 8), (2, 8, 2.5)]:
        _raises_naming(folder, *args, match="positive integer")


# ---- writing ----------------------------------------------------------------------------------
def test_write_video_rejects_odd_size_and_other_suffix(tmp_path):
    with pytest.raises(ReviseInputError, match="even") as info:
        V.write_video(tmp_path / "odd.mp4", moving_square(2, 31, 32))
    assert "odd.mp4" in str(info.value)
    with pytest.raises(ReviseInputError, match="mp4"):
        V.write_video(tmp_path / "clip.mkv", moving_square(2, 32, 32))
    with pytest.raises(ReviseInputError, match=r"\[3, F, H, W\]"):
        V.write_video(tmp_path / "clip.mp4", torch.zeros(4, 2, 32, 32))
    with pytest.raises(ReviseInputError, match="fps"):
        V.write_video(tmp_path / "clip.mp4", moving_square(2, 32, 32), fps=0)
    assert list(tmp_path.iterdir()) == []


class _FailingFrames:
    """Stands in for av.VideoFrame: hands out real frames, then fails on the fourth."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def from_ndarray(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 4:
            raise RuntimeError("encoder exploded")
        return self.real.from_ndarray(*args, **kwargs)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(av, "VideoFrame", _FailingFrames(av.VideoFrame))
    target = tmp_path / "out" / "clip.mp4"
    with pytest.raises(RuntimeError, match="exploded"):
        V.write_video(target, moving_square(8, 32, 32))
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous result")
    monkeypatch.setattr(av, "VideoFrame", _FailingFrames(av.VideoFrame))
    with pytest.raises(RuntimeError):
        V.write_video(target, moving_square(8, 32, 32))
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_written_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    out = V.write_video(tmp_path / "clip.mp4", moving_square(2, 32, 32))
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_mpeg4_fallback_encoder(tmp_path, monkeypatch):
    monkeypatch.setattr(V, "video_encoder", lambda: "mpeg4")
    clip = moving_square(6, 48, 64)
    out = V.write_video(tmp_path / "clip.mp4", clip)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert (V.read_video(out, 6, 48, 64) - as_tensor(clip)).abs().mean() < 0.1


def test_to_uint8_and_side_by_side(tmp_path):
    video = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5).expand(3, 2, 4, 5)
    pixels = V.to_uint8(video)
    assert pixels.shape == (2, 4, 5, 3) and pixels.dtype == np.uint8
    assert pixels[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]
    pair = V.side_by_side(video, pixels)
    assert pair.shape == (2, 4, 10, 3)
    np.testing.assert_array_equal(pair[:, :, :5], pair[:, :, 5:])
    with pytest.raises(ReviseInputError, match="equal frame count"):
        V.side_by_side(pixels, pixels[:1])


def test_write_image(tmp_path):
    image = moving_square(1, 20, 30)[0]
    out = V.write_image(tmp_path / "pics" / "cmp.png", torch.from_numpy(image))
    with Image.open(out) as saved:
        assert saved.format == "PNG"
        np.testing.assert_array_equal(np.asarray(saved), image)
    assert [p.name for p in out.parent.iterdir()] == ["cmp.png"]
    with pytest.raises(ReviseInputError, match="uint8"):
        V.write_image(tmp_path / "bad.png", image.astype(np.float32))
    with pytest.raises(ReviseInputError, match="png"):
        V.write_image(tmp_path / "cmp.jpg", image)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ReviseInputError, match="folder"):
        V.write_image(tmp_path / "dir.png", image)


# ---- .npy clip arrays ---------------------------------------------------------------------------
def test_round_trip_npy_is_bit_exact(tmp_path):
    clip = moving_square(12, 47, 63)                        # odd sizes: no codec, no yuv420p rule
    out = V.write_video(tmp_path / "sub" / "clip.npy", clip, fps=8)
    assert out == tmp_path / "sub" / "clip.npy" and [p.name for p in out.parent.iterdir()] == ["clip.npy"]
    np.testing.assert_array_equal(np.load(out, allow_pickle=False), clip)
    assert V.count_frames(out) == 12
    np.testing.assert_array_equal(V.to_uint8(V.read_video(out, 12, 47, 63)), clip)
    picked = V.to_uint8(V.read_video(out, 4, 47, 63))       # the same even sampling as other clips
    np.testing.assert_array_equal(picked, clip[V.even_indices(12, 4)])
    V.write_video(out, as_tensor(clip))                     # a float tensor, written over the old file
    np.testing.assert_array_equal(np.load(out, allow_pickle=False), clip)


def test_npy_is_fitted_like_a_frame_folder(tmp_path):
    """Another size than asked: each frame centre-cropped and resized exactly as folder frames are."""
    clip = moving_square(9, 48, 64)
    npy = V.write_video(tmp_path / "clip.npy", clip)
    folder = write_frames(tmp_path / "frames", clip)
    for size in [(16, 16), (24, 40), (64, 96)]:
        got = V.read_video(npy, 5, *size)
        assert got.shape == (3, 5, *size)
        torch.testing.assert_close(got, V.read_video(folder, 5, *size), rtol=0, atol=0)


class _Tripwire:
    """Unpickling this makes a folder: proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=True)
    return path


def test_npy_with_python_objects_is_refused_unopened(tmp_path):
    marker = tmp_path / "unpickled"
    objects = _save(tmp_path / "objects.npy", np.array([_Tripwire(marker)] * 4, dtype=object))
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps(_Tripwire(marker)))
    for path in (objects, raw):
        _raises_naming(path, match=r"not a plain .npy array \(pickled Python objects are never loaded\)")
        with pytest.raises(ReviseInputError, match="never loaded"):
            V.count_frames(path)
    assert not marker.exists()


@pytest.mark.parametrize("array, match", [
    (np.zeros((4, 8, 8), np.uint8), r"uint8 array of shape \[4, 8, 8\], not a uint8 \[frames, height, width, 3\]"),
    (np.zeros((4, 8, 8, 4), np.uint8), r"shape \[4, 8, 8, 4\]"),
    (np.zeros((4, 8, 8, 3), np.float32), "holds a float32 array"),
    (np.zeros((0, 8, 8, 3), np.uint8), r"shape \[0, 8, 8, 3\]"),
])
def test_npy_of_wrong_type_or_shape(tmp_path, array, match):
    path = _save(tmp_path / "bad.npy", array)
    _raises_naming(path, match=match)


@pytest.mark.parametrize("keep", [0, 6, 40, 127, -5])
def test_truncated_npy(tmp_path, keep):
    whole = V.write_video(tmp_path / "whole.npy", moving_square(4, 16, 16)).read_bytes()
    assert len(whole) > 128                                 # header 128 bytes, then the pixels
    cut = tmp_path / "cut.npy"
    cut.write_bytes(whole[:keep])
    _raises_naming(cut, match="cannot read clip array|empty")


def test_npy_other_failures(tmp_path):
    _raises_naming(tmp_path / "missing.npy", match="does not exist")
    short = V.write_video(tmp_path / "short.npy", moving_square(3, 16, 16))
    _raises_naming(short, 4, 16, 16, match="has 3 frames, 4 were asked")
    archive = tmp_path / "archive.npy"
    with open(archive, "wb") as out:
        np.savez(out, clip=moving_square(4, 16, 16))
    _raises_naming(archive, match="npz archive")
    huge = np.lib.format.open_memmap(tmp_path / "huge.npy", mode="w+", dtype=np.uint8, shape=(1, 9000, 9000, 3))
    del huge                                                # a sparse file: a frame over MAX_FRAME_PIXELS
    _raises_naming(tmp_path / "huge.npy", match="too large")


def test_video_module_works_without_pyav(tmp_path):
    """With PyAV missing, revise.video imports and .npy clips are written and read; a video file is
    refused with one line saying PyAV is needed."""
    mp4 = encode(tmp_path / "clip.mp4", moving_square(4, 16, 16))
    script = f"""
import sys
sys.modules["av"] = None                                    # "import av" now raises ImportError
import numpy as np
from revise import video as V
from revise.errors import ReviseEnvironmentError
clip = np.random.default_rng(0).integers(0, 256, (5, 12, 10, 3), dtype=np.uint8)
out = V.write_video({str(tmp_path / "clip.npy")!r}, clip)
assert V.count_frames(out) == 5
assert (V.to_uint8(V.read_video(out, 5, 12, 10)) == clip).all()
try:
    V.read_video({str(mp4)!r}, 4, 16, 16)
except ReviseEnvironmentError as err:
    print(err)
assert "av" not in sys.modules or sys.modules["av"] is None
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PyAV is not installed") and len(done.stdout.splitlines()) == 1
