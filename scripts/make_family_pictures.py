"""One picture per RVE-Synth task family for the README: an item's source clip, then its target clip
(every 4th frame), drawn from the test split.

    python scripts/make_family_pictures.py      # writes docs/synth/*.png and prints the README table
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from revise.synth.render import contact_sheet
from revise.synth.tasks import FAMILIES, make_item
from revise.video import write_image

OUT = Path(__file__).resolve().parents[1] / "docs" / "synth"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, fam) in enumerate(sorted(FAMILIES.items(), key=lambda kv: (kv[1].category, kv[0]))):
        item = make_item(np.random.default_rng([7, i]), fam, "test")
        file = OUT / f"{name.replace('/', '_')}.png"
        write_image(file, contact_sheet([(item.source_clip(), item.target_clip())]))
        rows.append(f"| {fam.category} | `{name}` | {', '.join(fam.subsets)} | {item.instruction} | "
                    f"![{name}](docs/synth/{file.name}) |")
    print("| category | family | subsets | example instruction | source (left) and target (right), every 4th frame |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
