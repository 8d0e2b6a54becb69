"""Grow a model folder's word vocabulary to a word list (default: the mini preset's, which covers
RVE-Synth v2), so that a model continued on new data reads the new words instead of <unk>
(docs/results.md, "every v2 arm reads v2 with v1's words"). New embedding rows start as copies of
<unk>'s: the grown model computes what the old one did until training moves them.

    python scripts/grow_vocabulary.py revise/assets/models/mini runs/v2/vocab/model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from revise.models.revise_model import ReviseModel
from revise.models.tokenizers import SYNTH_VOCABULARY
from revise.models.vocabulary import grow_vocabulary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="model folder")
    ap.add_argument("dst", help="the grown model folder (written whole, float32)")
    ap.add_argument("--words", default=str(SYNTH_VOCABULARY), help="file of words, one per line or space-separated")
    args = ap.parse_args()
    model = ReviseModel.from_pretrained(args.src, dtype=torch.float32)
    added = grow_vocabulary(model, Path(args.words).read_text().split())
    for part, words in added.items():
        shown = ", ".join(words[:12]) + (f" and {len(words) - 12} more" if len(words) > 12 else "")
        print(f"{part}: {len(words)} words added{': ' + shown if words else ''}")
    print(f"wrote {model.save_pretrained(args.dst)}")


if __name__ == "__main__":
    main()
