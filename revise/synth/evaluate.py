"""Score a folder of generated clips (named ``{item id}.mp4`` or ``{item id}.npy``; the mp4 if both)
on an RVE-Synth split with the exact judge, per item and as means per subset and category.
``videos="source"`` or ``"target"`` scores the unedited source or the exact target instead: the
floor and ceiling every method sits between."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import ReviseInputError
from ..manifest import read_json_list
from ..stats import bootstrap_interval, paired_difference
from .dataset import CLIP_FORMATS, load_items, split_items
from .judge import overall

METRICS = ("EA", "PC", "GN", "GR", "overall")


def score_split(json_path: str | Path, videos: str | Path, progress: bool = True, workers: int = 1) -> dict:
    """``{"items": [{id, subset, category, family, EA, PC, GN, GR, overall} | {id, missing}], "summary": ...}``.
    ``workers`` > 1 scores items in that many processes (same result). The bench harness's scoring
    loop (:func:`revise.bench.score.judge_each`) and synth judge do the work (``revise synth score``)."""
    from ..bench.judges.base import JudgeFailure
    from ..bench.judges.synth import RenderedSynthJudge, SynthJudge
    from ..bench.score import judge_each

    json_path = Path(json_path)
    if not json_path.is_file():
        raise ReviseInputError(f"RVE-Synth split {json_path} does not exist")
    load_items(json_path)                              # a malformed item is named before any scoring
    records = read_json_list(json_path, "RVE-Synth split")
    for i, rec in enumerate(records):
        if not all(type(rec.get(k, 64)) is int and 0 < rec.get(k, 64) <= 4096 for k in ("height", "width")):
            raise ReviseInputError(f"RVE-Synth split {json_path}, item {i}: height and width must be "
                                   "integers from 1 to 4096")
    folder = None if str(videos) in ("source", "target") else Path(videos)
    if folder is not None and not folder.is_dir():
        raise ReviseInputError(f"video folder {folder} does not exist")
    items = split_items(json_path, check_files=False)
    clips = {it.id: None if folder is None else find_clip(folder, it.id) for it in items}
    todo = [(it, clips[it.id]) for it in items if folder is None or clips[it.id] is not None]
    judge = SynthJudge() if folder is not None else RenderedSynthJudge(str(videos))
    scores = {}
    with tqdm(total=len(todo), desc="scoring", unit="item", disable=not progress) as bar:
        for item, outcome in judge_each(todo, judge, workers=workers, processes=True):
            if isinstance(outcome, JudgeFailure):
                raise ReviseInputError(f"item {item.id}: {outcome}")
            scores[item.id] = outcome.scores
            bar.update(1)
    rows = [_row(it, scores.get(it.id)) for it in items]
    return {"items": rows, "summary": summarize(rows)}


def find_clip(folder: Path, item_id: str) -> Path | None:
    """``folder/{item_id}.mp4``, else its ``.npy``, else None."""
    return next((p for p in (folder / f"{item_id}.{ext}" for ext in CLIP_FORMATS) if p.is_file()), None)


def _row(item, scores: dict | None) -> dict:
    base = {"id": item.id, "subset": item.subset, "category": item.category, "family": item.record["family"]}
    if scores is None:
        return {**base, "missing": True}
    return {**base, **scores, "overall": overall(scores)}


def summarize(rows: list[dict]) -> dict:
    """Means per metric overall, per subset and per (subset, category); missing items count as 1s."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        filled = r if not r.get("missing") else {**r, **{m: 1.0 for m in METRICS[:-1]},
                                                 "overall": overall({m: 1.0 for m in METRICS[:-1]})}
        for key in ("all", r["subset"], f"{r['subset']}/{r['category']}"):
            groups[key].append(filled)
    return {k: {"n": len(v), "missing": sum(bool(r.get("missing")) for r in v),
                **{m: float(np.mean([r[m] for r in v])) for m in METRICS}} for k, v in sorted(groups.items())}


def floors_report(json_path: str | Path, own: dict, neutral: str | Path | None = None,
                  other: str | Path | None = None, workers: int = 1, progress: bool = True) -> dict:
    """The model's own-instruction scores (``own``: :func:`score_split`'s result) beside the
    instruction-blind floors (:mod:`revise.synth.floors`): ``{"rows": {"source" | "neutral" | "other" |
    "own": summary of all items}, "sensitivity": EA(own) - EA(other), paired, with its interval}``;
    ``neutral`` and ``other`` are folders generated with ``revise synth generate --instructions
    neutral`` / ``other`` (left out: not reported)."""
    runs = {"source": "source", "neutral": neutral, "other": other}
    results = {k: score_split(json_path, v, progress=progress, workers=workers) for k, v in runs.items() if v}
    results["own"] = own
    out: dict = {"rows": {k: {**r["summary"]["all"], "interval95": _intervals(r["items"])} for k, r in results.items()},
                 "items": {k: r["items"] for k, r in results.items() if k != "own"}}
    if "other" in results:
        out["sensitivity"] = paired_difference(results["own"]["items"], results["other"]["items"])
    return out


def _intervals(rows: list[dict]) -> dict:
    scored = [r for r in rows if not r.get("missing")]
    return {m: bootstrap_interval([r[m] for r in scored]) for m in ("EA", "overall")}
