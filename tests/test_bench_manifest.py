"""Manifests (every bad item named by line and field), sharding by rank, the Overall formula, and
the per-item logs that make every step resumable."""

import json

import pytest

from bench_data import make_manifest
from revise.bench.manifest import load_manifest
from revise.bench.metrics import OverallFormula, check_scores
from revise.bench.ranks import log_name, rank_world, shard
from revise.bench.rundir import RecordLog, read_records
from revise.cli import main
from revise.errors import ReviseInputError


def test_jsonl_and_json_lists_load_with_absolute_paths_and_extra_fields(tmp_path):
    path = make_manifest(tmp_path, ["later", "earlier", "what if it were heavier"])
    items = load_manifest(path)
    assert [it.id for it in items] == ["item-000", "item-001", "item-002"]
    assert items[0].source_video_path == str((tmp_path / "videos" / "item-000_src.mp4").resolve())
    assert items[1].target_video_path.endswith("item-001_tgt.mp4") and items[2].record["note"] == "extra field 2"
    assert (items[0].subset, items[0].category, items[1].group) == ("RAVE", "causal", "ICVG/temporal")
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([json.loads(l) for l in path.read_text().splitlines()], indent=2))
    assert [it.to_record() for it in load_manifest(as_list)] == [it.to_record() for it in items]


def test_every_bad_item_is_reported_with_its_line_and_field(tmp_path):
    make_manifest(tmp_path, ["a"])
    good = {"id": "x1", "subset": "RAVE", "category": "causal", "source_video_path": "videos/item-000_src.mp4",
            "instruction": "later"}
    lines = [json.dumps(good),
             "",
             json.dumps({**good, "id": "x2", "subset": "rave"}),
             json.dumps({k: v for k, v in good.items() if k != "instruction"} | {"id": "x3"}),
             "{not json",
             json.dumps({**good, "id": "x1"}),
             json.dumps({**good, "id": "a/b"}),
             json.dumps({**good, "id": "x4", "source_video_path": "videos/none.mp4"}),
             json.dumps({**good, "id": "x5", "category": "physics"}),
             json.dumps({**good, "id": "x6", "instruction": "  "}),
             json.dumps([1, 2])]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReviseInputError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert "has 9 bad item(s)" in msg and "\n" not in msg
    for expected in ("line 3: field 'subset' must be one of RAVE, ICVG, got \"rave\"",
                     "line 4: field 'instruction' is missing", "line 5: not valid JSON",
                     "line 6: field 'id': 'x1' repeats the id of line 1", "line 7: field 'id' must be"):
        assert expected in msg
    assert "and 4 more" in msg                      # the rest are counted, not dropped
    lines = [lines[0], lines[7], lines[8], lines[9], lines[10]]
    path.write_text("\n".join(lines))
    with pytest.raises(ReviseInputError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert "line 2: field 'source_video_path'" in msg and "none.mp4 does not exist" in msg
    assert "line 3: field 'category'" in msg and "line 4: field 'instruction' must be a non-empty string" in msg
    assert "line 5: an item must be a JSON object, not list" in msg


def test_json_list_errors_carry_the_line_each_item_starts_on(tmp_path):
    make_manifest(tmp_path, ["a"])
    good = {"id": "x1", "subset": "ICVG", "category": "spatial", "source_video_path": "videos/item-000_src.mp4",
            "instruction": "later"}
    path = tmp_path / "m.json"
    path.write_text(json.dumps([good, {**good, "id": "x2", "category": "?"}], indent=1))
    with pytest.raises(ReviseInputError, match=r"line 9: field 'category'"):
        load_manifest(path)
    path.write_text('[{"id": 1,}]')
    with pytest.raises(ReviseInputError, match=r"not valid JSON: .* line 1, column 11"):
        load_manifest(path)


def test_cli_reports_a_bad_manifest_in_one_line(tmp_path, capsys):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a"}\n')
    assert main(["bench", "run", "--manifest", str(path), "--videos", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 1: field 'subset' is missing" in err[0]
    assert not (tmp_path / "r").exists()


def test_shards_are_disjoint_and_cover_every_item():
    items = list(range(23))
    for world in (1, 2, 3, 8):
        shards = [shard(items, rank, world) for rank in range(world)]
        assert sorted(sum(shards, [])) == items
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert rank_world({}) == (0, 1) and rank_world({"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    with pytest.raises(ReviseInputError):
        rank_world({"RANK": "4", "WORLD_SIZE": "4"})
    assert log_name("synth", 0, 1) == "synth.jsonl" and log_name("synth", 2, 4) == "synth.rank2.jsonl"


def test_overall_formula():
    scores = {"EA": 8, "PC": 4, "GN": 6, "GR": 2}
    assert OverallFormula.parse(None)(scores) == 5.0 == OverallFormula.parse("mean")(scores)
    weighted = OverallFormula.parse("EA=2, PC=1, GN=1, GR=0")
    assert weighted(scores) == (16 + 4 + 6) / 4 and "2*EA" in weighted.describe()
    for bad in ("EA=-1", "XY=1", "EA=two", "EA=0,PC=0,GN=0,GR=0"):
        with pytest.raises(ReviseInputError):
            OverallFormula.parse(bad)
    with pytest.raises(ValueError, match="'GR' must be a number from 1 to 10"):
        check_scores({"EA": 1, "PC": 2, "GN": 3, "GR": 11})
    with pytest.raises(ValueError, match="'EA'"):
        check_scores({"EA": True, "PC": 2, "GN": 3, "GR": 4})


def test_record_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "scores.jsonl"
    log = RecordLog(path)
    log.append({"id": "a", "status": "ok"})
    log.append({"id": "b", "status": "failed", "reason": "x"})
    with open(path, "ab") as f:
        f.write(b'{"id": "c", "sta')                    # a kill in the middle of a write
    assert set(read_records([path])) == {"a", "b"}
    RecordLog(path).append({"id": "b", "status": "ok"})
    recs = read_records([path, tmp_path / "absent.jsonl"])
    assert recs["b"]["status"] == "ok" and set(recs) == {"a", "b"}
    assert path.read_text().count("\n") == 3 and path.read_text().endswith("\n")
