"""What every judge shares: its result, its two kinds of failure, and the judge prompt.

The prompt (:func:`judge_messages`) is one text for every VLM judge, remote or local: the paper's
four dimensions defined, the source frames and the output frames in order, and a demand for one
strict JSON object, which :func:`parse_reply` checks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..manifest import BenchItem
from ..metrics import DIMENSIONS, SCALE, check_scores


class JudgeFailure(Exception):
    """This item could not be scored (the reason is recorded); the others go on."""


class JudgeFatal(Exception):
    """No item can be scored (a refused key, an unknown model): scoring stops with this message."""


class MalformedReply(ValueError):
    """The reply is not the JSON object asked for."""


@dataclasses.dataclass
class JudgeResult:
    scores: dict[str, float]                                   # EA, PC, GN, GR on 1-10
    reason: str = ""
    usage: dict[str, int] = dataclasses.field(default_factory=dict)

    def record(self, item_id: str) -> dict[str, Any]:
        return {"id": item_id, "status": "ok", **self.scores, "reason": self.reason, **self.usage}


SYSTEM_PROMPT = (
    "You are an expert judge of reason-informed video editing. An instruction asks for a change that is "
    "not spelled out: it must be inferred by reasoning about causes, time, space or common sense. "
    "You see frames of the source video and frames of the output video, in order. Score the output on "
    f"four dimensions, each an integer from {SCALE[0]:g} (worst) to {SCALE[1]:g} (best):\n"
    "EA (Edit Accuracy): the output shows the change the instruction implies, with the reasoning right.\n"
    "PC (Preservation Consistency): everything the instruction does not call to change (subjects, "
    "identity, background, layout, style) stays as in the source.\n"
    "GN (Generation Naturalness): motion is smooth and temporally coherent, without flicker, jumps or "
    "distortion.\n"
    "GR (Generation Realism): the output looks real and physically plausible (light, shadows, "
    "physics, textures).\n"
    'Reply with one JSON object and nothing else: {"EA": <int>, "PC": <int>, "GN": <int>, "GR": <int>, '
    '"reason": "<one sentence>"}'
)
SUBSET_NOTES = {
    "RAVE": "The output is an edit of the source video.",
    "ICVG": "The output is the scene that follows the source video, as the instruction describes; for PC, judge "
            "continuity of characters, setting and style with the source.",
}
REPAIR_PROMPT = ("Your reply was not the JSON object asked for ({error}). Reply with only the JSON object "
                 '{{"EA": <int>, "PC": <int>, "GN": <int>, "GR": <int>, "reason": "<one sentence>"}}.')


def judge_text(item: BenchItem) -> tuple[str, str, str]:
    """The user turn's three texts: before the source frames, before the output frames, after them."""
    head = f"{SUBSET_NOTES[item.subset]}\nInstruction: {item.instruction}\nSource video frames:"
    return head, "Output video frames:", "Score the output. Reply with the JSON object only."


def parse_reply(text: str | None) -> dict[str, Any]:
    """The four scores (and the reason) from a reply that must be one JSON object; a Markdown code
    fence around it is allowed. Raises :class:`MalformedReply` saying what is wrong."""
    if text is None or not text.strip():
        raise MalformedReply("empty reply")
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S)
    if fence:
        body = fence.group(1)
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as err:
        raise MalformedReply(f"not JSON: {err.msg} at column {err.colno} of {body[:80]!r}") from None
    if not isinstance(obj, dict):
        raise MalformedReply(f"a JSON {type(obj).__name__}, not an object")
    try:
        scores = check_scores(obj)
    except ValueError as err:
        raise MalformedReply(str(err)) from None
    reason = obj.get("reason", "")
    return {**scores, "reason": reason if isinstance(reason, str) else json.dumps(reason)}


def scores_only(parsed: dict[str, Any]) -> dict[str, float]:
    return {d: parsed[d] for d in DIMENSIONS}

