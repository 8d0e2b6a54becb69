"""Generation: make RUN_DIR/videos/{id}.mp4 for every manifest item with one of three editors.

* :class:`ModelEditor`: a ReViSE model (preset or folder) through :class:`ReviseEditPipeline`.
* :class:`CommandEditor`: any external editor, one shell command per item from a template with
  ``{source} {instruction} {output} {id} {target} {subset} {category}`` (each shell-quoted).
* :class:`FolderImport`: a folder of finished outputs named by item id (baselines such as InsV2V,
  InsViE, VACE, Omni-Video): ``{id}.mp4`` is copied, other videos and frame folders are re-encoded.

:func:`generate` skips items whose video exists, takes this rank's shard (``ranks``), and logs
one record per item (ok with seconds, or failed with the reason). A failed item is tried again
only with ``retry_failed``.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import string
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

from ..atomic import atomic_path
from ..errors import ReviseInputError
from ..video import VIDEO_EXTENSIONS, count_frames, read_video, write_video
from .frames import probe
from .manifest import BenchItem
from .ranks import local_device, log_name, rank_world, shard
from .rundir import GENERATION_LOG, RecordLog, RunDir


class GenerationError(Exception):
    """One item could not be generated; the reason is recorded and the run goes on."""


class Editor(Protocol):
    spec: dict[str, Any]        # what made the videos, recorded in run.json and checked on resume
    default_method: str

    def __call__(self, item: BenchItem, out: Path) -> None: ...


class ModelEditor:
    def __init__(self, model: str, *, frames: int | None = None, size: tuple[int, int] | None = None,
                 steps: int | None = None, guidance: float | None = None, shift: float | None = None,
                 solver: str = "unipc", seed: int = 0, device: str | None = None, dtype: str | None = None):
        from ..pipelines.sampling_options import resolve_device, resolve_sampling

        width, height = size or (None, None)                # an unknown preset or bad folder fails here
        self.options = resolve_sampling(model, frames=frames, height=height, width=width, steps=steps,
                                        guidance=guidance, shift=shift, solver=solver, seed=seed)
        self.kw = {**self.options.pipeline_kwargs(), "seed": self.options.seed}
        self.model = str(Path(model).resolve()) if Path(model).is_dir() else model
        self.device, self.dtype = resolve_device(device or local_device(), dtype)
        self.spec = {"kind": "model", "model": self.model, **self.kw}
        self.default_method = Path(model).name if Path(model).is_dir() else f"ReViSE-{model}"
        self._pipe = None

    def _pipeline(self):
        if self._pipe is None:
            from ..pipelines.edit import ReviseEditPipeline

            self._pipe = ReviseEditPipeline.from_pretrained(self.model, device=self.device, dtype=self.dtype)
        return self._pipe

    def __call__(self, item: BenchItem, out: Path) -> None:
        from ..pipelines.edit_file import edit_to_file

        o = self.options
        source = read_video(item.source_video_path, o.num_frames, o.height, o.width)
        edit_to_file(self._pipeline(), source, item.instruction, out, o, model=self.model)


class CommandEditor:
    FIELDS = ("source", "instruction", "output", "id", "target", "subset", "category")

    def __init__(self, template: str, timeout: float | None = None):
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as err:
            raise ReviseInputError(f"--editor-cmd template is malformed ({err}); write literal braces as {{{{ }}}}") \
                from None
        unknown = sorted(fields - set(self.FIELDS))
        if unknown:
            raise ReviseInputError(f"--editor-cmd uses unknown field(s) {', '.join('{' + f + '}' for f in unknown)}; "
                                   f"known: {' '.join('{' + f + '}' for f in self.FIELDS)}")
        if "output" not in fields:
            raise ReviseInputError("--editor-cmd must write its result to {output}")
        self.template, self.timeout = template, timeout
        self.spec = {"kind": "editor-cmd", "template": template}
        first = shlex.split(template)[0] if shlex.split(template) else "editor"
        self.default_method = Path(first).name

    def __call__(self, item: BenchItem, out: Path) -> None:
        with atomic_path(out, out.suffix) as tmp:
            tmp.unlink()                 # the editor creates it: a missing file is an editor that wrote nothing
            values = {"source": item.source_video_path, "instruction": item.instruction, "output": str(tmp),
                      "id": item.id, "target": item.target_video_path or "", "subset": item.subset,
                      "category": item.category}
            command = self.template.format(**{k: shlex.quote(v) for k, v in values.items()})
            try:
                proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise GenerationError(f"editor command ran past {self.timeout:g} s") from None
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [""])[-1]
                raise GenerationError(f"editor command exited with {proc.returncode}: {last[:300]}")
            if not tmp.is_file():
                raise GenerationError("editor command exited 0 but wrote nothing at {output}")
            _check_readable(tmp, "editor output")


class FolderImport:
    def __init__(self, folder: str | os.PathLike[str], fps: int = 8):
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise ReviseInputError(f"--videos folder {self.folder} does not exist")
        self.fps = fps
        self.spec = {"kind": "videos", "folder": str(self.folder)}
        self.default_method = self.folder.name

    def find(self, item_id: str) -> Path | None:
        for ext in VIDEO_EXTENSIONS:
            for name in (f"{item_id}{ext}", f"{item_id}{ext.upper()}"):
                if (self.folder / name).is_file():
                    return self.folder / name
        return self.folder / item_id if (self.folder / item_id).is_dir() else None

    def __call__(self, item: BenchItem, out: Path) -> None:
        src = self.find(item.id)
        if src is None:
            raise GenerationError(f"no {item.id}.mp4 (or other video, or frame folder {item.id}/) in {self.folder}")
        if src.suffix.lower() == ".mp4":
            _check_readable(src, "video")
            with atomic_path(out, out.suffix) as tmp:
                shutil.copyfile(src, tmp)
            return
        try:
            n, h, w = probe(src)
            write_video(out, read_video(src, n, h - h % 2, w - w % 2), fps=self.fps)
        except ReviseInputError as err:
            raise GenerationError(str(err)) from None


def _check_readable(path: Path, what: str) -> None:
    try:
        count_frames(path)
    except ReviseInputError as err:
        raise GenerationError(f"{what} is not a readable video: {err}") from None


@dataclasses.dataclass
class GenerationSummary:
    rank: int
    world: int
    shard: int               # items in this rank's shard
    generated: int = 0
    skipped: int = 0         # already had a video
    failed: int = 0
    kept_failed: int = 0     # failed in an earlier run, not retried
    seconds: float = 0.0


def generate(run: RunDir, items: list[BenchItem], editor: Editor, *, retry_failed: bool = False,
             progress: bool = True, env: dict[str, str] | None = None) -> GenerationSummary:
    from tqdm.auto import tqdm

    rank, world = rank_world(env)
    mine = shard(items, rank, world)
    log = RecordLog(run.path / log_name(GENERATION_LOG, rank, world))
    earlier = run.generation_records()
    summary = GenerationSummary(rank, world, len(mine))
    todo = []
    for item in mine:
        if run.video(item.id).is_file():
            summary.skipped += 1
        elif earlier.get(item.id, {}).get("status") == "failed" and not retry_failed:
            summary.kept_failed += 1
        else:
            todo.append(item)
    start = time.perf_counter()
    desc = "generating" if world == 1 else f"generating (rank {rank}/{world})"
    for item in tqdm(todo, desc=desc, unit="item", position=rank, disable=not progress, dynamic_ncols=True):
        t0 = time.perf_counter()
        try:
            editor(item, run.video(item.id))
        except (GenerationError, ReviseInputError) as err:
            log.append({"id": item.id, "status": "failed", "reason": str(err)})
            summary.failed += 1
            continue
        log.append({"id": item.id, "status": "ok", "seconds": round(time.perf_counter() - t0, 3)})
        summary.generated += 1
    summary.seconds = time.perf_counter() - start
    return summary
