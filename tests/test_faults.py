"""Faults, end to end through the CLI: training killed (SIGKILL) in the middle of a checkpoint save
resumes from the last complete checkpoint and ends with the weights of an uninterrupted run; a full
disk while saving a checkpoint, writing an edit or writing scores ends with one line naming the path,
exit code 1, no partial file, and the earlier result intact.

The full disk is injected (ENOSPC from the write path, in the form each library really raises it);
where this user may mount a tmpfs, a really full one is used too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from revise.cli import EXAMPLES_DIR, main
from revise.train.config import TrainConfig
from revise.video import write_video

CLIP = sorted(EXAMPLES_DIR.glob("*.mp4"))[0]
NO_SPACE = "No space left on device"


def one_line(capsys, code: int, rc: int, *needles: str) -> str:
    """Exit code ``code`` and one error line, the last thing on stderr (above it: progress bars only)."""
    assert rc == code
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    assert "Traceback" not in err and [line for line in lines if "error" in line] == lines[-1:], err
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


# ---- training ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    items = []
    for i in range(2):
        src = np.full((5, 32, 32, 3), 60 + 40 * i, np.uint8)
        src[:, 8:16, 4:12] = (220, 40, 40)
        tgt = np.roll(src, 12, axis=2)
        write_video(root / f"s{i}.mp4", src)
        write_video(root / f"t{i}.mp4", tgt)
        items.append({"source_video_path": f"s{i}.mp4", "target_video_path": f"t{i}.mp4",
                      "instruction": f"move it right {i}"})
    (root / "train.json").write_text(json.dumps(items))
    return root / "train.json"


def train_config(data: Path, out: Path) -> Path:
    cfg = TrainConfig.from_dict(dict(model="tiny", data=str(data), out=str(out), steps=3, num_frames=5, height=32,
                                     width=32, lr=1e-3, warmup_steps=1, save_every=1, objective="sft"))
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(train_data, tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(["train", "--config", str(train_config(train_data, out))]) == 0
    return final_weights(out)


KILL_INSIDE_SAVE = textwrap.dedent("""
    import os, signal, sys, torch
    real = torch.save
    def save(obj, f, *a, **k):          # accelerate writes the optimizer with torch.save, after the model
        if "checkpoint-2" in str(f):
            with open(f, "wb") as out:
                out.write(b"half an optimizer")
            os.kill(os.getpid(), signal.SIGKILL)
        return real(obj, f, *a, **k)
    torch.save = save
    from revise.cli import main
    sys.exit(main(["train", "--config", sys.argv[1]]))
""")


def test_training_killed_inside_a_checkpoint_save_resumes_exactly(train_data, uninterrupted, tmp_path, capsys):
    out = tmp_path / "run"
    config = train_config(train_data, out)
    killed = subprocess.run([sys.executable, "-c", KILL_INSIDE_SAVE, str(config)], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".tmp-checkpoint-2", "checkpoint-1"]
    assert (checkpoints / ".tmp-checkpoint-2" / "model.safetensors").is_file(), "the kill came mid-save"

    assert main(["train", "--config", str(config)]) == 0
    assert "resumed from step 1" in capsys.readouterr().out
    resumed = final_weights(out)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed), "the same weights as never killed"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-3"], "no debris left"


def test_training_stops_cleanly_on_a_full_disk_and_resumes(train_data, uninterrupted, tmp_path, capsys, monkeypatch):
    from accelerate import Accelerator
    from safetensors import SafetensorError

    out = tmp_path / "run"
    config = train_config(train_data, out)
    real = Accelerator.save_state

    def save_state(self, output_dir, *a, **k):
        if output_dir.endswith("checkpoint-2"):     # what safetensors raises when the disk fills up
            Path(output_dir).mkdir(parents=True)
            Path(output_dir, "model.safetensors").write_bytes(b"\0" * 100)
            raise SafetensorError(f"Error while serializing: I/O error: {NO_SPACE} (os error 28)")
        return real(self, output_dir, *a, **k)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    line = one_line(capsys, 1, main(["train", "--config", str(config)]),
                    f"cannot write '{out / 'checkpoints' / 'checkpoint-2'}'", NO_SPACE,
                    "nothing was written there; resuming starts from checkpoint-1")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1"], "no partial checkpoint"
    assert not (out / "model").exists()

    monkeypatch.setattr(Accelerator, "save_state", real)      # space freed: run the same command again
    assert main(["train", "--config", str(config)]) == 0
    assert "resumed from step 1" in capsys.readouterr().out
    resumed = final_weights(out)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed), "nothing was lost"


# ---- edits and scores ----------------------------------------------------------------------------
class _FillsUp:
    """An output container whose disk fills up after ``room`` packets, as FFmpeg reports it."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()
        return False

    def add_stream(self, *a, **k):
        return self.real.add_stream(*a, **k)

    @property
    def metadata(self):                  # the container tags write_video sets (the edit's instruction, seed ...)
        return self.real.metadata

    def mux(self, packets):
        self.room -= 1
        if self.room < 0:
            raise av.error.OSError(errno.ENOSPC, NO_SPACE, self.real.name)
        self.real.mux(packets)


def edit_args(out: Path) -> list[str]:
    return ["edit", "--video", str(CLIP), "--instruction", "later", "--out", str(out), "--steps", "1",
            "--frames", "5", "--size", "32x32"]


def test_edit_on_a_full_disk(tmp_path, capsys, monkeypatch):
    out = tmp_path / "edits" / "e.mp4"
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda f, mode="r", **k: _FillsUp(real_open(f, mode, **k), 1)
                        if mode == "w" else real_open(f, mode, **k))
    one_line(capsys, 1, main(edit_args(out)), f"cannot write '{out}': {NO_SPACE}; nothing was written there")
    assert list(out.parent.iterdir()) == [], "no partial or temporary file"


def test_scores_on_a_full_disk_leave_the_old_file(tmp_path, capsys, monkeypatch):
    from revise.synth.dataset import make_dataset

    make_dataset(2, "test", 0, tmp_path, height=32, width=32, frames=5)
    out = tmp_path / "scores.json"
    out.write_text('{"earlier": "result"}')
    real_write = Path.write_text

    def write_text(self, text, *a, **k):
        if self.name.startswith(".scores.tmp"):
            real_write(self, text[: len(text) // 2], *a, **k)
            raise OSError(errno.ENOSPC, NO_SPACE)
        return real_write(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)
    one_line(capsys, 1, main(["synth", "score", "--data", str(tmp_path / "test.json"), "--videos", "target",
                              "--out", str(out)]), f"cannot write '{out}': {NO_SPACE}")
    assert out.read_text() == '{"earlier": "result"}' and not hidden_files(tmp_path)


@contextlib.contextmanager
def full_tmpfs(where: Path):
    """A 256 KiB tmpfs at ``where`` filled to the last byte; skips where mounting is not allowed."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-ENOSPC tests cover the same paths")
    try:
        with contextlib.suppress(OSError), open(where / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_really_full_disk(tmp_path, capsys):
    with full_tmpfs(tmp_path / "disk") as disk:
        out = disk / "e.mp4"
        line = one_line(capsys, 1, main(edit_args(out)), f"cannot write '{out}'", "nothing was written there")
        assert NO_SPACE in line or "Disk quota" in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
