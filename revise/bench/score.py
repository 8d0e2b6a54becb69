"""Scoring a run folder: each output video of this rank's shard judged once, one record per item.

An item is skipped when its log already holds a record for it (ok, or failed unless
``retry_failed``); items without an output video are left for later and counted as missing.
Records are appended as each item finishes (``workers`` threads for remote judges), so a killed
run keeps everything finished, and a re-run does the rest. A :class:`JudgeFatal` stops scoring
with one message; a :class:`JudgeFailure` is recorded with its reason.

ViCLIP_T scorers (``judges.viclip``) go through the same loop, logged as ``viclip_t-{kind}``, and so
does ``revise synth score`` (:func:`revise.synth.evaluate.score_split`: a flat folder of clips, no
run folder or log): :func:`judge_each` is the one scoring loop.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from ..errors import ReviseInputError
from .judges.base import JudgeFailure, JudgeFatal, JudgeResult
from .manifest import BenchItem
from .ranks import log_name, rank_world, shard
from .rundir import RecordLog, RunDir

VICLIP_PREFIX = "viclip_t-"


class Judge(Protocol):
    name: str
    description: str

    def score(self, item: BenchItem, video_path: Path) -> JudgeResult: ...


class TextVideoJudge:
    """A ViCLIP_T scorer as a judge: the record holds ``ViCLIP_T`` instead of the four scores."""

    def __init__(self, scorer: Callable[[Path, str], float], text_field: str = "instruction"):
        self.scorer, self.text_field = scorer, text_field
        self.name = VICLIP_PREFIX + scorer.kind
        self.description = scorer.description + (f" (text: item field '{text_field}')"
                                                 if text_field != "instruction" else " (text: the instruction)")

    def score(self, item: BenchItem, video_path: Path) -> JudgeResult:
        text = item.instruction if self.text_field == "instruction" else item.record.get(self.text_field)
        if not isinstance(text, str) or not text.strip():
            raise JudgeFailure(f"item has no text in field '{self.text_field}'")
        try:
            value = self.scorer(video_path, text)
        except ReviseInputError as err:
            raise JudgeFailure(str(err)) from None
        return JudgeResult({"ViCLIP_T": value})


@dataclasses.dataclass
class ScoreSummary:
    judge: str
    shard: int
    scored: int = 0
    failed: int = 0
    skipped: int = 0        # a record existed
    missing: int = 0        # no output video yet
    seconds: float = 0.0
    failures: list[str] = dataclasses.field(default_factory=list)


def score_run(run: RunDir, judge: Judge, *, workers: int = 1, retry_failed: bool = False, progress: bool = True,
              env: dict[str, str] | None = None, check: Callable[[list[BenchItem]], None] | None = None) -> ScoreSummary:
    from tqdm.auto import tqdm

    rank, world = rank_world(env)
    items = run.items()
    if check is not None:
        check(items)
    mine = shard(items, rank, world)
    earlier = run.score_records(judge.name)
    log = RecordLog(run.scores / log_name(judge.name, rank, world))
    run.describe_judge(judge.name, judge.description)
    summary = ScoreSummary(judge.name, len(mine))
    todo = []
    for item in mine:
        status = earlier.get(item.id, {}).get("status")
        if status == "ok" or (status == "failed" and not retry_failed):
            summary.skipped += 1
        elif not run.video(item.id).is_file():
            summary.missing += 1
        else:
            todo.append(item)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"scoring ({judge.name})", unit="item", disable=not progress,
               position=rank, dynamic_ncols=True)
    try:
        for item, outcome in judge_each([(item, run.video(item.id)) for item in todo], judge, workers=workers):
            if isinstance(outcome, JudgeFailure):
                log.append({"id": item.id, "status": "failed", "reason": str(outcome)})
                summary.failed += 1
                summary.failures.append(f"{item.id}: {outcome}")
            else:
                log.append(outcome.record(item.id))
                summary.scored += 1
            bar.update(1)
    except JudgeFatal as err:
        raise ReviseInputError(str(err)) from None
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


def judge_each(todo: list[tuple[BenchItem, Path | None]], judge: Judge, *, workers: int = 1,
               processes: bool = False) -> Iterator[tuple[BenchItem, JudgeResult | JudgeFailure]]:
    """The one scoring loop: each ``(item, video)`` judged, yielded with its result or failure as it
    comes (in ``todo``'s order with one worker or processes). ``workers`` > 1 judges that many at once:
    in threads (remote judges, waiting on the network), or with ``processes`` in worker processes
    (a picklable judge that computes, such as the exact RVE-Synth judge). A :class:`JudgeFatal`
    stops it."""
    if workers <= 1:
        for item, video in todo:
            yield item, _judge_one((judge, item, video))
    elif processes:
        yield from zip((item for item, _ in todo), _in_processes(todo, judge, workers))
    else:
        yield from _parallel(todo, lambda pair: _judge_one((judge, *pair)), workers)


def _judge_one(job: tuple[Judge, BenchItem, Path | None]) -> JudgeResult | JudgeFailure:
    judge, item, video = job
    try:
        return judge.score(item, video)
    except JudgeFailure as err:
        return err


def _in_processes(todo: list[tuple[BenchItem, Path | None]], judge: Judge, workers: int) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver, not fork: a process that has run torch (OpenMP) can deadlock in forked children
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None)
    if ctx.get_start_method() == "forkserver":   # import the judge once in the server, not once per worker
        ctx.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        yield from pool.map(_judge_one, [(judge, item, video) for item, video in todo], chunksize=4)


def _parallel(todo: list, one: Callable[[Any], Any], workers: int) -> Iterator[tuple[BenchItem, Any]]:
    """Run ``one`` over ``todo``'s ``(item, ...)`` entries in threads, yielding ``(item, result)`` in
    this thread as results come; at most ``2 * workers`` are in flight, and a fatal error stops new
    ones from starting."""
    pending = iter(todo)
    with ThreadPoolExecutor(workers) as pool:
        running = {}
        for entry in pending:
            running[pool.submit(one, entry)] = entry
            if len(running) >= 2 * workers:
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                entry = running.pop(future)
                try:
                    outcome = future.result()
                except JudgeFatal:
                    for f in running:
                        f.cancel()
                    raise
                yield entry[0], outcome
                nxt = next(pending, None)
                if nxt is not None:
                    running[pool.submit(one, nxt)] = nxt
