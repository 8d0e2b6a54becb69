"""Issue #23's audit of the command line, case by case: bad input is one line on stderr, exit 2 and
no output file; a machine fault one line and exit 1; a run that succeeds tells the user what the
model could not read."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from revise.cli import DEFAULT_MODEL, main
from revise.errors import ReviseInputError
from revise.models.tokenizers import instruction_words, unknown_words
from revise.pipelines import sampling_options
from revise.pipelines.edit_file import read_edit_metadata
from revise.video import write_video

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    frames = np.zeros((9, 32, 32, 3), np.uint8)
    for t in range(9):
        frames[t, 8:20, 2 + 2 * t: 12 + 2 * t] = (230, 30, 30)
    return write_video(tmp_path_factory.mktemp("src") / "source.mp4", frames, fps=8)


def edit_args(source: Path, out: Path, *extra: str, model: str = "tiny") -> list[str]:
    return ["edit", "--model", model, "--video", str(source), "--instruction", "make it night", "--out", str(out),
            "--frames", "5", "--size", "32x32", "--steps", "1", *extra]


def one_line_error(code: int, stderr: str, expected_code: int = 2, *words: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == expected_code, stderr
    assert len(lines) == 1 and lines[0].startswith("revise: error:"), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exit_:         # argparse's usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def no_model_load(monkeypatch):
    """Fail the test if the pipeline loads a model: the case must be refused before."""
    from revise.pipelines.edit import ReviseEditPipeline

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the bad input was found")
    monkeypatch.setattr(ReviseEditPipeline, "from_pretrained", refuse)


# ---- numbers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag,value,words", [
    ("--size", "100000x100000", ("at most 8192",)),
    ("--guidance", "nan", ("guidance", "finite")),
    ("--guidance", "inf", ("guidance", "finite")),
    ("--guidance", "-1", ("guidance", "0 (off) or more")),
    ("--shift", "-1", ("shift", "more than 0")),
    ("--shift", "0", ("shift", "more than 0")),
    ("--shift", "nan", ("shift", "finite")),
    ("--frames", "0", ("frames", "4n+1")),
    ("--steps", "0", ("steps", "at most 1000")),
    ("--steps", "-5", ("steps",)),
    ("--steps", "100000", ("steps", "at most 1000")),
    ("--seed", "-1", ("seed",)),
    ("--best-of", "0", ("best-of",)),
])
def test_bad_numbers_are_refused_not_replaced(flag, value, words, source, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    out = tmp_path / "out.mp4"
    args = edit_args(source, out)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    code, _, err = run_main(args, capsys)
    one_line_error(code, err, 2, *words)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_edit_too_big_for_the_memory_is_refused_before_allocating(source, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    monkeypatch.setattr(sampling_options, "available_memory", lambda device: 8 * 2**30)
    out = tmp_path / "out.mp4"
    args = edit_args(source, out, model="wan2.1-1.3b")
    args[args.index("--size") + 1] = "4096x4096"
    code, _, err = run_main(args, capsys)
    one_line_error(code, err, 2, "GiB", "8.0 GiB free", "--size")
    assert not out.exists()


def test_memory_cap_in_a_real_process(source, tmp_path):
    """Under ``ulimit -v`` the edit is refused with one line instead of a MemoryError traceback."""
    cap = 6 * 2**30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out = tmp_path / "out.mp4"
    args = edit_args(source, out, model="wan2.1-1.3b")
    args[args.index("--size") + 1] = "4096x4096"
    r = subprocess.run([sys.executable, "-m", "revise", *args], capture_output=True, text=True, timeout=600,
                       preexec_fn=limit)
    one_line_error(r.returncode, r.stderr, 2, "GiB")
    assert not out.exists()


def test_memory_estimate_lets_ordinary_edits_through():
    for model in ("tiny", DEFAULT_MODEL):
        options = sampling_options.resolve_sampling(model)
        sampling_options.check_memory(model, options, "cpu", torch.float32, copies=2)
    assert sampling_options.available_memory("cpu") > 0


def test_explicit_settings_win_then_the_folder_then_the_preset(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    cfg = json.loads((folder / "revise_config.json").read_text())
    cfg["sampling"] = {"num_inference_steps": 7, "guidance_scale": 0.5}
    (folder / "revise_config.json").write_text(json.dumps(cfg))
    o = sampling_options.resolve_sampling(folder, steps=None, shift=2.0)
    assert (o.num_inference_steps, o.guidance_scale, o.shift, o.num_frames) == (7, 0.5, 2.0, 17)
    assert sampling_options.resolve_sampling(folder, steps=3).num_inference_steps == 3
    with pytest.raises(ReviseInputError, match="steps"):
        sampling_options.resolve_sampling(folder, steps=0)


# ---- device -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("device,words", [("banana", ("unknown device 'banana'",)), ("cuda:99", ("cuda:99",)),
                                          ("meta", ("not supported",))])
def test_bad_device_is_one_line(device, words, source, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    code, _, err = run_main(edit_args(source, tmp_path / "out.mp4", "--device", device), capsys)
    one_line_error(code, err, 2, *words)


def test_cuda_without_a_gpu_is_one_line(source, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_main(edit_args(source, tmp_path / "out.mp4", "--device", "cuda"), capsys)
    one_line_error(code, err, 2, "no usable CUDA GPU", "--device cpu")


# ---- the instruction --------------------------------------------------------------------------------
def test_invalid_utf8_instruction_in_a_real_process(source, tmp_path):
    out = tmp_path / "out.mp4"
    args = [a.encode() for a in edit_args(source, out)]
    args[args.index(b"--instruction") + 1] = b"make it \xff night"
    r = subprocess.run([sys.executable.encode(), b"-m", b"revise", *args], capture_output=True, timeout=300)
    one_line_error(r.returncode, r.stderr.decode(errors="replace"), 2, "not valid UTF-8")
    assert not out.exists()


def test_a_100000_character_instruction_is_refused(source, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    args = edit_args(source, tmp_path / "out.mp4")
    args[args.index("--instruction") + 1] = "x" * 100_000
    code, _, err = run_main(args, capsys)
    one_line_error(code, err, 2, "100,000 characters", "at most 2,000")


def test_long_and_unknown_instructions_warn_and_the_mp4_records_the_edit(source, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    text = "please turn the dog into a cat " + "and move it left " * 20       # 88 tokens
    args = edit_args(source, out, "--seed", "3", model="default")
    args[args.index("--instruction") + 1] = text
    args[args.index("--size") + 1] = "64x64"
    code, stdout, err = run_main(args, capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("revise: warning:")]
    assert any("unknown to this model" in w and "'please'" in w and "'dog'" in w and "'cat'" in w for w in warnings)
    assert any("reads the first 32" in w and "tokens long" in w for w in warnings), warnings
    made = read_edit_metadata(out)
    assert made["instruction"] == text and made["seed"] == 3 and made["model"] == DEFAULT_MODEL
    assert made["num_inference_steps"] == 1 and made["num_frames"] == 5


def test_unknown_words_on_the_tokenizer_side(tiny_model):
    assert unknown_words("Please turn the dog into a cat") == ["please", "dog", "cat"]    # v2 has "turn"
    assert unknown_words("move the red circle to the left") == []
    assert unknown_words("make the ball red 🐶 让球变红") == ["🐶", "让球变红"]
    assert unknown_words("🐶 dog", tiny_model.tokenizer) == []          # a byte tokenizer reads everything
    assert instruction_words("Hi, dog!") == ["hi", ",", "dog", "!"]


# ---- model folders ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_folder(tiny_model, tmp_path_factory) -> Path:
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("models") / "model")


def _variant(folder: Path, tmp_path: Path, sub: str, pickle: bool) -> Path:
    import shutil

    copy = tmp_path / f"variant-{sub.replace('/', '-')}"
    shutil.copytree(folder, copy)
    weights = next((copy / sub).glob("*.safetensors"))
    state = load_file(weights)
    weights.unlink()
    if pickle:
        torch.save(state, copy / sub / "pytorch_model.bin")
    return copy


@pytest.mark.parametrize("sub", ["understanding/llm", "text_encoder"])
def test_pickled_weights_are_refused_by_name_never_unpickled(sub, model_folder, source, tmp_path, capsys,
                                                             monkeypatch):
    folder = _variant(model_folder, tmp_path, sub, pickle=True)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was opened"))
    code, _, err = run_main(edit_args(source, tmp_path / "out.mp4", model=str(folder)), capsys)
    line = one_line_error(code, err, 2, f"{sub}/pytorch_model.bin", "pickle", "revise convert")
    assert "weights_only" not in line


def test_a_folder_missing_its_transformer_weights_is_one_line(model_folder, source, tmp_path, capsys):
    folder = _variant(model_folder, tmp_path, "transformer", pickle=False)
    code, _, err = run_main(edit_args(source, tmp_path / "out.mp4", model=str(folder)), capsys)
    line = one_line_error(code, err, 2, "transformer/", "safetensors")
    assert ".bin" not in line


def test_info_of_a_truncated_safetensors_is_one_line(model_folder, tmp_path, capsys):
    import shutil

    folder = tmp_path / "truncated"
    shutil.copytree(model_folder, folder)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = run_main(["info", str(folder)], capsys)
    one_line_error(code, err, 2, "diffusion_pytorch_model.safetensors", "not a readable safetensors")


def test_info_defaults_to_the_embedded_model_and_default_is_its_short_name(capsys):
    assert main(["info"]) == 0
    first = capsys.readouterr().out
    assert f"folder {DEFAULT_MODEL}" in first
    assert main(["info", "default"]) == 0
    assert capsys.readouterr().out == first
    assert main(["info", "mini"]) == 0
    assert "preset (random weights)" in capsys.readouterr().out


# ---- the output path --------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["/proc/revise-out.mp4", "/proc/no/such/dir/out.mp4", "FILE/out.mp4"])
def test_an_unwritable_output_is_found_before_the_edit(where, source, tmp_path, capsys, monkeypatch):
    no_model_load(monkeypatch)
    (tmp_path / "FILE").write_text("a file, not a folder")
    out = where.replace("FILE", str(tmp_path / "FILE"))
    start = time.perf_counter()
    code, _, err = run_main(edit_args(source, Path(out)), capsys)
    one_line_error(code, err, 2, "cannot write", out)
    assert time.perf_counter() - start < 60
    assert not Path(out).exists()


def test_output_under_proc_in_a_real_process(source):
    r = subprocess.run([sys.executable, "-m", "revise", *edit_args(source, Path("/proc/x.mp4"))],
                       capture_output=True, text=True, timeout=300)
    one_line_error(r.returncode, r.stderr, 2, "/proc/x.mp4")


# ---- best-of progress -------------------------------------------------------------------------------
def test_best_of_shows_progress(source, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, err = run_main(edit_args(source, out, "--best-of", "2"), capsys)
    assert code == 0, err
    assert "candidate 2 of 2" in err and "best of 2" in err
    assert "best of 2: seed" in stdout
    assert read_edit_metadata(out)["seed"] in (0, 1)


# ---- training ---------------------------------------------------------------------------------------
def test_training_config_with_negative_steps_is_refused(tmp_path, capsys):
    data = tmp_path / "train.json"
    data.write_text("[]")
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: tiny\ndata: {data}\nout: {tmp_path / 'run'}\nsteps: -3\n")
    code, _, err = run_main(["train", "--config", str(config)], capsys)
    one_line_error(code, err, 2, "steps", "at least 1", "-3")
    assert not (tmp_path / "run").exists()
    config.write_text(f"model: tiny\ndata: {data}\nout: {tmp_path / 'run'}\nlr: .nan\n")
    code, _, err = run_main(["train", "--config", str(config)], capsys)
    one_line_error(code, err, 2, "lr", "finite")
    config.write_text(f"model: tiny\ndata: {data}\nout: {tmp_path / 'run'}\nlr: 1e-4\n")   # YAML 1.1: text
    code, _, err = run_main(["train", "--config", str(config)], capsys)
    one_line_error(code, err, 2, "lr", "YAML reads 1e-4 as text", "1.0e-04")
    # a number of the objective's own section is checked there too
    config.write_text(f"model: tiny\ndata: {data}\nout: {tmp_path / 'run'}\nsft: {{flow_shift: -1.0}}\n")
    code, _, err = run_main(["train", "--config", str(config)], capsys)
    one_line_error(code, err, 2, "sft.flow_shift", "above 0", "-1.0")
    code, _, err = run_main(["train", "--config", str(config), "--steps", "0"], capsys)
    one_line_error(code, err, 2, "steps")


def test_readme_training_example_on_a_fresh_clone(tmp_path, capsys, monkeypatch):
    """Without data the example says how to make it; the README makes the data first."""
    config = tmp_path / "cfg.yaml"
    config.write_text((ROOT / "configs" / "train_tiny_sft.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["train", "--config", str(config)], capsys)
    one_line_error(code, err, 2, "data/rve-synth/train.json", "revise synth make")
    readme = (ROOT / "README.md").read_text()
    make = readme.index("revise synth make --n 64 --split train --out data/rve-synth")
    assert make < readme.index("revise train --config configs/train_tiny_sft.yaml")


def test_synth_make_refuses_a_huge_size(tmp_path, capsys):
    code, _, err = run_main(["synth", "make", "--n", "1", "--split", "train", "--out", str(tmp_path / "s"),
                             "--size", "100000x100000"], capsys)
    one_line_error(code, err, 2, "--size")
    assert not (tmp_path / "s").exists()


# ---- bench ------------------------------------------------------------------------------------------
def test_bench_run_fails_when_every_item_failed(tmp_path, capsys):
    from bench_data import make_manifest

    manifest = make_manifest(tmp_path / "data", ["a", "b"])
    code, stdout, err = run_main(["bench", "run", "--manifest", str(manifest), "--out", str(tmp_path / "run"),
                                  "--quiet", "--editor-cmd", f"{sys.executable} -c 'raise SystemExit(3)' {{output}}"],
                                 capsys)
    one_line_error(code, err, 1, "every item failed (2 of 2)")
    assert "generated 0" in stdout


# ---- help and layout --------------------------------------------------------------------------------
def _subcommands(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _subcommands(sub, path + (name,))


def test_every_subcommand_and_argument_is_explained():
    from revise.cli import build_parser

    found = {" ".join(path) for path, _ in _subcommands(build_parser())}
    assert {"edit", "demo", "info", "train", "synth make", "bench run", "convert wan", "serve"} <= found
    for path, parser in _subcommands(build_parser()):
        assert parser.description and len(parser.description) > 40, path
        for action in parser._actions:
            if action.dest != "help" and not action.__class__.__name__.startswith("_SubParsers"):
                assert action.help, (path, action.dest)


def test_the_cli_is_a_package_of_short_functions():
    import ast

    files = sorted((ROOT / "revise" / "cli").glob("*.py")) + [ROOT / "revise" / "bench" / "cli.py"]
    assert {f.stem for f in files} >= {"edit", "demo", "info", "train", "synth", "bench", "convert", "serve", "common"}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 80, f"{file.name}:{node.name}"
