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
from ..video import read_video, to_uint8
from .dataset import CLIP_FORMATS, load_items
from .judge import overall, score_item

METRICS = ("EA", "PC", "GN", "GR", "overall")


def score_split(json_path: str | Path, videos: str | Path, progress: bool = True, workers: int = 1) -> dict:
    """``{"items": [{id, subset, category, family, EA, PC, GN, GR, overall} | {id, missing}], "summary": ...}``.
    ``workers`` > 1 scores items in that many processes (same result)."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise ReviseInputError(f"RVE-Synth split {json_path} does not exist")
    items = load_items(json_path)
    records = read_json_list(json_path, "RVE-Synth split")
    for i, rec in enumerate(records):
        if not all(type(rec.get(k, 64)) is int and 0 < rec.get(k, 64) <= 4096 for k in ("height", "width")):
            raise ReviseInputError(f"RVE-Synth split {json_path}, item {i}: height and width must be "
                                   "integers from 1 to 4096")
    folder = None if str(videos) in ("source", "target") else Path(videos)
    if folder is not None and not folder.is_dir():
        raise ReviseInputError(f"video folder {folder} does not exist")
    jobs = [(item, rec, folder, str(videos)) for item, rec in zip(items, records)]
    bar = tqdm(total=len(jobs), desc="scoring", unit="item", disable=not progress)
    rows = []
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # forkserver, not fork: a process that has run torch (OpenMP) can deadlock in forked children
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else None)
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for row in pool.map(_score_one, jobs, chunksize=4):
                rows.append(row)
                bar.update(1)
    else:
        for job in jobs:
            rows.append(_score_one(job))
            bar.update(1)
    bar.close()
    return {"items": rows, "summary": summarize(rows)}


def _score_one(job) -> dict:
    item, rec, folder, videos = job
    h, w = rec.get("height", 64), rec.get("width", 64)
    base = {"id": item.id, "subset": item.subset, "category": item.category, "family": item.family}
    if folder is None:
        clip = item.source_clip(h, w) if videos == "source" else item.target_clip(h, w)
    else:
        path = next((p for p in (folder / f"{item.id}.{ext}" for ext in CLIP_FORMATS) if p.is_file()), None)
        if path is None:
            return {**base, "missing": True}
        clip = to_uint8(read_video(path, item.frames, h, w))
    scores = score_item(item, clip)
    return {**base, **{m: float(scores[m]) for m in METRICS}}


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
    from .run import bootstrap_interval

    scored = [r for r in rows if not r.get("missing")]
    return {m: bootstrap_interval([r[m] for r in scored]) for m in ("EA", "overall")}


def paired_difference(own: list[dict], other: list[dict], metric: str = "EA") -> dict:
    """Mean of ``own[metric] - other[metric]`` over the items both scored (paired by id), with a 95%
    bootstrap interval."""
    from .run import bootstrap_interval

    by_id = {r["id"]: r for r in other if not r.get("missing")}
    diffs = [r[metric] - by_id[r["id"]][metric] for r in own if not r.get("missing") and r["id"] in by_id]
    if not diffs:
        raise ReviseInputError("no item was scored under both instructions")
    return {"mean": float(np.mean(diffs)), "interval95": bootstrap_interval(diffs), "n": len(diffs)}
