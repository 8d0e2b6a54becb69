"""RVE-Bench manifests: one item per edit, read from JSONL (an object per line) or JSON (a list of
objects, such as ``revise synth make``'s ``SPLIT.json``).

Each item needs ``id``, ``subset`` (RAVE or ICVG), ``category`` (causal, temporal, spatial or
commonsense), ``source_video_path`` and ``instruction``; ``target_video_path`` is optional; every
other field is kept as it is (the RVE-Synth judge reads its scene fields from there). Relative
paths are relative to the manifest's folder.

Every bad item is reported with its line number and field, all in one error; nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import ReviseInputError
from ..vocab import CATEGORIES, SUBSETS
REQUIRED = ("id", "subset", "category", "source_video_path", "instruction")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")   # ids name output files
_SHOWN_ERRORS = 5


@dataclasses.dataclass(frozen=True)
class BenchItem:
    id: str
    subset: str
    category: str
    source_video_path: str          # absolute
    instruction: str
    target_video_path: str | None   # absolute, or None
    record: dict[str, Any]          # the item as written, extra fields included

    @property
    def group(self) -> str:
        return f"{self.subset}/{self.category}"

    def to_record(self) -> dict[str, Any]:
        """The item with absolute paths: what a run folder keeps of its manifest."""
        out = dict(self.record)
        out["source_video_path"] = self.source_video_path
        if self.target_video_path is not None:
            out["target_video_path"] = self.target_video_path
        return out


def load_manifest(path: str | os.PathLike[str], check_files: bool = True) -> list[BenchItem]:
    """The items of a manifest, in file order. Raises ``ReviseInputError`` naming every bad line."""
    path = Path(path)
    if not path.is_file():
        raise ReviseInputError(f"manifest {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ReviseInputError(f"cannot read manifest {path}: {err}") from None
    entries = _jsonl_entries(text) if _is_jsonl(text, path) else _json_array_entries(text, path)
    return _checked_items([(f"line {line}", value) for line, value in entries], f"manifest {path}", path.parent,
                          check_files)


def items_from_records(records: list[Any], root: str | os.PathLike[str], where: str,
                       check_files: bool = True) -> list[BenchItem]:
    """Items held in memory (e.g. a split whose instructions were replaced), checked as
    :func:`load_manifest` checks a file's; relative paths start at ``root``, errors name ``where``."""
    return _checked_items([(f"item {i}", value) for i, value in enumerate(records)], where, Path(root), check_files)


def told_items(items: list[BenchItem], instructions: str) -> list[BenchItem]:
    """``items`` with the instructions an editor is told for an instruction-blind floor
    (:func:`~revise.synth.floors.with_instructions`: ``own``, ``neutral`` or ``other``)."""
    from ..synth.floors import with_instructions

    if instructions == "own":
        return items
    records = with_instructions([it.to_record() for it in items], instructions)
    return items_from_records(records, "/", f"the manifest's items told {instructions!r} instructions", check_files=False)


def _checked_items(entries: list[tuple[str, Any]], where: str, root: Path, check_files: bool) -> list[BenchItem]:
    """The items of ``(label, value)`` entries; a ``str`` value is a JSON syntax error at that label."""
    items: list[BenchItem] = []
    errors: list[str] = []
    first: dict[str, str] = {}
    for label, value in entries:
        if isinstance(value, str):                 # a JSON syntax error on that line
            errors.append(f"{label}: {value}")
            continue
        try:
            item = _item(value, root, check_files)
        except _FieldError as err:
            errors.append(f"{label}: {err}")
            continue
        if item.id in first:
            errors.append(f"{label}: field 'id': '{item.id}' repeats the id of {first[item.id]}")
            continue
        first[item.id] = label
        items.append(item)
    if errors:
        shown = "; ".join(errors[:_SHOWN_ERRORS])
        more = f"; and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        raise ReviseInputError(f"{where} has {len(errors)} bad item(s): {shown}{more}")
    if not items:
        raise ReviseInputError(f"{where} has no items")
    return items


def write_manifest(items: list[BenchItem], path: str | os.PathLike[str]) -> Path:
    """Write items as JSONL (absolute paths), atomically."""
    return write_text(path, "".join(json.dumps(it.to_record(), sort_keys=True) + "\n" for it in items))


class _FieldError(Exception):
    pass


def _item(value: Any, root: Path, check_files: bool) -> BenchItem:
    if not isinstance(value, dict):
        raise _FieldError(f"an item must be a JSON object, not {type(value).__name__}")
    for name in REQUIRED:
        if name not in value:
            raise _FieldError(f"field '{name}' is missing")
    item_id = value["id"]
    if not isinstance(item_id, str) or not _ID.match(item_id):
        raise _FieldError(f"field 'id' must be 1-200 letters, digits, '.', '_' or '-' starting with a letter or "
                          f"digit (it names the output file), got {json.dumps(item_id)}")
    if value["subset"] not in SUBSETS:
        raise _FieldError(f"field 'subset' must be one of {', '.join(SUBSETS)}, got {json.dumps(value['subset'])}")
    if value["category"] not in CATEGORIES:
        raise _FieldError(f"field 'category' must be one of {', '.join(CATEGORIES)}, "
                          f"got {json.dumps(value['category'])}")
    instruction = value["instruction"]
    if not isinstance(instruction, str) or not instruction.strip():
        raise _FieldError("field 'instruction' must be a non-empty string")
    source = _video_path(value, "source_video_path", root, check_files)
    target = _video_path(value, "target_video_path", root, check_files) \
        if value.get("target_video_path") not in (None, "") else None
    return BenchItem(item_id, value["subset"], value["category"], source, instruction, target, dict(value))


def _video_path(value: dict, field: str, root: Path, check_files: bool) -> str:
    raw = value[field]
    if not isinstance(raw, str) or not raw.strip():
        raise _FieldError(f"field '{field}' must be a non-empty path string")
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else root / path
    if check_files and not path.exists():
        raise _FieldError(f"field '{field}': {path} does not exist (relative paths start at the manifest's folder)")
    return str(path.resolve())


def _jsonl_entries(text: str) -> list[tuple[int, Any]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            out.append((number, f"not valid JSON ({err.msg} at column {err.colno})"))
    return out


def _is_jsonl(text: str, path: Path) -> bool:
    """JSONL unless the file starts with ``[`` (a ``.jsonl`` name is always JSONL)."""
    return path.suffix.lower() == ".jsonl" or not text.lstrip().startswith("[")


def _json_array_entries(text: str, path: Path) -> list[tuple[int, Any]]:
    """The elements of a JSON list with the line each starts on."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReviseInputError(f"manifest {path} is not valid JSON: {err.msg} at line {err.lineno}, "
                               f"column {err.colno}") from None
    if not isinstance(doc, list):
        raise ReviseInputError(f"manifest {path} must be a JSON list of items or JSONL")
    start = text.index("[")
    decoder = json.JSONDecoder()
    out = []
    pos, line, counted = start + 1, 1 + text.count("\n", 0, start), start
    while True:
        pos = _skip(text, pos, " \t\r\n,")
        if text[pos] == "]":
            return out
        value, end = decoder.raw_decode(text, pos)
        line += text.count("\n", counted, pos)
        out.append((line, value))
        pos, counted = end, pos


def _skip(text: str, pos: int, chars: str) -> int:
    while text[pos] in chars:
        pos += 1
    return pos
