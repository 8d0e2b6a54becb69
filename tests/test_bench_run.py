"""`revise bench run`: an external editor command, a folder of baseline outputs, resuming,
refusing to mix two generators in one folder, and data-parallel shards simulated on the CPU."""

import json
import sys

import numpy as np
import pytest

from bench_data import clip, make_manifest
from revise.bench.manifest import load_manifest
from revise.bench.run import FolderImport, generate
from revise.bench.rundir import RunDir
from revise.cli import main
from revise.video import read_video, write_image, write_video

EDITOR = """
import shutil, sys
source, output, instruction = sys.argv[1:4]
if "fail" in instruction:
    sys.exit("boom: cannot edit " + instruction)
if "nothing" not in instruction:
    shutil.copyfile(source, output)
"""


def run_args(manifest, out, *how):
    return ["bench", "run", "--manifest", str(manifest), "--out", str(out), "--quiet", *how]


def test_editor_command_per_item_with_failures_recorded_and_resume(tmp_path, capsys):
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    manifest = make_manifest(tmp_path / "data", ["it's later (quoted $HOME)", "please fail", "write nothing", "ok"])
    cmd = f"{sys.executable} {script} {{source}} {{output}} {{instruction}}"
    out = tmp_path / "run"
    assert main(run_args(manifest, out, "--editor-cmd", cmd)) == 0
    run = RunDir(out)
    assert sorted(p.name for p in run.videos.iterdir()) == ["item-000.mp4", "item-003.mp4"]
    recs = run.generation_records()
    assert recs["item-001"]["status"] == "failed" and "exited with 1: boom: cannot edit please fail" in recs["item-001"]["reason"]
    assert "wrote nothing" in recs["item-002"]["reason"]
    assert run.method == "python3" or run.method.startswith("python")
    assert "generated 2, 0 already done, 2 failed" in capsys.readouterr().out

    # resume: finished items are skipped, failed ones kept unless --retry-failed
    assert main(run_args(manifest, out, "--editor-cmd", cmd)) == 0
    assert "generated 0, 2 already done, 0 failed, 2 failed earlier (kept" in capsys.readouterr().out
    assert main(run_args(manifest, out, "--editor-cmd", cmd, "--retry-failed")) == 0
    assert "generated 0, 2 already done, 2 failed of 4" in capsys.readouterr().out

    # another generator into the same folder is refused
    assert main(run_args(manifest, out, "--editor-cmd", cmd + " --other")) == 2
    assert "was made by" in capsys.readouterr().err
    assert main(run_args(manifest, out, "--editor-cmd", "true")) == 2
    assert "must write its result to {output}" in capsys.readouterr().err
    assert main(run_args(manifest, out, "--editor-cmd", "x {outptu} {output}")) == 2
    assert "unknown field(s) {outptu}" in capsys.readouterr().err


def test_folder_of_baseline_outputs(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data", ["a", "b", "c", "d"])
    folder = tmp_path / "insv2v"
    folder.mkdir()
    write_video(folder / "item-000.mp4", clip(5))
    frames = folder / "item-001"                       # a folder of frames is re-encoded
    for t, f in enumerate(clip(6, frames=5, size=30)):
        write_image(frames / f"f{t}.png", f)
    (folder / "item-002.mp4").write_bytes(b"not a video")
    out = tmp_path / "run"
    assert main(run_args(manifest, out, "--videos", str(folder))) == 0
    run = RunDir(out)
    assert run.method == "insv2v"
    assert (run.video("item-000")).read_bytes() == (folder / "item-000.mp4").read_bytes()
    assert read_video(run.video("item-001"), 5, 30, 30).shape == (3, 5, 30, 30)
    recs = run.generation_records()
    assert "not a readable video" in recs["item-002"]["reason"]
    assert "no item-003.mp4" in recs["item-003"]["reason"]
    assert not any(p.name.startswith(".") for p in run.videos.iterdir()), "no temporary files left"
    # another manifest into the same folder is refused
    other = make_manifest(tmp_path / "other", ["x"])
    assert main(run_args(other, out, "--videos", str(folder))) == 2
    assert "made from another manifest" in capsys.readouterr().err


def test_ranks_take_disjoint_shards_and_write_their_own_logs(tmp_path):
    manifest = make_manifest(tmp_path / "data", [f"edit {i}" for i in range(7)])
    folder = tmp_path / "outs"
    for i in range(7):
        write_video(folder / f"item-{i:03d}.mp4", clip(i))
    items = load_manifest(manifest)
    run = RunDir(tmp_path / "run")
    editor = FolderImport(folder)
    for rank in (1, 0, 2):                             # ranks may start in any order
        run.start(items, "m", editor.spec)
        s = generate(run, items, editor, progress=False, env={"RANK": str(rank), "WORLD_SIZE": "3"})
        assert s.generated == len(range(rank, 7, 3))
    logs = sorted(p.name for p in run.path.glob("generation*.jsonl"))
    assert logs == ["generation.rank0.jsonl", "generation.rank1.jsonl", "generation.rank2.jsonl"]
    per_rank = [{json.loads(l)["id"] for l in (run.path / n).read_text().splitlines()} for n in logs]
    assert set.union(*per_rank) == {it.id for it in items} and sum(map(len, per_rank)) == 7
    assert per_rank[1] == {"item-001", "item-004"}


def test_model_generation_with_the_tiny_preset(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data", ["show it one second later", "what if it were heavier"])
    bad = tmp_path / "data" / "videos" / "item-001_src.mp4"
    bad.write_bytes(b"broken")
    out = tmp_path / "run"
    assert main(run_args(manifest, out, "--model", "tiny", "--steps", "2", "--size", "32x32", "--frames", "5")) == 0
    run = RunDir(out)
    assert read_video(run.video("item-000"), 5, 32, 32).shape == (3, 5, 32, 32)
    assert "cannot read video" in run.generation_records()["item-001"]["reason"]
    assert run.meta()["generator"]["num_inference_steps"] == 2 and run.method == "ReViSE-tiny"
    assert main(run_args(manifest, out, "--model", "nosuchpreset")) == 2
    assert np.isfinite(read_video(run.video("item-000"), 5, 32, 32).numpy()).all()


def test_model_edits_are_seeded_per_item_whatever_the_batch_or_rank(tmp_path):
    """Each item's noise comes from its own seed (SEED and its position in the manifest): a batch of 3
    and three batches of 1 differ by float rounding only, ranks make the same edits as one process, and
    the seed an mp4 records remakes its edit with a plain pipeline call."""
    import torch

    from revise.bench.run import ModelEditor, generate_folder, item_seed
    from revise.pipelines.edit_file import read_edit_metadata
    from revise.video import to_uint8

    items = load_manifest(make_manifest(tmp_path / "data", ["later", "heavier", "mirror it"]))
    kw = dict(frames=5, size=(32, 32), steps=2, seed=7, device="cpu")
    one, three = ModelEditor("tiny", **kw), ModelEditor("tiny", **kw, batch_size=3)
    generate_folder(items, three, tmp_path / "b3", clip_format="npy", progress=False)
    generate_folder(items, one, tmp_path / "b1", clip_format="npy", progress=False)
    b1 = [read_video(tmp_path / "b1" / f"{it.id}.npy", 5, 32, 32) for it in items]
    for it, clip1 in zip(items, b1):
        assert float((read_video(tmp_path / "b3" / f"{it.id}.npy", 5, 32, 32) - clip1).abs().max()) <= 2 / 127.5

    run = RunDir(tmp_path / "run")
    for rank in (1, 0):
        run.start(items, "m", one.spec)
        generate(run, items, one, progress=False, env={"RANK": str(rank), "WORLD_SIZE": "2"})
    for it, clip1 in zip(items, b1):                   # the same frames through H.264 decode the same
        write_video(tmp_path / "same.mp4", to_uint8(clip1))
        assert torch.equal(read_video(run.video(it.id), 5, 32, 32), read_video(tmp_path / "same.mp4", 5, 32, 32))
    made = read_edit_metadata(run.video("item-002"))
    assert made["seed"] == item_seed(7, 2) == 7 * 1_000_003 + 2 and run.meta()["generator"]["seeding"]
    source = read_video(items[2].source_video_path, 5, 32, 32)
    again = one.pipeline()(source, "mirror it", seed=made["seed"], progress=False, **one.options.pipeline_kwargs())
    assert (to_uint8(again.video[0]) == to_uint8(b1[2])).all()


def test_synth_judge_refuses_a_manifest_without_scenes(tmp_path, capsys):
    from bench_data import make_run

    _, run = make_run(tmp_path, ["later"])
    assert main(["bench", "score", str(run), "--judge", "synth", "--quiet"]) == 2
    assert "item 'item-000' is not an RVE-Synth item" in capsys.readouterr().err
    assert main(["bench", "score", str(run), "--quiet"]) == 2
    assert "nothing to score" in capsys.readouterr().err
    assert main(["bench", "score", str(tmp_path / "nothing"), "--judge", "synth"]) == 2
    assert "is not a bench run folder" in capsys.readouterr().err


READER = """
import json, shutil, sys
item_id, source, target, output, instruction, own = sys.argv[1:7]
told_own = json.load(open(own))[item_id] == instruction
shutil.copyfile(target if told_own else source, output)
"""


def test_instruction_blind_floors_run_and_report(tmp_path, capsys):
    """An editor that draws the exact target only when told the item's own instruction: its runs told
    "Do something." and another item's instruction score like the source, the report puts the three
    side by side, and the sensitivity's interval is clear of 0."""
    data = tmp_path / "data"
    assert main(["synth", "make", "--n", "6", "--split", "test", "--seed", "0", "--out", str(data)]) == 0
    manifest = data / "test.json"
    records = json.loads(manifest.read_text())
    own = tmp_path / "own.json"
    own.write_text(json.dumps({r["id"]: r["instruction"] for r in records}))
    script = tmp_path / "reader.py"
    script.write_text(READER)
    cmd = f"{sys.executable} {script} {{id}} {{source}} {{target}} {{output}} {{instruction}} {own}"
    runs = {mode: tmp_path / mode for mode in ("own", "neutral", "other")}
    for mode, out in runs.items():
        assert main(run_args(manifest, out, "--editor-cmd", cmd, "--method", "reader", "--instructions", mode)) == 0
    assert RunDir(runs["neutral"]).method == "reader [told: neutral]"
    assert RunDir(runs["other"]).base_method == "reader" and RunDir(runs["other"]).instructions == "other"
    # the run keeps the items' own instructions, for the judge; only the editor was told otherwise
    assert [it.instruction for it in RunDir(runs["other"]).items()] == [r["instruction"] for r in records]
    # a floor is another generator: it never resumes into the own run's folder
    assert main(run_args(manifest, runs["own"], "--editor-cmd", cmd, "--method", "reader",
                         "--instructions", "neutral")) == 2
    assert "was made by" in capsys.readouterr().err

    assert main(["bench", "score", *map(str, runs.values()), "--judge", "synth", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["bench", "report", *map(str, runs.values()), "--judge", "synth", "--out", str(tmp_path / "report"),
                 "--no-gallery"]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    floors = md.split("## Instruction-blind floors")[1]
    ea = {}
    for mode in ("own", "neutral", "other"):
        line = next(l for l in floors.splitlines() if l.startswith(f"| {mode} |"))
        assert line.split("|")[2].strip() == "6"
        ea[mode] = float(line.split("|")[3].split()[0])
    assert ea["own"] > 9 and ea["neutral"] < 5 and ea["other"] < 5
    sens = floors.split("Instruction sensitivity EA(own) - EA(other): ")[1]
    mean, lo = float(sens.split()[0]), float(sens.split("[")[1].split(",")[0])
    assert mean == pytest.approx(ea["own"] - ea["other"], abs=0.01) and lo > 3
    assert "over 6 items scored in both" in sens


def test_other_instructions_need_groups(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data", ["a", "b"])
    out = tmp_path / "run"
    assert main(run_args(manifest, out, "--editor-cmd", "cp {source} {output}", "--instructions", "other")) == 2
    err = capsys.readouterr().err
    assert "groups of two or more" in err and "Traceback" not in err
    assert not out.exists(), "nothing is written for a refused run"
