"""Fuzzing the readers of untrusted files (hypothesis): the video reader, the web page's upload
probe, the training manifest and the RVE-Synth split reader.

Property: a reader either returns what it promises (a clip of the asked shape with values in
[-1, 1]; a manifest whose items have the fields the rest of the code uses) or raises
``ReviseInputError`` naming the file. No other exception, no hang, no memory blow-up on a header
that claims a huge frame.

The runs are derandomized so CI sees the same examples every time; set REVISE_FUZZ_EXAMPLES=2000
to fuzz longer with fresh random examples.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revise.errors import ReviseInputError
from revise.video import MAX_FRAME_PIXELS, read_video, write_video

LONG = int(os.environ.get("REVISE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG or 60, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SHAPE = (5, 32, 32)  # frames, height, width asked of every clip


def _encode(path: Path, fmt: str, codec: str, pix_fmt: str, frames: int = 9, w: int = 48, h: int = 32) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=8)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        for i in range(frames):
            a = np.zeros((h, w, 3), np.uint8)
            a[:, :, 0] = 20 * i
            a[4:12, 3 * i:3 * i + 8] = 255
            c.mux(s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")))
        c.mux(s.encode(None))
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def _png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds one row of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\0" + b"\x80" * 3 * min(width, 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


@functools.cache
def seed_files() -> dict[str, bytes]:
    """Valid clips in every container we read (and a .npy array), plus an audio-only mp4, as bytes (made once)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _make_seeds(Path(tmp))


@pytest.fixture
def seeds() -> dict[str, bytes]:
    return seed_files()


def _make_seeds(d: Path) -> dict[str, bytes]:
    frames = np.zeros((9, 32, 48, 3), np.uint8)
    frames[:, 8:20, 10:30] = 200
    files = {
        ".mp4": write_video(d / "a.mp4", frames),
        ".webm": _encode(d / "a.webm", "webm", "libvpx-vp9", "yuv420p"),
        ".gif": _encode(d / "a.gif", "gif", "gif", "rgb8"),
        ".avi": _encode(d / "a.avi", "avi", "mpeg4", "yuv420p"),
        ".mkv": _encode(d / "a.mkv", "matroska", "libx264", "yuv420p"),
        ".mov": _encode(d / "a.mov", "mov", "libx264", "yuv420p"),
        ".npy": write_video(d / "a.npy", frames),        # a clip array: header, then raw pixels
        "audio.mp4": _audio_only(d / "audio.mp4"),
    }
    return {k: p.read_bytes() for k, p in files.items()}


def _wrong_codec(seeds: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """Files whose extension promises a video but whose content is something else."""
    return [(".mp4", seeds["audio.mp4"]),                  # an mp4 with only an audio stream
            (".mp4", _png(32, 32)),                         # an image named .mp4
            (".webm", seeds[".mp4"]),                       # an mp4 named .webm
            (".gif", seeds[".avi"]),                        # an avi named .gif
            (".mkv", b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n"),  # a playlist pointing at a local file
            (".avi", json.dumps({"not": "a video"}).encode())]


def check_read(path: Path) -> None:
    """The property every reader call must satisfy."""
    try:
        clip = read_video(path, *SHAPE)
    except ReviseInputError as err:
        assert path.name in str(err), f"the message names the file: {err}"
        assert "\n" not in str(err), "one line"
        return
    assert tuple(clip.shape) == (3, *SHAPE)
    assert float(clip.min()) >= -1.0 and float(clip.max()) <= 1.0


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif", ".avi", ".mkv", ".mov", ".npy"])
def test_valid_seeds_read(seeds, tmp_path, ext):
    """The seeds themselves are good clips: the fuzzing starts from files that do read."""
    path = tmp_path / f"clip{ext}"
    path.write_bytes(seeds[ext])
    assert tuple(read_video(path, *SHAPE).shape) == (3, *SHAPE)


@FUZZ
@given(data=st.data())
def test_truncated_and_corrupt_videos(tmp_path, data):
    ext = data.draw(st.sampled_from([".mp4", ".webm", ".gif", ".avi", ".mkv", ".mov", ".npy"]))
    blob = bytearray(seed_files()[ext])
    cut = data.draw(st.integers(0, len(blob)), label="truncate at")
    blob = blob[:cut]
    for _ in range(data.draw(st.integers(0, 4), label="byte flips")):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(bytes(blob))
    check_read(path)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif", ".avi", ".mkv", ".mov", ".npy"])
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"empty{ext}"
    path.write_bytes(b"")
    with pytest.raises(ReviseInputError, match="empty"):
        read_video(path, *SHAPE)


def test_wrong_codec_and_disguised_files(seeds, tmp_path):
    for i, (ext, blob) in enumerate(_wrong_codec(seeds)):
        path = tmp_path / f"wrong{i}{ext}"
        path.write_bytes(blob)
        check_read(path)
    (tmp_path / "audio.mp4").write_bytes(seeds["audio.mp4"])
    with pytest.raises(ReviseInputError, match="no video stream"):
        read_video(tmp_path / "audio.mp4", *SHAPE)


def frame_sizes(max_side: int) -> st.SearchStrategy[tuple[int, int]]:
    """(width, height): either over MAX_FRAME_PIXELS, up to ``max_side`` a side, or small. (A size just
    under the limit is legal and merely slow to decode; it is not what these tests are about.)"""
    def over(w: int) -> st.SearchStrategy[tuple[int, int]]:
        return st.integers(MAX_FRAME_PIXELS // w + 1, max_side).map(lambda h: (w, h))
    huge = st.integers(MAX_FRAME_PIXELS // max_side + 1, max_side).flatmap(over)
    huge = st.tuples(huge, st.booleans()).map(lambda t: t[0][::-1] if t[1] else t[0])
    return st.one_of(huge, st.tuples(st.integers(1, 300), st.integers(1, 300)))


@FUZZ
@given(size=frame_sizes(65535))
def test_huge_dimension_gif_header(tmp_path, size):
    """A GIF's logical screen size is two 16-bit fields: claim any size up to 65535 x 65535."""
    width, height = size
    blob = bytearray(seed_files()[".gif"])
    blob[6:10] = struct.pack("<HH", width, height)
    path = tmp_path / "huge.gif"
    path.write_bytes(bytes(blob))
    if width * height > MAX_FRAME_PIXELS:
        with pytest.raises(ReviseInputError, match="huge.gif"):
            read_video(path, *SHAPE)
    else:
        check_read(path)


@FUZZ
@given(size=frame_sizes(2**31 - 1))
def test_huge_dimension_frame_images(tmp_path, size):
    """A folder of PNG frames whose headers claim a huge size is refused before any pixel is decoded."""
    width, height = size
    folder = tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    for i in range(SHAPE[0]):
        (folder / f"{i:03d}.png").write_bytes(_png(width, height))
    if width * height > MAX_FRAME_PIXELS:
        with pytest.raises(ReviseInputError, match="too large"):
            read_video(folder, *SHAPE)
    else:
        check_read(folder)


@FUZZ
@given(data=st.data())
def test_corrupt_npy_header(tmp_path, data):
    """Byte flips in the 128-byte header of a .npy clip (magic, version, dtype, order, shape)."""
    blob = bytearray(seed_files()[".npy"])
    for _ in range(data.draw(st.integers(1, 6), label="header byte flips")):
        blob[data.draw(st.integers(0, 127))] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.npy"
    path.write_bytes(bytes(blob))
    check_read(path)


@FUZZ
@given(size=frame_sizes(2**31 - 1), frames=st.integers(0, 2**20))
def test_npy_header_claiming_any_shape(tmp_path, size, frames):
    """A .npy header may claim any shape over the seed's pixels: refused when the pixels are not all
    there (a shape claiming less takes the first of them, as numpy does)."""
    width, height = size
    path = tmp_path / "claim.npy"
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False,
                                                   "shape": (frames, height, width, 3)})
        out.write(seed_files()[".npy"][128:])
    if frames * height * width * 3 > 9 * 32 * 48 * 3:
        with pytest.raises(ReviseInputError, match="claim.npy"):
            read_video(path, *SHAPE)
    else:
        check_read(path)


# ---- manifests --------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def mutate(value, data: st.DataObject, depth: int = 0):
    """``value`` (parsed JSON) with one random change somewhere in its tree: a value replaced by
    arbitrary JSON, a key or list element removed, or a key added."""
    if isinstance(value, (dict, list)) and value and depth < 6 and data.draw(st.booleans()):
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = data.draw(st.sampled_from(keys))
        op = data.draw(st.sampled_from(["descend", "delete", "add"]))
        copy = dict(value) if isinstance(value, dict) else list(value)
        if op == "descend":
            copy[key] = mutate(value[key], data, depth + 1)
        elif op == "delete":
            del copy[key]
        elif isinstance(copy, dict):
            copy[data.draw(st.text(max_size=8))] = data.draw(JSON)
        else:
            copy.insert(key, data.draw(JSON))
        return copy
    if data.draw(st.booleans()):   # a value of the same type: wrong in meaning, not in shape
        same = {bool: st.booleans(), int: st.integers(-10**6, 10**6), float: st.floats(-1e6, 1e6),
                str: st.text(max_size=12)}.get(type(value))
        if same is not None:
            return data.draw(same)
    return data.draw(JSON)


def manifest_bytes(valid: list, data: st.DataObject) -> bytes:
    """Bytes for a manifest file: a mutated valid manifest (most often), a truncated one, arbitrary
    JSON, or arbitrary bytes."""
    text = json.dumps(valid)
    kind = data.draw(st.sampled_from(["mutated", "mutated", "mutated", "truncated", "json", "bytes"]))
    if kind == "mutated":
        out = valid
        for _ in range(data.draw(st.integers(1, 3))):
            out = mutate(out, data)
        return json.dumps(out).encode()
    if kind == "truncated":
        return text.encode()[:data.draw(st.integers(0, len(text) - 1))]
    if kind == "json":
        return json.dumps(data.draw(JSON)).encode()
    return data.draw(st.binary(max_size=64))


def expect_input_error_or(call, path: Path):
    """``call()``'s result, or None when it raised ReviseInputError naming ``path`` in one line."""
    try:
        return call()
    except ReviseInputError as err:
        assert path.name in str(err) and "\n" not in str(err), str(err)
        return None


@pytest.fixture(scope="module")
def triplets(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("triplets")
    (root / "s.mp4").write_bytes(seed_files()[".mp4"])
    (root / "t.webm").write_bytes(seed_files()[".webm"])
    valid = [{"source_video_path": "s.mp4", "target_video_path": "t.webm", "instruction": "move it", "type": "spatial"},
             {"source_video_path": "s.mp4", "candidate_video_path": "s.mp4", "instruction": "x", "answer": "No"}]
    return root, valid


@FUZZ
@given(data=st.data())
def test_training_manifest(triplets, data):
    from revise.train.data import TripletData

    root, valid = triplets
    path = root / "train.json"
    path.write_bytes(manifest_bytes(valid, data))
    manifest = expect_input_error_or(lambda: TripletData(path, *SHAPE), path)
    if manifest is None:
        return
    for i in range(len(manifest)):          # every accepted item loads or is skipped by path
        sample = manifest.load(i)
        if sample is not None:
            assert tuple(sample["source"].shape) == tuple(sample["target"].shape) == (3, *SHAPE)
            assert isinstance(sample["instruction"], str) and sample["instruction"].strip()


@pytest.fixture(scope="module")
def synth_split(tmp_path_factory) -> tuple[Path, list]:
    from revise.synth.dataset import make_dataset

    root = tmp_path_factory.mktemp("synth")
    records = make_dataset(2, "test", 0, root, height=32, width=32, frames=5)
    return root, json.loads(json.dumps(records))


@FUZZ
@given(data=st.data())
def test_synth_split_reader(synth_split, data):
    """The split reader checks shape and types; meaning (a colour outside the palette, a start time of
    a million seconds) is the simulator's to judge and is not fuzzed here."""
    from revise.synth.dataset import load_items

    root, valid = synth_split
    path = root / "fuzz.json"
    path.write_bytes(manifest_bytes(valid, data))
    items = expect_input_error_or(lambda: load_items(path), path)
    if items is not None:
        assert all(type(it.frames) is int and isinstance(it.source.light, (int, float)) for it in items)


def test_manifest_errors_name_the_item_and_field(synth_split, tmp_path):
    from revise.synth.dataset import load_items
    from revise.synth.evaluate import score_split

    root, valid = synth_split
    for change, message in [(lambda d: d.update(frames="17"), "item 1, field 'frames': expected int"),
                            (lambda d: d["source"].update(light="day"), "field 'source', field 'light'"),
                            (lambda d: d["source"]["objects"][0].update(shape="star"), "must be one of"),
                            (lambda d: d.pop("target"), "missing field 'target'")]:
        records = json.loads(json.dumps(valid))
        change(records[1])
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(records))
        with pytest.raises(ReviseInputError, match=message):
            load_items(path)
    path.write_text(json.dumps(valid).replace("1.0", "NaN", 1))
    with pytest.raises(ReviseInputError, match="NaN is not a JSON number"):
        load_items(path)
    path.write_text(json.dumps([{**valid[0], "height": "64"}]))
    with pytest.raises(ReviseInputError, match="item 0: height and width must be integers"):
        score_split(path, "source", progress=False)
