"""``revise bench report``'s files: report.md and report.csv (:mod:`.report`), a chart per subset
(:mod:`.charts`) and the HTML gallery (:mod:`.gallery`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..vocab import SUBSETS
from .charts import subset_chart
from .gallery import write_gallery
from .judges.openai_judge import PRICE_INPUT_PER_M, PRICE_OUTPUT_PER_M
from .metrics import OverallFormula
from .report import csv_report, groups_of, load_methods, markdown_report, table_rows


def write_report(run_dirs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *, judge: str | None = None,
                 formula: OverallFormula | None = None, price_input: float = PRICE_INPUT_PER_M,
                 price_output: float = PRICE_OUTPUT_PER_M, gallery: bool = True) -> dict[str, Any]:
    formula = formula or OverallFormula()
    methods = load_methods(run_dirs, judge)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown_report(methods, formula, price_input, price_output)
    paths: dict[str, Any] = {"markdown": write_text(out / "report.md", md),
                             "csv": write_text(out / "report.csv", csv_report(methods, formula)), "charts": []}
    for subset in SUBSETS:
        groups = [g for g in groups_of(methods[0].items) if g.startswith(subset)]
        if groups:
            rows = {g: table_rows(methods, g, formula) for g in groups}
            paths["charts"].append(subset_chart(subset, rows, out / f"chart_{subset}.png"))
    if gallery:
        paths["gallery"] = write_gallery(methods, out, formula)
    paths["text"] = md
    return paths
