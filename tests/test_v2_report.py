"""scripts/v2_report.py's per-arm statistics from a stage-3 metrics.jsonl (no model needed)."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "v2_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("v2_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_weight_tilt_is_the_weighted_over_the_plain_loss(report, tmp_path):
    rows = [{"step": 1, "loss": 0.9, "fm": 1.0}, {"step": 2, "loss": 1.1, "fm": 1.0},
            {"step": 3, "loss": 0.7, "fm": 1.0}, {"step": 4, "lr": 1e-4}]        # a row without losses is left out
    t = report.weight_tilt(write(tmp_path / "metrics.jsonl", rows))
    assert t["steps"] == 3 and t["below"] == 2
    assert t["mean"] == pytest.approx(-0.1)
    assert t["interval95"][0] <= t["mean"] <= t["interval95"][1]
    assert report.weight_tilt(tmp_path / "missing.jsonl") is None


def test_training_agreement_pools_the_measured_steps(report, tmp_path):
    rows = [{"step": 1, "agree_pairs": 10, "agree_hits": 9}, {"step": 2},
            {"step": 3, "agree_pairs": 10, "agree_hits": 6}]
    a = report.training_agreement(write(tmp_path / "metrics.jsonl", rows))
    assert (a["steps"], a["measured"], a["pairs"], a["hits"]) == (3, 2, 20, 15)
    assert a["rate"] == pytest.approx(0.75)
    lo, hi = a["interval95"]
    assert lo < 0.75 < hi
