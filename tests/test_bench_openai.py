"""The OpenAI judge against a loopback server speaking the chat API through the official client:
good replies, 429 then success, 500s, timeouts, malformed and repairable replies, a refused key,
an exhausted quota; the cache; and a kill in the middle of scoring."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench_data import make_run
from openai_fake import KEY, FakeOpenAI, scores_for
from revise.bench.report import load_methods, table_rows
from revise.bench.metrics import OverallFormula
from revise.bench.rundir import RunDir
from revise.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake():
    server = FakeOpenAI(slow=1.0)
    yield server
    server.close()


def score_args(run, url, *extra, key=KEY):
    return ["bench", "score", str(run), "--judge", "openai", "--base-url", url, "--api-key", key,
            "--timeout", "0.4", "--max-retries", "2", "--backoff", "0.01", "--workers", "4", "--quiet", *extra]


def records(run):
    return RunDir(run).score_records("openai-gpt-4o")


def test_every_item_ends_scored_or_failed_with_its_reason(tmp_path, fake, capsys):
    cases = ["good", "good", "rate", "error500", "slow", "malformed", "fixable", "good"]
    _, run = make_run(tmp_path, [f"[case:{c}] item {i}: show the scene one second later" for i, c in enumerate(cases)])
    assert main(score_args(run, fake.url)) == 0
    out = capsys.readouterr().out
    recs = records(run)
    assert len(recs) == len(cases)
    by_case = {c: recs[f"item-{i:03d}"] for i, c in reversed(list(enumerate(cases)))}
    for case in ("good", "rate", "fixable"):
        rec = by_case[case]
        text = next(t for c, t, _ in fake.log if f"item {cases.index(case)}:" in t)
        assert rec["status"] == "ok" and {k: rec[k] for k in ("EA", "PC", "GN", "GR")} == scores_for(text)
        assert rec["prompt_tokens"] == (85 * 8 + 400) * (2 if case == "fixable" else 1)
    assert by_case["rate"]["requests"] == 2                    # the 429, then the reply
    assert by_case["fixable"]["requests"] == 2                 # prose, then the repair turn's JSON
    assert by_case["error500"] == {**by_case["error500"], "status": "failed"}
    assert "gave up after 3 attempt(s): HTTP 500" in by_case["error500"]["reason"]
    assert "no reply within 0.4 s" in by_case["slow"]["reason"]
    assert by_case["malformed"]["status"] == "failed" and "malformed reply after 3 attempt(s): not JSON" \
        in by_case["malformed"]["reason"]
    assert fake.requests_for("[case:error500]") == 3 and fake.requests_for("[case:malformed]") == 3
    assert "scored 5, 3 failed" in out and all(fake.json_mode)

    # re-scoring costs nothing: every reply is cached, failures are kept, the table is the same
    before = len(fake.log)
    table = table_rows(load_methods([run]), "all", OverallFormula())
    assert main(score_args(run, fake.url)) == 0
    assert len(fake.log) == before and "0 requests sent" in capsys.readouterr().out
    # --retry-failed asks again for the failed items only; cached replies (the malformed ones) are replayed
    assert main(score_args(run, fake.url, "--retry-failed", "--max-retries", "0")) == 0
    assert sorted(c for c, _, _ in fake.log[before:]) == ["error500", "slow"]
    before = len(fake.log)
    assert main(score_args(run, fake.url, "--retry-failed", "--max-retries", "0", "--refresh-cache")) == 0
    assert sorted(c for c, _, _ in fake.log[before:]) == ["error500", "malformed", "malformed", "malformed", "slow"]
    assert table_rows(load_methods([run]), "all", OverallFormula()) == table
    assert table[0]["scored"] == 5 and table[0]["failed"] == 3


def test_report_counts_tokens_and_cost(tmp_path, fake, capsys):
    _, run = make_run(tmp_path, [f"[case:good] item {i}" for i in range(5)])
    RunDir(run).video("item-004").unlink()                 # an item the method did not produce
    assert main(score_args(run, fake.url, "--no-json-mode")) == 0
    assert "scored 4, 0 failed, 0 already done, 1 without video" in capsys.readouterr().out
    assert fake.json_mode == [False] * 4
    assert main(["bench", "report", str(run), "--out", str(tmp_path / "rep"), "--no-gallery"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"Judge: openai-gpt-4o: gpt-4o at {fake.url} (OpenAI-compatible chat API; 4 source + 4 output frames" in md
    assert md.split("## all")[1].splitlines()[4].endswith("| 4 | 0 | 1 |")
    prompt = 4 * (85 * 8 + 400)
    completion = sum(rec["completion_tokens"] for rec in records(run).values())
    cost = prompt / 1e6 * 2.5 + completion / 1e6 * 10.0
    assert f"| baseline | 4 | {prompt:,} | {completion:,} | 4 | 0 | ${cost:.4f} | ${cost / 4 * 1000:.2f} |" in md
    assert "$2.5 per 1M input tokens, $10 per 1M output tokens" in md
    # an output that appears after scoring is flagged, not silently left out
    shutil.copyfile(RunDir(run).video("item-000"), RunDir(run).video("item-004"))
    assert main(["bench", "report", str(run), "--out", str(tmp_path / "rep"), "--no-gallery"]) == 0
    assert "Warning: 1 outputs of baseline have no openai-gpt-4o score yet" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.parametrize("case,key,message", [
    ("good", "sk-wrong", "refused the API key (HTTP 401): Incorrect API key provided"),
    ("quota", KEY, "quota is exhausted (HTTP 429)"),
])
def test_fatal_errors_stop_scoring_with_one_line(tmp_path, fake, capsys, case, key, message):
    _, run = make_run(tmp_path, [f"[case:{case}] item {i}" for i in range(6)])
    assert main(score_args(run, fake.url, "--workers", "1", key=key)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("revise: error: ") and message in err[0]
    assert len(fake.log) == 1, "no further item is tried once the key is refused"
    assert records(run) == {}


def test_missing_key_and_unreachable_endpoint(tmp_path, capsys, monkeypatch):
    _, run = make_run(tmp_path, ["[case:good] item"])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["bench", "score", str(run), "--judge", "openai"]) == 2
    assert "no API key" in capsys.readouterr().err
    dead = "http://127.0.0.1:9/v1"                 # discard port: nothing listens
    assert main(score_args(run, dead, "--max-retries", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the judge endpoint" in err[0]


def test_kill_midway_then_rerun_gives_the_same_table_without_repeating_cached_requests(tmp_path):
    fake = FakeOpenAI()
    fake.delay = 0.15
    try:
        texts = [f"[case:good] item {i}: what happens next" for i in range(14)]
        _, run = make_run(tmp_path / "a", texts)
        _, reference = make_run(tmp_path / "b", texts)
        args = score_args(run, fake.url, "--workers", "1")
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        proc = subprocess.Popen([sys.executable, "-m", "revise", *args], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = Path(run) / "scores" / "openai-gpt-4o.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not log.is_file() or log.read_text().count("\n") < 4):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = len(records(run))
        assert 4 <= done_before < len(texts), "killed in the middle"
        with sqlite3.connect(Path(run) / "scores" / "cache.sqlite") as db:
            cached = {json.loads(r)["messages"][1]["content"][0]["text"] for (r,) in db.execute("SELECT request FROM replies")}
        first_run = len(fake.log)

        assert main(args) == 0
        resumed = [t for _, t, _ in fake.log[first_run:]]
        assert resumed and not set(resumed) & cached, "a cached reply was requested again"
        assert len(resumed) <= len(texts) - done_before, "only unfinished items were asked for"
        assert main(score_args(reference, fake.url, "--workers", "1")) == 0
        assert len(records(run)) == len(texts)
        lines = log.read_text().splitlines()
        assert len(lines) == len(texts) and len({json.loads(l)["id"] for l in lines}) == len(texts)
        ours, ref = (table_rows(load_methods([r]), g, OverallFormula()) for r in (run, reference) for g in ["all"])
        assert ours == ref
    finally:
        fake.close()
