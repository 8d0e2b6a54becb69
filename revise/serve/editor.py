"""Runs the web page's jobs on one device: the pipeline is loaded once, each job is one (best-of-N)
edit at the model's own sampling defaults, written as two H.264 mp4s the browser plays: the source
as the model saw it and the edit. It also says when an instruction's words or a clip lie outside what
the model knows (:mod:`.domain`)."""

from __future__ import annotations

import time
from typing import Any

from ..models.revise_model import sampling_defaults
from ..pipelines.best_of import edit_best_of
from ..pipelines.edit import read_source
from ..pipelines.sampling_options import resolve_device
from ..video import write_video
from .domain import CRITIC_NOTE, clip_domain, clip_warning, knows_only_rve_synth, load_tokenizer, unknown_words
from .jobs import Job

SOURCE, EDITED = "source.mp4", "edited.mp4"


class Editor:
    def __init__(self, model: str, device: str | None = None, dtype: str | None = None, steps: int | None = None,
                 domain_check: bool | None = None):
        """``domain_check``: warn about clips unlike RVE-Synth (default: for models whose tokenizer is
        RVE-Synth's word vocabulary, see :func:`.domain.knows_only_rve_synth`)."""
        self.model_name, self.steps = model, steps
        self.device, self.dtype = resolve_device(device, dtype)   # an unknown or absent device fails now
        self.defaults = sampling_defaults(model)      # fails now, not in a thread, for an unknown model
        self.tokenizer = load_tokenizer(model)       # no weights: the instruction's words are checked at once
        self.domain_check = knows_only_rve_synth(self.tokenizer) if domain_check is None else domain_check
        self.pipe = None

    def unknown_words(self, text: str) -> list[str]:
        return unknown_words(self.tokenizer, text)

    def load(self) -> None:
        from ..pipelines.edit import ReviseEditPipeline

        self.pipe = ReviseEditPipeline.from_pretrained(self.model_name, device=self.device, dtype=self.dtype)

    def run(self, job: Job) -> dict[str, Any]:
        d, start = self.defaults, time.perf_counter()
        steps = self.steps or d.num_inference_steps
        job.report(0.0, "reading the clip")
        source, vlm_frames = read_source(job.input_path, d.num_frames, d.height, d.width, self.pipe.model.prompt_style)
        job.release_input()
        domain = clip_domain(source)
        warning = clip_warning(domain) if self.domain_check else None
        if warning:
            job.warnings.append(warning)
        out = edit_best_of(self.pipe, source, job.instruction, job.best_of, progress=job.report, vlm_frames=vlm_frames,
                           num_frames=d.num_frames, height=d.height, width=d.width, num_inference_steps=steps)
        job.report(1.0, "writing the videos")
        write_video(job.folder / SOURCE, out.source, fps=d.fps)
        write_video(job.folder / EDITED, out.video, fps=d.fps)
        return {"scores": out.scores, "candidates": out.candidates, "seed": out.seed, "steps": steps,
                "frames": d.num_frames, "width": d.width, "height": d.height, "device": self.device,
                "seconds": round(time.perf_counter() - start, 2), "domain": {**domain, "checked": self.domain_check},
                "critic_note": CRITIC_NOTE, "files": [SOURCE, EDITED]}
