"""Instruction-blind floors: what a model scores without reading the instruction.

The unedited source is one floor. Two more come from the model itself, on the same items:

* ``neutral``: every item's instruction replaced by :data:`NEUTRAL_INSTRUCTION`;
* ``other``: every item's instruction replaced by the instruction of the next item of its group
  (RVE-Synth v2 groups share one source clip, :mod:`revise.synth.tasks`), so the model edits the same
  clip, asked for something else.

A model that ignores the instruction scores the same under all three; *instruction sensitivity* is
EA(own instruction) - EA(other instruction, same source), paired by item.
"""

from __future__ import annotations

from collections import defaultdict

from ..errors import ReviseInputError

NEUTRAL_INSTRUCTION = "Do something."
INSTRUCTION_MODES = ("own", "neutral", "other")


def with_instructions(records: list[dict], mode: str) -> list[dict]:
    """``records`` (a split's items) with their instructions replaced as ``mode`` says."""
    if mode not in INSTRUCTION_MODES:
        raise ReviseInputError(f"instructions must be one of {', '.join(INSTRUCTION_MODES)}, not {mode!r}")
    if mode == "own":
        return records
    if mode == "neutral":
        return [{**r, "instruction": NEUTRAL_INSTRUCTION} for r in records]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r.get("group") or ""].append(i)
    if "" in groups or any(len(v) < 2 for v in groups.values()):
        raise ReviseInputError("'other' instructions need items that come in groups of two or more sharing a "
                               "source, each with a 'group' field (RVE-Synth v2 splits, 'revise synth make')")
    out = list(records)
    for members in groups.values():
        for k, i in enumerate(members):
            out[i] = {**records[i], "instruction": records[members[(k + 1) % len(members)]]["instruction"]}
    return out
