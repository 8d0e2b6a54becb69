"""`revise synth make` and `revise synth score` end to end on a small split."""

import json

from revise.cli import main


def test_make_then_score_target_source_and_a_folder(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "make", "--n", "8", "--split", "test", "--seed", "3", "--out", str(out)]) == 0
    assert "wrote 8 test items" in capsys.readouterr().out
    records = json.loads((out / "test.json").read_text())
    assert len(records) == 8 and (out / "test_sheet.png").is_file()
    assert {r["category"] for r in records} == {"causal", "temporal", "spatial", "commonsense"}
    assert all((out / r["source_video_path"]).is_file() and (out / r["target_video_path"]).is_file() for r in records)

    assert main(["synth", "score", "--data", str(out / "test.json"), "--videos", "target",
                 "--out", str(tmp_path / "t.json")]) == 0
    target = json.loads((tmp_path / "t.json").read_text())["summary"]["all"]
    assert main(["synth", "score", "--data", str(out / "test.json"), "--videos", "source",
                 "--out", str(tmp_path / "s.json")]) == 0
    source = json.loads((tmp_path / "s.json").read_text())["summary"]["all"]
    assert target["overall"] > 9.5 and target["EA"] > source["EA"] + 2

    # a folder of generated clips named by item id: the targets' own mp4s, two of them missing
    videos = tmp_path / "videos"
    videos.mkdir()
    for r in records[2:]:
        (videos / f"{r['id']}.mp4").write_bytes((out / r["target_video_path"]).read_bytes())
    capsys.readouterr()
    assert main(["synth", "score", "--data", str(out / "test.json"), "--videos", str(videos),
                 "--out", str(tmp_path / "f.json")]) == 0
    folder = json.loads((tmp_path / "f.json").read_text())
    assert folder["summary"]["all"]["missing"] == 2
    scored = [r for r in folder["items"] if not r.get("missing")]
    assert min(r["EA"] for r in scored) > 9, "mp4 round trip of the exact target still scores at the top"
    assert "| all |" in capsys.readouterr().out


def test_bad_arguments(tmp_path, capsys):
    assert main(["synth", "make", "--n", "0", "--split", "test", "--out", str(tmp_path)]) == 2
    assert main(["synth", "score", "--data", str(tmp_path / "none.json"), "--videos", "target"]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 2 and all(l.startswith("revise: error:") for l in err)
