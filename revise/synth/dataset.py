"""Writing RVE-Synth datasets: source/target clip pairs and a JSON index per split.

``make_dataset(n, split, seed, out_dir)`` writes ``out_dir/videos/{id}_source.mp4`` and
``{id}_target.mp4`` for ``n`` items and ``out_dir/{split}.json`` (a list of
:meth:`SynthItem.to_dict` records plus ``source_video_path`` / ``target_video_path`` relative to
``out_dir`` and ``type`` = the category, ``height`` / ``width``). With ``clip_format="npy"`` every
clip (critic candidates too) is a ``.npy`` uint8 ``[F, H, W, 3]`` array instead of an mp4: exact
pixels, no video codec needed to write or read it (no PyAV), no decoding in training; but a 17-frame
64x64 clip takes 209 KB on disk (its mp4 about 3.5 KB).

Items come in groups of ``GROUP_SIZE`` that share one source clip (RVE-Synth v2,
:func:`revise.synth.tasks.generate_group`): group ``j`` takes the scene kind ``KIND_SCHEDULE[j % 9]``
(motion three times in nine, row twice, wall, collision, ice and tank once: each category 15-30% of
the items),
and its items are items ``GROUP_SIZE * j ...`` of the split, recorded with ``group`` (``{split}-g{j}``)
and a ``source_video_path`` shared by the group. Group ``j``'s random stream is
``default_rng([child_j, split])`` where ``child_j`` is drawn from ``default_rng(seed)``: the same
(n, split, seed) gives bit-identical JSON and videos, and item ``i`` does not depend on ``n``. Groups
are made in a pool of worker processes (2 by default), each group by one worker.

With ``critic=True`` it also writes the critic data (:mod:`revise.synth.critic_data`): each item's
candidates as ``videos/{id}_cand_{kind}.mp4`` or ``.npy`` (the target and source candidates reuse
those clips) and ``out_dir/{split}_critic.json``, one record per candidate and question: the overall
question (``dimension`` null) and one per dimension, each with its Yes/No ``answer``, in the format
``revise train`` reads for the critic objective (``candidate_video_path``, ``answer``, ``dimension``).
It also writes ``out_dir/{split}_qa.json``: short-answer questions about each item (which object the
instruction is about, day or night after the edit), answered by a few words,
for the ``qa`` objective (``question``, ``answer`` text; the candidate is the exact target).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..errors import ReviseInputError
from ..manifest import build, read_json_list
from ..video import write_image, write_video
from .item import CATEGORIES, SynthItem
from .render import contact_sheet
from .tasks import GROUP_SIZE, SPLITS, generate_group

#: Clip file formats (suffixes without the dot) :func:`make_dataset` writes; the first is the default.
CLIP_FORMATS = ("mp4", "npy")


def check_clip_format(clip_format: str) -> str:
    """``clip_format`` if it is one of :data:`CLIP_FORMATS`, else a ``ReviseInputError``."""
    if clip_format not in CLIP_FORMATS:
        raise ReviseInputError(f"clip format must be one of {', '.join(CLIP_FORMATS)}, not {clip_format!r}")
    return clip_format


KIND_SCHEDULE = ("motion", "row", "motion", "wall", "ice", "motion", "row", "collision", "tank")


def plan(n: int, split: str, seed: int) -> list[tuple[str, str, int, int]]:
    """(group id, scene kind, group seed, items taken) of each group that makes the ``n`` items."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    groups = -(-n // GROUP_SIZE)
    seeds = np.random.default_rng(seed).integers(0, 2**63 - 1, size=groups)
    return [(f"{split}-g{j:05d}", KIND_SCHEDULE[j % len(KIND_SCHEDULE)], int(seeds[j]),
             min(GROUP_SIZE, n - GROUP_SIZE * j)) for j in range(groups)]


# critic_data's label names -> the critic's dimension names
CRITIC_DIMENSIONS = {"edit_accuracy": "edit_accuracy", "preservation": "preservation_consistency",
                     "naturalness": "generation_naturalness", "realism": "generation_realism"}


def _critic_records(item: SynthItem, rec: dict, item_seed: int, split: str, out_dir: Path,
                    height: int, width: int, clip_format: str) -> list[dict]:
    from .critic_data import critic_candidates

    rng = np.random.default_rng([item_seed, SPLITS.index(split), 1])
    out = []
    for cand in critic_candidates(item, rng, height, width):
        kind = cand["kind"]
        if kind in ("target", "source"):
            path = rec[f"{kind}_video_path"]
        else:
            path = f"videos/{item.id}_cand_{kind}.{clip_format}"
            write_video(out_dir / path, cand["video"], fps=8)
        base = {"id": item.id, "kind": kind, "source_video_path": rec["source_video_path"],
                "candidate_video_path": path, "instruction": item.instruction, "type": item.category,
                "subset": item.subset, "category": item.category, "family": item.family}
        out.append({**base, "dimension": None, "answer": cand["answer"]})
        out += [{**base, "dimension": CRITIC_DIMENSIONS[k], "answer": v} for k, v in cand["labels"].items()]
    return out


QA_QUESTIONS = {
    "object": "What object is the instruction about?",
    "light": "After the edit, is it day or night?",
}


def qa_records(item: SynthItem, rec: dict) -> list[dict]:
    """Short-answer questions about an item whose answers follow from its record."""
    answers = {"light": "day" if item.target.light >= 0.7 else "night"}
    names = [n for n in item.edited if n in {o.name for o in item.source.objects}]
    if len(names) == 1:
        answers["object"] = f"the {names[0]}"
    base = {"id": item.id, "source_video_path": rec["source_video_path"],
            "candidate_video_path": rec["target_video_path"], "instruction": item.instruction,
            "type": item.category, "subset": item.subset, "category": item.category, "family": item.family}
    return [{**base, "kind": key, "question": QA_QUESTIONS[key], "answer": ans} for key, ans in answers.items()]


def _make_group(args) -> tuple[list[dict], list[dict], list[dict]]:
    group, kind, group_seed, take, split, out_dir, height, width, frames, critic, clip_format, combo_split = args
    rng = np.random.default_rng([group_seed, SPLITS.index(split)])
    items, src, targets = generate_group(rng, kind, split, height=height, width=width, combo_split=combo_split)
    first = GROUP_SIZE * int(group.rsplit("-g", 1)[1])
    rel_src = f"videos/{group}_source.{clip_format}"
    records, critic_records, qa = [], [], []
    for k, (item, tgt) in enumerate(zip(items[:take], targets)):
        item.id, item.group = f"{split}-{first + k:05d}", group
        if frames != item.frames:
            item.frames = frames
            src, tgt = item.source_clip(height, width), item.target_clip(height, width)
        if k == 0:
            write_video(Path(out_dir) / rel_src, src, fps=8)
        rel_tgt = f"videos/{item.id}_target.{clip_format}"
        write_video(Path(out_dir) / rel_tgt, tgt, fps=8)
        d = item.to_dict()
        d.update(source_video_path=rel_src, target_video_path=rel_tgt, type=item.category, height=height,
                 width=width)
        records.append(d)
        if critic:
            critic_records += _critic_records(item, d, group_seed + k, split, Path(out_dir), height, width,
                                              clip_format)
            qa += qa_records(item, d)
    return records, critic_records, qa


def make_dataset(n: int, split: str, seed: int, out_dir: str | os.PathLike[str], height: int = 64,
                 width: int = 64, frames: int = 17, progress: bool = True, workers: int | None = None,
                 critic: bool = False, clip_format: str = "mp4", combo_split: str | None = None) -> list[dict]:
    """Write ``n`` items of ``split`` under ``out_dir`` (see the module docstring); return the records.
    ``clip_format`` is one of :data:`CLIP_FORMATS`: ``"mp4"`` or ``"npy"``. ``combo_split`` takes the
    main-object combinations of another split (see ``tasks.generate_checked``)."""
    check_clip_format(clip_format)
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    jobs = [(*p, split, str(out_dir), height, width, frames, critic, clip_format, combo_split)
            for p in plan(n, split, seed)]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    bar = _bar(n, split, progress)
    records: list[dict] = []
    critic_records: list[dict] = []
    qa: list[dict] = []
    if workers <= 1 or n < 8:
        results = map(_make_group, jobs)
        pool = None
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        pool = ProcessPoolExecutor(workers, mp_context=ctx)
        results = pool.map(_make_group, jobs, chunksize=4)
    try:
        for recs, crit, questions in results:
            records += recs
            critic_records += crit
            qa += questions
            bar.update(len(recs))
    finally:
        if pool is not None:
            pool.shutdown()
    bar.close()
    _write_json(out_dir / f"{split}.json", records)
    if critic:
        _write_json(out_dir / f"{split}_critic.json", critic_records)
        _write_json(out_dir / f"{split}_qa.json", qa)
    return records


def _write_json(path: Path, records: list[dict]) -> None:
    write_text(path, json.dumps(records, indent=1))


def _bar(n: int, split: str, progress: bool):
    from tqdm.auto import tqdm
    return tqdm(total=n, desc=f"RVE-Synth {split}", unit="item", disable=not progress)


def load_items(json_path: str | os.PathLike[str]) -> list[SynthItem]:
    """The items of a ``{split}.json`` written by :func:`make_dataset`; a malformed file is a
    ``ReviseInputError`` naming it and the item."""
    records = read_json_list(json_path, "RVE-Synth split")
    return [build(SynthItem.from_dict, d, f"RVE-Synth split {json_path}, item {i}") for i, d in enumerate(records)]


def split_items(json_path: str | os.PathLike[str], instructions: str = "own", check_files: bool = True) -> list:
    """A split's items as the bench harness takes them (:class:`~revise.bench.manifest.BenchItem`,
    absolute paths), their instructions replaced as ``instructions`` says
    (:func:`~revise.synth.floors.with_instructions`)."""
    from ..bench.manifest import items_from_records
    from .floors import with_instructions

    records = with_instructions(read_json_list(json_path, "RVE-Synth split"), instructions)
    return items_from_records(records, Path(json_path).parent, f"RVE-Synth split {json_path}", check_files)


def contact_sheet_png(items: list[SynthItem | dict], out_path: str | os.PathLike[str], max_items: int = 24,
                      height: int = 64, width: int = 64) -> Path:
    """A PNG for people: one row per item, its source clip then its target clip (every 4th frame)."""
    rows = []
    for it in items[:max_items]:
        it = SynthItem.from_dict(it) if isinstance(it, dict) else it
        rows.append((it.source_clip(height, width), it.target_clip(height, width)))
    return write_image(out_path, contact_sheet(rows))
