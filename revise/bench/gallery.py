"""The static HTML gallery: the summary tables, then one row per item with the source, the target
and every method's output side by side, the instruction above and each output's scores below.

Videos are linked (relative paths from the report folder), not copied; each has a poster PNG (its
middle frame, in ``thumbs/``) so the page reads at a glance and loads fast, and plays on hover.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2

from ..atomic import write_text
from ..errors import ReviseInputError
from ..video import write_image
from ..vocab import DIMENSIONS, OVERALL
from .frames import sample_frames
from .metrics import OverallFormula
from .report import METRICS, formatted_rows, groups_of, in_group, judge_description, table_rows, viclip_note

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RVE-Bench gallery</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
table.scores { border-collapse: collapse; margin: 6px 0 18px; }
table.scores td, table.scores th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.scores td:first-child, table.scores th:first-child { text-align: left; }
.item { border-top: 1px solid #ddd; padding: 10px 0; }
.instruction { font-weight: 600; margin: 2px 0 8px; }
.meta { color: #666; font-size: 12px; }
.row { display: flex; gap: 10px; flex-wrap: wrap; }
.cell { width: 220px; }
.cell video, .cell .none { width: 220px; height: 165px; background: #111; object-fit: contain; display: block; }
.cell .none { color: #bbb; display: flex; align-items: center; justify-content: center; text-align: center; }
.label { font-weight: 600; margin-top: 3px; }
.sc { font-size: 12px; color: #333; }
.fail { font-size: 12px; color: #a00; }
</style></head><body>
<h1>RVE-Bench gallery</h1>
<p>Judge: {{ judge }}. Scores on 1-10; {{ formula }}. {{ viclip }}</p>
{% for t in tables %}
<h3>{{ t.group }} (n = {{ t.n }})</h3>
<table class="scores"><tr><th>method</th>{% for k in metrics %}<th>{{ k }}</th>{% endfor %}<th>scored</th><th>failed</th><th>missing</th></tr>
{% for method, cells, counts in t.rows %}<tr><td>{{ method }}</td>{% for text, bold in cells %}<td>{% if bold %}<b>{{ text }}</b>{% else %}{{ text }}{% endif %}</td>{% endfor %}{% for c in counts %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endfor %}
<h2>Items</h2>
{% for it in items %}
<div class="item" id="{{ it.id }}" data-group="{{ it.group }}">
<div class="meta">{{ it.id }} · {{ it.group }}</div>
<div class="instruction">{{ it.instruction }}</div>
<div class="row">
{% for c in it.cells %}<div class="cell">
{% if c.video %}<video src="{{ c.video }}" poster="{{ c.poster }}" muted loop playsinline preload="none" controls></video>
{% else %}<div class="none">{{ c.note }}</div>{% endif %}
<div class="label">{{ c.label }}</div>
{% if c.scores %}<div class="sc">{{ c.scores }}</div>{% endif %}
{% if c.failure %}<div class="fail">{{ c.failure }}</div>{% endif %}
</div>{% endfor %}
</div></div>
{% endfor %}
<script>
document.querySelectorAll("video").forEach(v => {
  v.addEventListener("mouseenter", () => v.play().catch(() => {}));
  v.addEventListener("mouseleave", () => v.pause());
});
</script>
</body></html>
"""


def poster(video: Path, thumbs: Path) -> Path:
    """The middle frame of ``video`` as a PNG (longer side at most 256), made once per file version."""
    stat = video.stat()
    key = hashlib.sha256(f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    path = thumbs / f"{key}.png"
    if not path.is_file():
        frames = sample_frames(video, 3, max_side=256)
        write_image(path, frames[len(frames) // 2])
    return path


def _href(path: str | Path, start: Path) -> str:
    return urllib.parse.quote(Path(os.path.relpath(path, start)).as_posix())


def _score_text(s: dict[str, Any]) -> str:
    parts = [f"{d} {s[d]:.1f}" for d in DIMENSIONS if d in s]
    if OVERALL in s:
        parts.append(f"{OVERALL} {s[OVERALL]:.2f}")
    if "ViCLIP_T" in s:
        parts.append(f"ViCLIP_T {s['ViCLIP_T']:.1f}")
    return " · ".join(parts)


def write_gallery(methods: list, out: Path, formula: OverallFormula) -> Path:
    thumbs = out / "thumbs"
    thumbs.mkdir(exist_ok=True)

    def cell(label: str, path: str | Path | None, note: str = "no video") -> dict[str, Any]:
        base = {"label": label, "video": None, "poster": None, "note": note, "scores": "", "failure": ""}
        if path is None or not Path(path).exists():
            return base
        try:
            post = poster(Path(path), thumbs)
        except ReviseInputError as err:
            return {**base, "note": f"unreadable: {err}"}
        return {**base, "video": _href(path, out), "poster": _href(post, out)}

    items = []
    for item in methods[0].items:
        cells = [cell("source", item.source_video_path), cell("target", item.target_video_path, "no target")]
        for m in methods:
            s = m.item_scores(item.id, formula)
            c = cell(m.name, m.run.video(item.id) if s["status"] != "missing" else None, "no output")
            c["scores"] = _score_text(s)
            if s["status"] == "failed":
                c["failure"] = f"judge failed: {s.get('reason', '')}"
            elif s["status"] == "unscored":
                c["failure"] = "not scored yet"
            cells.append(c)
        items.append({"id": item.id, "group": item.group, "instruction": item.instruction, "cells": cells})
    tables = []
    for group in [g for g in groups_of(methods[0].items) if "/" not in g]:   # categories: see report.md
        n = sum(in_group(it, group) for it in methods[0].items)
        tables.append({"group": group, "n": n, "rows": formatted_rows(table_rows(methods, group, formula))})
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(TEMPLATE).render(
        judge=judge_description(methods), formula=formula.describe(), viclip=viclip_note(methods),
        tables=tables, metrics=METRICS, items=items)
    path = write_text(out / "gallery.html", html)
    return path
