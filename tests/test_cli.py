"""The ``revise`` CLI end to end on a generated clip, and every bad-input case: one line, exit 2,
no traceback, no output file."""

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from revise.cli import main
from revise.video import write_video

ENV = dict(os.environ)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "revise", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    frames = np.zeros((21, 64, 96, 3), np.uint8)  # 21 frames, wider than tall: sampled and centre-cropped
    for t in range(21):
        frames[t] = (40 + 5 * t, 80, 120)
        frames[t, 20:44, 10 + 3 * t: 30 + 3 * t] = (230, 30, 30)
    frames += rng.integers(0, 8, frames.shape, dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("src") / "source.mp4", frames, fps=8)


def test_edit_end_to_end(source, tmp_path):
    out = tmp_path / "edited.mp4"
    r = run_cli("edit", "--model", "tiny", "--video", str(source), "--instruction", "make it night",
                "--out", str(out), "--steps", "8")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "17 frames 64x64" in r.stdout
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name in ("h264", "libx264")
        frames = list(c.decode(video=0))
    assert len(frames) == 17 and (frames[0].width, frames[0].height) == (64, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["edited.mp4"], "no temporary files left"


def test_edit_from_a_saved_model_folder(source, tmp_path, tiny_model):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "e.mp4"
    assert main(["edit", "--model", str(folder), "--video", str(source), "--instruction", "x", "--out", str(out),
                 "--steps", "2", "--frames", "5", "--size", "32x32"]) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames in (0, 5) or len(list(c.decode(video=0))) == 5


def test_info_of_preset_and_folder(tmp_path, tiny_model, capsys):
    assert main(["info", "wan2.1-1.3b"]) == 0
    text = capsys.readouterr().out
    assert "WanTransformer3DModel" in text and "LlamaForCausalLM" in text and "max_context_len 2560" in text
    line = next(l for l in text.splitlines() if l.strip().startswith("transformer "))
    assert 1_400_000_000 < int(line.split()[1].replace(",", "")) < 1_440_000_000
    folder = tiny_model.save_pretrained(tmp_path / "model")
    assert main(["info", str(folder)]) == 0
    assert "special_tokens.safetensors" in capsys.readouterr().out


def test_help_explains_each_command():
    r = run_cli("--help")
    assert r.returncode == 0 and "edit" in r.stdout and "info" in r.stdout and "demo" in r.stdout
    r = run_cli("edit", "--help")
    assert "released convention" in r.stdout and "4n+1" in r.stdout


def _bad(tmp_path: Path, source: Path, name: str) -> list[str]:
    """Arguments for each bad-input case."""
    out = str(tmp_path / "out.mp4")
    base = ["edit", "--model", "tiny", "--video", str(source), "--instruction", "make it night", "--out", out]

    def with_(**kw):
        args = list(base)
        for k, v in kw.items():
            flag = f"--{k}"
            if flag in args:
                args[args.index(flag) + 1] = v
            else:
                args += [flag, v]
        return args

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(source.read_bytes()[: len(source.read_bytes()) // 3])
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video")
    incomplete = tmp_path / "incomplete_model"
    incomplete.mkdir()
    (incomplete / "revise_config.json").write_text("{}")
    return {
        "missing video": with_(video=str(tmp_path / "nope.mp4")),
        "corrupt video": with_(video=str(corrupt)),
        "not a video": with_(video=str(junk)),
        "too few frames": with_(frames="33"),
        "empty instruction": with_(instruction="  "),
        "size not multiple of 16": with_(size="60x64"),
        "frames not 4n+1": with_(frames="16"),
        "unknown preset": with_(model="no-such-preset"),
        "model folder missing component": with_(model=str(incomplete)),
        "output not mp4": with_(out=str(tmp_path / "out.avi")),
        "malformed size": with_(size="big"),
        "fp8 on a CPU": with_(quantize="fp8", device="cpu"),
        "unknown offload": with_(offload="model"),
    }[name]


BAD_CASES = ["missing video", "corrupt video", "not a video", "too few frames", "empty instruction",
             "size not multiple of 16", "frames not 4n+1", "unknown preset", "model folder missing component",
             "output not mp4", "malformed size", "fp8 on a CPU", "unknown offload"]


def _assert_one_line_error(code: int, stderr: str, tmp_path: Path, case: str) -> None:
    assert code == 2, (case, stderr)
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, (case, stderr)
    assert lines[0].startswith("revise") and "error:" in lines[0]
    assert "Traceback" not in stderr
    assert not list(tmp_path.glob("out*")), "no output file"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file"


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2_no_output(case, source, tmp_path, capsys):
    try:
        code = main(_bad(tmp_path, source, case))
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    _assert_one_line_error(code, capsys.readouterr().err, tmp_path, case)


@pytest.mark.parametrize("case", ["corrupt video", "malformed size"])
def test_bad_input_in_a_real_process(case, source, tmp_path):
    """The same through the console entry point: nothing but the one line reaches the terminal."""
    r = run_cli(*_bad(tmp_path, source, case))
    _assert_one_line_error(r.returncode, r.stderr, tmp_path, case)


def test_edit_offloaded_by_stages_writes_the_same_edit(source, tmp_path):
    from revise.video import read_video

    args = ["edit", "--model", "tiny", "--video", str(source), "--instruction", "make it night",
            "--frames", "5", "--size", "32x32", "--steps", "1", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a.mp4")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.mp4"), "--offload", "stages"]) == 0
    assert (read_video(tmp_path / "a.mp4", 5, 32, 32) == read_video(tmp_path / "b.mp4", 5, 32, 32)).all()
    assert main([*args, "--out", str(tmp_path / "c.mp4"), "--offload", "none"]) == 0
    assert (read_video(tmp_path / "a.mp4", 5, 32, 32) == read_video(tmp_path / "c.mp4", 5, 32, 32)).all()


def test_edit_with_8_bit_encoder_weights(source, tmp_path):
    args = ["edit", "--model", "tiny", "--video", str(source), "--instruction", "make it night",
            "--frames", "5", "--size", "32x32", "--steps", "1", "--device", "cpu", "--encoder-weights", "int8"]
    assert main([*args, "--out", str(tmp_path / "a.mp4"), "--offload", "stages"]) == 0
    assert (tmp_path / "a.mp4").stat().st_size > 0
