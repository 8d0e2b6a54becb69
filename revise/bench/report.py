"""Reading scored run folders back and tabulating them like the paper.

:func:`load_methods` turns run folders into :class:`Method` s (one per folder, named by its
run.json), each with one judge's records and its ViCLIP_T records; :func:`table_rows` aggregates
them per group (each subset, each subset/category, and all items): the mean of each metric over
the items scored, with Overall made from each item's four scores by one :class:`OverallFormula`.
Items the judge failed on, and items with no output video, are counted beside the means, never
scored as anything. :func:`markdown_report` and :func:`csv_report` write the tables (``outputs.py``
writes them with the charts and the gallery).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from pathlib import Path
from typing import Any

from ..errors import ReviseInputError
from ..stats import bootstrap_interval, paired_difference
from ..synth.floors import INSTRUCTION_MODES
from ..vocab import CATEGORIES, DIMENSIONS, OVERALL, SUBSETS
from .judges.openai_judge import PRICE_INPUT_PER_M, PRICE_OUTPUT_PER_M, cost_usd
from .manifest import BenchItem
from .metrics import OverallFormula
from .rundir import RunDir
from .score import VICLIP_PREFIX

METRICS = ("ViCLIP_T", *DIMENSIONS, OVERALL)
COUNTS = ("scored", "failed", "missing")
VICLIP_PREFERENCE = ("viclip", "clip")       # a real ViCLIP over the CLIP fallback


@dataclasses.dataclass
class Method:
    name: str
    run: RunDir
    items: list[BenchItem]
    judge: str | None
    records: dict[str, dict[str, Any]]          # judge records by id
    viclip: str | None                          # "viclip", "clip" or None
    viclip_records: dict[str, dict[str, Any]]
    videos: set[str]                            # ids with an output video

    def item_scores(self, item_id: str, formula: OverallFormula) -> dict[str, Any]:
        """``{"status": ok|failed|missing|unscored, metric: value, "reason": ...}`` of one item."""
        out: dict[str, Any] = {}
        v = self.viclip_records.get(item_id)
        if v and v.get("status") == "ok":
            out["ViCLIP_T"] = float(v["ViCLIP_T"])
        if item_id not in self.videos:
            return {**out, "status": "missing"}
        rec = self.records.get(item_id)
        if rec is None:
            return {**out, "status": "unscored"}
        if rec.get("status") != "ok":
            return {**out, "status": "failed", "reason": rec.get("reason", "")}
        dims = {d: float(rec[d]) for d in DIMENSIONS}
        return {**out, **dims, OVERALL: formula(dims), "status": "ok", "reason": rec.get("reason", "")}


def _resolve_judge(runs: list[RunDir], judge: str | None) -> str | None:
    per_run = [{j for j in r.judges() if not j.startswith(VICLIP_PREFIX)} for r in runs]
    present = set().union(*per_run)
    if judge is not None:
        exact = [j for j in present if j == judge] or sorted(j for j in present if j.startswith(judge))
        if len(exact) != 1:
            have = ", ".join(sorted(present)) or "none"
            raise ReviseInputError(f"--judge '{judge}' names {len(exact)} of the judges these runs have ({have})")
        return exact[0]
    common = set.intersection(*per_run) if per_run else set()
    if len(common) == 1:
        return common.pop()
    if not present:
        return None
    raise ReviseInputError(f"these runs hold scores of several judges ({', '.join(sorted(present))}): "
                           "choose one with --judge")


def load_methods(run_dirs: list[str | os.PathLike[str]], judge: str | None = None) -> list[Method]:
    runs = [RunDir(p) for p in run_dirs]
    for r in runs:
        r.meta()
    chosen = _resolve_judge(runs, judge)
    methods: list[Method] = []
    names: set[str] = set()
    for r in runs:
        name = r.method
        if name in names:
            name = f"{name} ({r.path.name})"
        names.add(name)
        kinds = [k for k in VICLIP_PREFERENCE if (VICLIP_PREFIX + k) in r.judges()]
        viclip = kinds[0] if kinds else None
        methods.append(Method(
            name=name, run=r, items=r.items(), judge=chosen,
            records=r.score_records(chosen) if chosen else {},
            viclip=viclip, viclip_records=r.score_records(VICLIP_PREFIX + viclip) if viclip else {},
            videos={p.stem for p in r.videos.glob("*.mp4") if not p.name.startswith(".")}))
    return methods


def groups_of(items: list[BenchItem]) -> list[str]:
    """Each subset, then its categories, in the paper's order; then "all"."""
    present = {(it.subset, it.category) for it in items}
    out = []
    for subset in SUBSETS:
        cats = [c for c in CATEGORIES if (subset, c) in present]
        if cats:
            out += [subset] + [f"{subset}/{c}" for c in cats]
    return out + ["all"]


def in_group(item: BenchItem, group: str) -> bool:
    return group == "all" or group in (item.subset, item.group)


def table_rows(methods: list[Method], group: str, formula: OverallFormula) -> list[dict[str, Any]]:
    rows = []
    for m in methods:
        values: dict[str, list[float]] = {k: [] for k in METRICS}
        counts = dict.fromkeys(COUNTS, 0)
        for item in m.items:
            if not in_group(item, group):
                continue
            s = m.item_scores(item.id, formula)
            for k in METRICS:
                if k in s:
                    values[k].append(s[k])
            if s["status"] in ("ok", "failed", "missing"):
                counts["scored" if s["status"] == "ok" else s["status"]] += 1
        row: dict[str, Any] = {"method": m.name, **counts}
        row.update({k: (sum(v) / len(v) if v else None) for k, v in values.items()})
        rows.append(row)
    return rows


def best_values(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The highest value of each metric over the rows (higher is better for every metric)."""
    out = {}
    for k in METRICS:
        vals = [r[k] for r in rows if r[k] is not None]
        if vals:
            out[k] = max(vals)
    return out


def _is_best(value: float | None, best: float | None) -> bool:
    return value is not None and best is not None and math.isclose(round(value, 2), round(best, 2))


def formatted_rows(rows: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, bool]], list[int]]]:
    """Per row: the method, each metric as (text, is best), and the counts; for every table format."""
    best = best_values(rows)
    out = []
    for r in rows:
        cells = [("–", False) if r[k] is None else (f"{r[k]:.2f}", len(rows) > 1 and _is_best(r[k], best.get(k)))
                 for k in METRICS]
        out.append((r["method"], cells, [r[c] for c in COUNTS]))
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | " + " | ".join(METRICS) + " | " + " | ".join(COUNTS) + " |",
             "| --- |" + " ---: |" * (len(METRICS) + len(COUNTS))]
    for method, cells, counts in formatted_rows(rows):
        text = [f"**{t}**" if bold else t for t, bold in cells]
        lines.append(f"| {method} | " + " | ".join(text) + " | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(lines)


def usage_totals(method: Method) -> dict[str, int]:
    totals = {"items": 0, "prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "cached_replies": 0}
    for rec in method.records.values():
        if "prompt_tokens" not in rec:
            continue
        totals["items"] += 1
        for k in list(totals)[1:]:
            totals[k] += int(rec.get(k, 0))
    return totals


def cost_lines(methods: list[Method], price_input: float, price_output: float) -> list[str]:
    lines = []
    for m in methods:
        t = usage_totals(m)
        if not t["items"]:
            continue
        cost = cost_usd(t["prompt_tokens"], t["completion_tokens"], price_input, price_output)
        lines.append(f"| {m.name} | {t['items']} | {t['prompt_tokens']:,} | {t['completion_tokens']:,} | "
                     f"{t['requests']} | {t['cached_replies']} | ${cost:.4f} | ${cost / t['items'] * 1000:.2f} |")
    if not lines:
        return []
    return ["| method | items judged | prompt tokens | completion tokens | requests sent | cached replies | "
            "cost | per 1,000 items |", "| --- |" + " ---: |" * 7, *lines,
            "", f"Prices assumed: ${price_input:g} per 1M input tokens, ${price_output:g} per 1M output tokens "
                "(--price-input / --price-output); tokens as the endpoint reported them."]


def floor_lines(methods: list[Method], formula: OverallFormula) -> list[str]:
    """The instruction-blind floors: for each method scored with its own instructions and also told
    neutral or other instructions ('bench run --instructions'), EA and Overall under each with 95%
    bootstrap intervals, and instruction sensitivity EA(own) - EA(other) paired by item."""
    by_base: dict[str, dict[str, Method]] = {}
    for m in methods:
        by_base.setdefault(m.run.base_method, {})[m.run.instructions] = m
    lines: list[str] = []
    for base, runs in by_base.items():
        if "own" not in runs or len(runs) < 2:
            continue
        scored = {mode: [{"id": it.id, **s} for it in m.items
                         if (s := m.item_scores(it.id, formula))["status"] == "ok"] for mode, m in runs.items()}
        lines += [f"**{base}**", "", "| told | scored | EA [95%] | Overall [95%] |", "| --- | ---: | --- | --- |"]
        for mode in INSTRUCTION_MODES:
            if mode in scored:
                rows = scored[mode]
                cells = [_mean_interval([r[k] for r in rows]) for k in ("EA", OVERALL)]
                lines.append(f"| {mode} | {len(rows)} | {cells[0]} | {cells[1]} |")
        if "other" in scored and scored["own"] and scored["other"]:
            d = paired_difference(scored["own"], scored["other"])
            lo, hi = d["interval95"]
            lines += ["", f"Instruction sensitivity EA(own) - EA(other): {d['mean']:.2f} [{lo:.2f}, {hi:.2f}] "
                          f"over {d['n']} items scored in both."]
        lines.append("")
    return lines


def _mean_interval(values: list[float]) -> str:
    if not values:
        return "–"
    lo, hi = bootstrap_interval(values)
    return f"{sum(values) / len(values):.2f} [{lo:.2f}, {hi:.2f}]"


def judge_description(methods: list[Method]) -> str:
    judge = methods[0].judge if methods else None
    if judge is None:
        return "none (no judge scores found)"
    about = sorted({m.run.judge_description(judge) for m in methods})
    return f"{judge}: " + "; ".join(about) if about != [judge] else judge


def viclip_note(methods: list[Method]) -> str:
    kinds = {m.viclip for m in methods}
    if kinds == {None}:
        return "ViCLIP_T absent: scored with neither a ViCLIP checkpoint (--viclip) nor the CLIP fallback (--clip)."
    parts = []
    for m in methods:
        if m.viclip == "clip":
            parts.append(f"{m.name}: CLIP fallback (transformers CLIPModel, frame-averaged), not ViCLIP")
        elif m.viclip == "viclip":
            parts.append(f"{m.name}: ViCLIP")
        else:
            parts.append(f"{m.name}: absent")
    warn = " Not comparable across methods: they were scored by different models." if len(kinds) > 1 else ""
    return "ViCLIP_T (100 x cosine of text and video embeddings): " + "; ".join(parts) + "." + warn


def markdown_report(methods: list[Method], formula: OverallFormula, price_input: float = PRICE_INPUT_PER_M,
                    price_output: float = PRICE_OUTPUT_PER_M) -> str:
    items = methods[0].items
    out = ["# RVE-Bench report", "",
           f"Methods: {', '.join(m.name for m in methods)}. Judge: {judge_description(methods)}. "
           f"Scores on 1-10; {formula.describe()}, the same for every judge and method; means over the items "
           "scored (failed and missing items are counted, not scored). Best of each column in bold.", "",
           viclip_note(methods), ""]
    ids = [{it.id for it in m.items} for m in methods]
    if any(s != ids[0] for s in ids):
        out += ["Warning: the runs do not share the same items; each mean is over its own run's items.", ""]
    for m in methods:
        waiting = sum(m.item_scores(it.id, formula)["status"] == "unscored" for it in m.items)
        if waiting and m.judge:
            out += [f"Warning: {waiting} outputs of {m.name} have no {m.judge} score yet (revise bench score).", ""]
    for group in groups_of(items):
        n = sum(in_group(it, group) for it in items)
        out += [f"## {group} (n = {n})", "", markdown_table(table_rows(methods, group, formula)), ""]
    floors = floor_lines(methods, formula)
    if floors:
        out += ["## Instruction-blind floors", "",
                "Each method told its items' own instructions, \"Do something.\" (neutral) and another item's "
                "instruction on the same source (other), always scored against the own instruction's target. "
                "A method that reads the instruction scores clearly higher with its own.", "", *floors]
    costs = cost_lines(methods, price_input, price_output)
    if costs:
        out += ["## Judge usage and cost", "", *costs, ""]
    return "\n".join(out)


def csv_report(methods: list[Method], formula: OverallFormula) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["group", "method", *METRICS, *COUNTS, "judge", "viclip_t_model"])
    for group in groups_of(methods[0].items):
        for m, row in zip(methods, table_rows(methods, group, formula)):
            writer.writerow([group, row["method"], *("" if row[k] is None else f"{row[k]:.4f}" for k in METRICS),
                             *(row[c] for c in COUNTS), m.judge or "", m.viclip or ""])
    return buf.getvalue()
