"""Generation: make RUN_DIR/videos/{id}.mp4 for every manifest item with one of three editors.

* :class:`ModelEditor`: a ReViSE model (preset or folder) through :class:`ReviseEditPipeline`,
  ``batch_size`` items at a time. Each item's starting noise comes from its own seed,
  :func:`item_seed` (the run's seed and the item's position in the manifest), so an edit depends
  neither on the batch it was made in (but for float rounding) nor on the order items are made
  (ranks, resumed runs); the mp4 records that seed, and ``revise edit --seed`` remakes the edit.
* :class:`CommandEditor`: any external editor, one shell command per item from a template with
  ``{source} {instruction} {output} {id} {target} {subset} {category}`` (each shell-quoted).
* :class:`FolderImport`: a folder of finished outputs named by item id (baselines such as InsV2V,
  InsViE, VACE, Omni-Video): ``{id}.mp4`` is copied, other videos and frame folders are re-encoded.

:func:`generate` skips items whose video exists, takes this rank's shard (``ranks``), and logs
one record per item (ok with seconds, or failed with the reason). A failed item is tried again
only with ``retry_failed``. :func:`generate_folder` runs the same editors into a flat folder of
``{id}.mp4`` or ``{id}.npy`` with no run folder around it (``revise synth generate``); both go
through :func:`edit_jobs`, the one generation loop.
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
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

import torch

from ..atomic import atomic_path
from ..errors import ReviseInputError
from ..video import VIDEO_EXTENSIONS, count_frames, read_video, write_video
from .frames import probe
from .manifest import BenchItem
from .ranks import local_device, log_name, rank_world, shard
from .rundir import GENERATION_LOG, RecordLog, RunDir

if TYPE_CHECKING:
    from ..pipelines.sampling_options import SamplingOptions

#: Item seeds: ``seed * SEED_STRIDE + position`` (:func:`item_seed`).
SEED_STRIDE = 1_000_003
#: How ModelEditor seeds its items, recorded in run.json: a run folder made another way is not resumed.
SEEDING = f"per item: seed * {SEED_STRIDE} + position in the manifest"


class GenerationError(Exception):
    """One item could not be generated; the reason is recorded and the run goes on."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One item to generate: its position in the manifest (its seed's), the item, where it goes."""
    position: int
    item: BenchItem
    out: Path


class Editor(Protocol):
    spec: dict[str, Any]        # what made the videos, recorded in run.json and checked on resume
    default_method: str
    batch_size: int             # jobs per edit_batch call

    def edit_batch(self, jobs: Sequence[Job]) -> list[GenerationError | None]:
        """Write each job's output; per job None (written) or why it failed."""
        ...


def item_seed(seed: int, position: int) -> int:
    """The seed of the item at ``position`` in a run seeded ``seed`` (a valid ``--seed`` itself)."""
    from ..pipelines.sampling_options import MAX_SEED

    return (seed * SEED_STRIDE + position) % (MAX_SEED + 1)


def item_noise(shape: Sequence[int], seed: int, position: int) -> torch.Tensor:
    """That item's starting noise: float32 ``shape`` from a CPU generator seeded by :func:`item_seed`
    (what ``pipe(seed=item_seed(...))`` draws for one clip)."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(item_seed(seed, position)))


class OneByOne:
    """An editor that makes one item at a time (``__call__(item, out)``, raising on failure)."""
    batch_size = 1

    def __call__(self, item: BenchItem, out: Path) -> None:
        raise NotImplementedError

    def edit_batch(self, jobs: Sequence[Job]) -> list[GenerationError | None]:
        outcomes: list[GenerationError | None] = []
        for job in jobs:
            try:
                self(job.item, job.out)
                outcomes.append(None)
            except (GenerationError, ReviseInputError) as err:
                outcomes.append(err if isinstance(err, GenerationError) else GenerationError(str(err)))
        return outcomes


class ModelEditor:
    """A ReViSE model's edits, ``batch_size`` items per pipeline call, each from its own noise
    (:func:`item_noise`); the mp4s record how they were made (:func:`~revise.pipelines.edit_file.edit_metadata`)."""

    def __init__(self, model: str, *, frames: int | None = None, size: tuple[int, int] | None = None,
                 steps: int | None = None, guidance: float | None = None, shift: float | None = None,
                 solver: str = "unipc", seed: int = 0, device: str | None = None, dtype: str | None = None,
                 batch_size: int = 1):
        from ..pipelines.sampling_options import resolve_device, resolve_sampling

        width, height = size or (None, None)                # an unknown preset or bad folder fails here
        options = resolve_sampling(model, frames=frames, height=height, width=width, steps=steps,
                                   guidance=guidance, shift=shift, solver=solver, seed=seed)
        self._setup(str(Path(model).resolve()) if Path(model).is_dir() else model, options, batch_size)
        self.device, self.dtype = resolve_device(device or local_device(), dtype)
        self.default_method = Path(model).name if Path(model).is_dir() else f"ReViSE-{model}"
        self._pipe = None

    @classmethod
    def of_pipeline(cls, pipe, options: SamplingOptions, *, batch_size: int = 1, model: str = "") -> "ModelEditor":
        """An editor on a pipeline already loaded (``model`` names it in the mp4s' metadata)."""
        editor = cls.__new__(cls)
        editor._setup(model, options, batch_size)
        editor.device, editor.dtype = str(pipe.device), pipe.model.dtype
        editor.default_method = model or "ReViSE"
        editor._pipe = pipe
        return editor

    def _setup(self, model: str, options: SamplingOptions, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ReviseInputError(f"the batch size must be a whole number of at least 1, not {batch_size!r}")
        self.model, self.options, self.batch_size = model, options, batch_size
        self.kw = {**options.pipeline_kwargs(), "seed": options.seed}
        self.spec = {"kind": "model", "model": model, **self.kw, "seeding": SEEDING}

    def pipeline(self):
        """The pipeline, loaded on first use."""
        if self._pipe is None:
            from ..pipelines.edit import ReviseEditPipeline

            self._pipe = ReviseEditPipeline.from_pretrained(self.model, device=self.device, dtype=self.dtype)
        return self._pipe

    def edit_batch(self, jobs: Sequence[Job]) -> list[GenerationError | None]:
        from ..pipelines.sampling_options import check_instructions

        o = self.options
        outcomes: list[GenerationError | None] = [None] * len(jobs)
        ready, clips = [], []
        for k, job in enumerate(jobs):        # an unreadable source or unusable instruction fails alone
            try:
                check_instructions([job.item.instruction])
                clips.append(read_video(job.item.source_video_path, o.num_frames, o.height, o.width))
                ready.append(k)
            except ReviseInputError as err:
                outcomes[k] = GenerationError(str(err))
        if ready:
            try:
                self._edit([jobs[k] for k in ready], torch.stack(clips))
            except ReviseInputError as err:
                for k in ready:
                    outcomes[k] = GenerationError(str(err))
        return outcomes

    def _edit(self, jobs: Sequence[Job], clips: torch.Tensor) -> None:
        from ..pipelines.edit_file import edit_metadata

        pipe, o = self.pipeline(), self.options
        shape = pipe.latent_shape(o.num_frames, o.height, o.width)
        noise = torch.stack([item_noise(shape, o.seed, job.position) for job in jobs])
        out = pipe(video=clips, instruction=[job.item.instruction for job in jobs], latents=noise, progress=False,
                   **o.pipeline_kwargs())
        lora = getattr(pipe, "lora_adapters", None)
        for job, clip in zip(jobs, out.video.cpu()):
            made = edit_metadata(job.item.instruction, o, self.model, item_seed(o.seed, job.position), lora)
            write_video(job.out, clip, fps=o.fps, metadata=made)


class CommandEditor(OneByOne):
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


class FolderImport(OneByOne):
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


def edit_jobs(jobs: Sequence[Job], editor: Editor, *, progress: bool = True, desc: str = "generating",
              position: int = 0) -> Iterator[tuple[Job, GenerationError | None, float]]:
    """The one generation loop: ``jobs`` in batches of ``editor.batch_size``; yields each job, why it
    failed (None: written) and its share of its batch's seconds."""
    from tqdm.auto import tqdm

    size = max(1, getattr(editor, "batch_size", 1))
    with tqdm(total=len(jobs), desc=desc, unit="item", position=position, disable=not progress,
              dynamic_ncols=True) as bar:
        for start in range(0, len(jobs), size):
            chunk = jobs[start:start + size]
            t0 = time.perf_counter()
            outcomes = editor.edit_batch(chunk)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for job, outcome in zip(chunk, outcomes):
                yield job, outcome, seconds
            bar.update(len(chunk))


def generate(run: RunDir, items: list[BenchItem], editor: Editor, *, retry_failed: bool = False,
             progress: bool = True, env: dict[str, str] | None = None) -> GenerationSummary:
    rank, world = rank_world(env)
    mine = shard(list(enumerate(items)), rank, world)
    log = RecordLog(run.path / log_name(GENERATION_LOG, rank, world))
    earlier = run.generation_records()
    summary = GenerationSummary(rank, world, len(mine))
    todo = []
    for position, item in mine:
        if run.video(item.id).is_file():
            summary.skipped += 1
        elif earlier.get(item.id, {}).get("status") == "failed" and not retry_failed:
            summary.kept_failed += 1
        else:
            todo.append(Job(position, item, run.video(item.id)))
    start = time.perf_counter()
    desc = "generating" if world == 1 else f"generating (rank {rank}/{world})"
    for job, failure, seconds in edit_jobs(todo, editor, progress=progress, desc=desc, position=rank):
        if failure is not None:
            log.append({"id": job.item.id, "status": "failed", "reason": str(failure)})
            summary.failed += 1
        else:
            log.append({"id": job.item.id, "status": "ok", "seconds": round(seconds, 3)})
            summary.generated += 1
    summary.seconds = time.perf_counter() - start
    return summary


def generate_folder(items: list[BenchItem], editor: Editor, out_dir: str | os.PathLike[str], *,
                    clip_format: str = "mp4", progress: bool = True, desc: str = "generating") -> Path:
    """Every item into ``out_dir/{id}.{clip_format}`` (mp4, or npy: the uint8 array), with no run folder
    or log: items whose file exists are skipped (a killed run resumes), and the first item that
    fails stops the run with its reason (``ReviseInputError``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [Job(position, item, out_dir / f"{item.id}.{clip_format}") for position, item in enumerate(items)
            if not (out_dir / f"{item.id}.{clip_format}").is_file()]
    for job, failure, _ in edit_jobs(todo, editor, progress=progress, desc=desc):
        if failure is not None:
            raise ReviseInputError(f"item {job.item.id}: {failure}")
    return out_dir
