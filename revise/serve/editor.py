"""Runs the web page's jobs on one device: the pipeline is loaded once, each job is one (best-of-N)
edit at the model's own sampling defaults (``--steps`` apart; resolved and checked once by
:func:`~revise.pipelines.sampling_options.resolve_sampling`), made and written by
:func:`~revise.pipelines.edit_file.edit_to_file` as the command line's edits are (with their
metadata), beside the source as the model saw it: two H.264 mp4s the browser plays. It also says
when an instruction's words or a clip lie outside what the model knows (:mod:`.domain`)."""

from __future__ import annotations

import time
from typing import Any

from ..pipelines.edit import read_source
from ..pipelines.edit_file import edit_to_file
from ..pipelines.sampling_options import resolve_device, resolve_sampling
from ..video import write_video
from .domain import CRITIC_NOTE, clip_domain, clip_warning, knows_only_rve_synth, load_tokenizer, unknown_words
from .jobs import Job

SOURCE, EDITED = "source.mp4", "edited.mp4"


class Editor:
    def __init__(self, model: str, device: str | None = None, dtype: str | None = None, steps: int | None = None,
                 domain_check: bool | None = None):
        """``domain_check``: warn about clips unlike RVE-Synth (default: for models whose tokenizer is
        RVE-Synth's word vocabulary, see :func:`.domain.knows_only_rve_synth`)."""
        self.model_name = model
        self.options = resolve_sampling(model, steps=steps)       # an unknown model or bad --steps fails now
        self.device, self.dtype = resolve_device(device, dtype)   # an unknown or absent device fails now
        self.tokenizer = load_tokenizer(model)       # no weights: the instruction's words are checked at once
        self.domain_check = knows_only_rve_synth(self.tokenizer) if domain_check is None else domain_check
        self.pipe = None

    def unknown_words(self, text: str) -> list[str]:
        return unknown_words(self.tokenizer, text)

    def load(self) -> None:
        from ..pipelines.edit import ReviseEditPipeline

        self.pipe = ReviseEditPipeline.from_pretrained(self.model_name, device=self.device, dtype=self.dtype)

    def run(self, job: Job) -> dict[str, Any]:
        o, start = self.options, time.perf_counter()
        job.report(0.0, "reading the clip")
        source, vlm_frames = read_source(job.input_path, o.num_frames, o.height, o.width, self.pipe.model.prompt_style)
        job.release_input()
        domain = clip_domain(source)
        warning = clip_warning(domain) if self.domain_check else None
        if warning:
            job.warnings.append(warning)
        out = edit_to_file(self.pipe, source, job.instruction, job.folder / EDITED, o, model=self.model_name,
                           best_of=job.best_of, score=True, progress=job.report, vlm_frames=vlm_frames)
        job.report(1.0, "writing the videos")
        write_video(job.folder / SOURCE, out.source, fps=o.fps)
        return {"scores": out.scores, "candidates": out.candidates, "seed": out.seed, "steps": o.num_inference_steps,
                "frames": o.num_frames, "width": o.width, "height": o.height, "device": self.device,
                "seconds": round(time.perf_counter() - start, 2), "domain": {**domain, "checked": self.domain_check},
                "critic_note": CRITIC_NOTE, "files": [SOURCE, EDITED]}
