"""A run folder: everything one method produced and everything judged of it, one file per item.

    RUN_DIR/run.json               method name, how the videos were made (checked on resume) and which
                                   instructions the editor was told (own, or an instruction-blind floor's)
    RUN_DIR/manifest.jsonl         the manifest's items with absolute paths
    RUN_DIR/videos/{id}.mp4        outputs, each renamed into place only once complete
    RUN_DIR/generation.jsonl       one record per generated item: ok (seconds) or failed (reason)
    RUN_DIR/scores/{judge}.jsonl   one record per scored item: the four scores, or failed (reason)
    RUN_DIR/scores/{judge}.about.json  what the judge was (model, endpoint, frames)
    RUN_DIR/scores/cache.sqlite    every judge request and reply (OpenAI-compatible judges)

Logs are appended one record per ``write`` call (``O_APPEND``), so a killed process loses at most
the item it was on; with several ranks each writes its own ``NAME.rank{r}.jsonl``. When an id has
several records the last one counts. A torn last line (a kill mid-write) is ignored on reading and
cut off before the next append.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_text
from ..errors import ReviseInputError
from .manifest import BenchItem, load_manifest, write_manifest

META_FILE = "run.json"
MANIFEST_FILE = "manifest.jsonl"
GENERATION_LOG = "generation"


class RecordLog:
    """An append-only JSONL file of per-item records."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._repaired = False

    def append(self, record: dict[str, Any]) -> None:
        if not self._repaired:
            _cut_torn_tail(self.path)
            self._repaired = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def read_records(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """``{id: last record}`` over the files given (missing ones are skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.is_file():
            continue
        lines = path.read_bytes().split(b"\n")
        for number, raw in enumerate(lines[:-1], 1):          # lines[-1]: empty, or a torn tail
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                raise ReviseInputError(f"{path} line {number} is not a JSON record; was the file edited?") from None
            out[rec["id"]] = rec
    return out


def _cut_torn_tail(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


class RunDir:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.videos = self.path / "videos"
        self.scores = self.path / "scores"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- creating and checking ----------------------------------------------------------
    def start(self, items: list[BenchItem], method: str, generator: dict[str, Any], manifest: str = "",
              instructions: str = "own", base_method: str | None = None) -> None:
        """Create the folder for ``items`` made by ``generator``, or check that an existing one was
        made from the same manifest and generator (so a resumed run never mixes two). ``items`` keep
        their own instructions (the judge scores against them); ``instructions`` says what the editor
        was told instead (:data:`~revise.synth.floors.INSTRUCTION_MODES`), and ``base_method`` names the
        method whose instruction-blind floor this run is (default ``method``)."""
        meta_path = self.path / META_FILE
        if meta_path.is_file():
            meta = self.meta()
            if meta.get("generator") != generator:
                raise ReviseInputError(f"{self.path} was made by {json.dumps(meta.get('generator'))}, not "
                                       f"{json.dumps(generator)}: give another --out, or the same settings to resume")
            old = [it.to_record() for it in self.items()]
            if old != [it.to_record() for it in items]:
                raise ReviseInputError(f"{self.path} was made from another manifest ({meta.get('manifest')}): "
                                       "give another --out, or the same manifest to resume")
            return
        # Several ranks may start a new folder at once: each writes the same files, atomically, in this order.
        ours = {MANIFEST_FILE, META_FILE, "videos", "scores"}
        if self.path.exists() and any(p.name not in ours and not p.name.startswith(".") for p in self.path.iterdir()):
            raise ReviseInputError(f"{self.path} exists and is not a bench run folder: give an empty or new --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_manifest(items, self.path / MANIFEST_FILE)
        self.videos.mkdir(exist_ok=True)
        write_json(meta_path, {"method": method, "generator": generator, "instructions": instructions,
                               "base_method": base_method or method,
                               "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                               "manifest": manifest})

    # ---- reading --------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        path = self.path / META_FILE
        if not path.is_file():
            raise ReviseInputError(f"{self.path} is not a bench run folder (no {META_FILE}): make one with "
                                   "'revise bench run'")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReviseInputError(f"{path} is not valid JSON: {err}") from None

    @property
    def method(self) -> str:
        return str(self.meta().get("method") or self.path.name)

    @property
    def instructions(self) -> str:
        """What the editor was told: ``own`` (the items' instructions), ``neutral`` or ``other``."""
        return str(self.meta().get("instructions") or "own")

    @property
    def base_method(self) -> str:
        """The method this run belongs to: itself, or the one whose instruction-blind floor it is."""
        return str(self.meta().get("base_method") or self.method)

    def items(self) -> list[BenchItem]:
        self.meta()
        return load_manifest(self.path / MANIFEST_FILE, check_files=False)

    def video(self, item_id: str) -> Path:
        return self.videos / f"{item_id}.mp4"

    def log_files(self, folder: Path, stem: str) -> list[Path]:
        return [folder / f"{stem}.jsonl", *sorted(folder.glob(f"{stem}.rank*.jsonl"))]

    def generation_records(self) -> dict[str, dict[str, Any]]:
        return read_records(self.log_files(self.path, GENERATION_LOG))

    def score_records(self, judge: str) -> dict[str, dict[str, Any]]:
        return read_records(self.log_files(self.scores, judge))

    def describe_judge(self, judge: str, description: str) -> None:
        """Record what a score log's judge is (model, endpoint, settings) for the report."""
        self.scores.mkdir(parents=True, exist_ok=True)
        write_json(self.scores / f"{judge}.about.json", {"judge": judge, "description": description})

    def judge_description(self, judge: str) -> str:
        path = self.scores / f"{judge}.about.json"
        try:
            return str(json.loads(path.read_text())["description"])
        except (OSError, ValueError, KeyError):
            return judge

    def judges(self) -> list[str]:
        """Names of the score logs present (judges and the ViCLIP_T scorers)."""
        names = {p.name.split(".rank")[0].removesuffix(".jsonl") for p in self.scores.glob("*.jsonl")}
        return sorted(names)
