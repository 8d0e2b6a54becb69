"""Runs the web page's jobs on one device: the pipeline is loaded once, each job is one (best-of-N)
edit at the model's own sampling defaults (``--steps`` apart; resolved and checked once by
:func:`~revise.pipelines.sampling_options.resolve_sampling`), made and written by
:func:`~revise.pipelines.edit_file.edit_to_file` as the command line's edits are (with their
metadata), beside the source as the model saw it: two H.264 mp4s the browser plays. It also says
when an instruction's words or a clip lie outside what the model knows (:mod:`.domain`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import ReviseInputError
from ..models.fp8 import check_fp8_device
from ..models.lora import lora_option
from ..pipelines.edit import check_quantize_options, read_source
from ..pipelines.edit_file import edit_to_file
from ..pipelines.sampling_options import resolve_device, resolve_sampling
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
        self.model_name = model
        self.options = resolve_sampling(model, steps=steps)       # an unknown model or bad --steps fails now
        self.device, self.dtype = resolve_device(device, dtype)   # an unknown or absent device fails now
        check_quantize_options(quantize, encoder_weights)
        if offload is not None and offload not in OFFLOAD_CHOICES:
            raise ReviseInputError(f"unknown offload {offload!r}: choose one of {', '.join(OFFLOAD_CHOICES)}")
        if quantize == "fp8":
            check_fp8_device(self.device)
        self.lora = lora_option(lora, lora_scale, flag="lora")
        self.lora_scale, self.offload, self.quantize, self.encoder_weights = lora_scale, offload, quantize, encoder_weights
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
                "critic_note": CRITIC_NOTE, "files": [SOURCE, EDITED], "lora": self.pipe.lora_adapters}
