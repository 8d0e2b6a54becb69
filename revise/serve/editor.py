"""Runs the web page's jobs on one device: the pipeline is loaded once, each job is one (best-of-N)
edit at the model's own sampling defaults, written as two H.264 mp4s the browser plays: the source
as the model saw it and the edit. It also says when an instruction's words or a clip lie outside what
the model knows (:mod:`.domain`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import ReviseInputError
from ..models.fp8 import check_fp8_device
from ..models.lora import lora_option
from ..models.revise_model import sampling_defaults
from ..pipelines.best_of import edit_best_of
from ..pipelines.edit import check_quantize_options, read_source
from ..pipelines.sampling_options import resolve_device
from ..pipelines.stages import OFFLOAD_CHOICES
from ..video import write_video
from .domain import CRITIC_NOTE, clip_domain, clip_warning, knows_only_rve_synth, load_tokenizer, unknown_words
from .jobs import Job

SOURCE, EDITED = "source.mp4", "edited.mp4"


class Editor:
    def __init__(self, model: str, device: str | None = None, dtype: str | None = None, steps: int | None = None,
                 domain_check: bool | None = None, *, lora: str | Path | None = None, lora_scale: float = 1.0,
                 offload: str | None = "auto", quantize: str | None = None, encoder_weights: str | None = None):
        """``domain_check``: warn about clips unlike RVE-Synth (default: for models whose tokenizer is
        RVE-Synth's word vocabulary, see :func:`.domain.knows_only_rve_synth`). ``lora``, ``lora_scale``:
        an adapter for the DiT (``pipe.load_lora_weights``); ``offload``, ``quantize``,
        ``encoder_weights``: as ``ReviseEditPipeline.from_pretrained`` takes them. All are checked now,
        the adapter file included, before any weights load."""
        self.model_name, self.steps = model, steps
        self.device, self.dtype = resolve_device(device, dtype)   # an unknown or absent device fails now
        check_quantize_options(quantize, encoder_weights)
        if offload is not None and offload not in OFFLOAD_CHOICES:
            raise ReviseInputError(f"unknown offload {offload!r}: choose one of {', '.join(OFFLOAD_CHOICES)}")
        if quantize == "fp8":
            check_fp8_device(self.device)
        self.lora = lora_option(lora, lora_scale, flag="lora")
        self.lora_scale, self.offload, self.quantize, self.encoder_weights = lora_scale, offload, quantize, encoder_weights
        self.defaults = sampling_defaults(model)      # fails now, not in a thread, for an unknown model
        self.tokenizer = load_tokenizer(model)       # no weights: the instruction's words are checked at once
        self.domain_check = knows_only_rve_synth(self.tokenizer) if domain_check is None else domain_check
        self.pipe = None

    def unknown_words(self, text: str) -> list[str]:
        return unknown_words(self.tokenizer, text)

    def load(self) -> None:
        from ..pipelines.edit import ReviseEditPipeline

        pipe = ReviseEditPipeline.from_pretrained(self.model_name, device=self.device, dtype=self.dtype,
                                                  offload=self.offload, encoder_weights=self.encoder_weights)
        if self.lora is not None:
            pipe.load_lora_weights(self.lora, scale=self.lora_scale)
        if self.quantize == "fp8":
            pipe.enable_fp8()                  # after the adapter, which it merges in
        self.pipe = pipe

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
                "critic_note": CRITIC_NOTE, "files": [SOURCE, EDITED], "lora": self.pipe.lora_adapters}
