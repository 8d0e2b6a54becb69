"""Read a clip, edit it, write the mp4: the one wrapper the command line, the bench harness and the
web page share.

:func:`check_output_path` runs before any work, so a path that cannot be written is found in a
moment, not after the edit. The mp4 records what made it (:func:`edit_metadata`): the
instruction as its ``title`` and a JSON ``comment`` with the model, seed and sampling settings,
which :func:`read_edit_metadata` reads back.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path
from typing import Callable

import torch

from ..errors import ReviseInputError, is_storage_error, storage_error
from .sampling_options import SamplingOptions

Progress = Callable[[float, str], None]


@dataclasses.dataclass
class EditResult:
    video: torch.Tensor                 # the edit [3, F, H, W] in [-1, 1]
    source: torch.Tensor                # the source as the model saw it, same shape
    seed: int                           # the kept candidate's seed
    scores: dict[str, float]            # the critic's P(Yes) of the kept edit (empty without the critic)
    candidates: list[dict]              # best-of's candidates: {"seed", "p_yes"}
    timings: dict[str, float]           # seconds per stage


def check_output_path(out: str | os.PathLike[str], suffixes: tuple[str, ...] = (".mp4",)) -> Path:
    """Check that ``out`` can be written, creating nothing that stays: its suffix, that it is not a
    folder, and that a file can be made in its folder (or the nearest folder above it that exists).
    A path that cannot exist is a ``ReviseInputError``; a read-only or forbidden folder a
    ``ReviseEnvironmentError`` (as a failed write would be)."""
    from ..atomic import fresh_file

    out = Path(out).expanduser()
    if out.suffix.lower() not in suffixes:
        raise ReviseInputError(f"--out must be a {' or '.join(suffixes)} file, not '{out}'")
    if out.is_dir():
        raise ReviseInputError(f"--out '{out}' is a folder")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        fresh_file(folder, ".revise-write-check-").unlink()
    except OSError as err:
        if is_storage_error(err):
            raise storage_error(out, err, "nothing was written there") from None
        raise ReviseInputError(f"cannot write '{out}': {err.strerror or err}") from None
    return out


def edit_metadata(instruction: str, options: SamplingOptions, model: str, seed: int | None = None,
                  lora: dict[str, dict] | None = None) -> dict[str, str]:
    """The mp4 tags of an edit: ``title`` the instruction, ``comment`` JSON of how it was made
    (with ``lora``, the pipeline's LoRA adapters: name -> path and scale)."""
    from .. import __version__

    made = {"instruction": instruction, "model": str(model), "seed": options.seed if seed is None else seed,
            **{k: v for k, v in dataclasses.asdict(options).items() if k != "seed"}, "revise": __version__}
    if lora:
        made["lora"] = lora
    return {"title": instruction, "comment": json.dumps(made, ensure_ascii=False)}


def read_edit_metadata(path: str | os.PathLike[str]) -> dict:
    """What :func:`edit_metadata` wrote into an mp4 (``{}`` if it holds none)."""
    import av

    with av.open(str(path)) as container:
        comment = container.metadata.get("comment", "")
    try:
        made = json.loads(comment)
    except ValueError:
        return {}
    return made if isinstance(made, dict) else {}


def edit_clip(pipe, source: torch.Tensor, instruction: str, options: SamplingOptions, *, best_of: int = 1,
              score: bool = False, progress: Progress | None = None, bar: bool = False,
              vlm_frames=None) -> EditResult:
    """Edit ``source`` [3, F, H, W] once, or ``best_of`` times keeping the critic's favourite. With
    ``score`` (or best-of) the critic also rates the kept edit. ``progress(fraction, stage)`` is told
    along the way; ``bar`` shows the pipeline's own progress bar for a single edit. ``vlm_frames``: what
    the VLM sees in the ``release`` prompt style (:func:`~revise.pipelines.edit.read_source`)."""
    if best_of > 1 or score:
        from .best_of import edit_best_of

        best = edit_best_of(pipe, source, instruction, best_of, seed=options.seed, progress=progress,
                            vlm_frames=vlm_frames, **options.pipeline_kwargs())
        return EditResult(best.video, best.source, best.seed, best.scores, best.candidates, best.timings)

    def on_step(i: int, steps: int) -> None:
        progress(i / steps, f"denoising step {i} of {steps}")

    out = pipe(source, instruction, seed=options.seed, progress=bar, callback=on_step if progress else None,
               vlm_frames=vlm_frames, **options.pipeline_kwargs())
    return EditResult(out.video[0], out.source[0], options.seed, {}, [], out.timings)


def edit_to_file(pipe, source: torch.Tensor, instruction: str, out: str | os.PathLike[str],
                 options: SamplingOptions, *, model: str, best_of: int = 1, score: bool = False,
                 progress: Progress | None = None, bar: bool = False, vlm_frames=None) -> EditResult:
    """:func:`edit_clip`, then the edit written to ``out`` (atomically, with :func:`edit_metadata`)."""
    from ..video import write_video

    result = edit_clip(pipe, source, instruction, options, best_of=best_of, score=score, progress=progress, bar=bar,
                       vlm_frames=vlm_frames)
    made = edit_metadata(instruction, options, model, result.seed, getattr(pipe, "lora_adapters", None))
    write_video(out, result.video, fps=options.fps, metadata=made)
    return result
