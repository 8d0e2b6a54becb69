"""``revise edit``: one edit (or the best of N by the model's critic) of a clip by an instruction."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ReviseInputError
from .common import (DEFAULT_MODEL, DEFAULT_NAME, MODEL_HELP, _add_sampling_args, _check_out, _model, _ProgressBar,
                     _quiet_libraries, _sampling, _warn, add_lora_args, add_placement_args, check_placement)

def add_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit a video by an instruction",
                       description="Edit a clip by an instruction that may need reasoning, write an H.264 mp4.")
    p.add_argument("--model", type=_model, default=DEFAULT_MODEL, help=MODEL_HELP + f" (default: {DEFAULT_NAME})")
    p.add_argument("--video", required=True, help="source clip: mp4, webm, gif ... or a folder of frames")
    p.add_argument("--instruction", required=True, help="what to change, e.g. 'show the scene one second later'")
    p.add_argument("--out", required=True, help="output .mp4 path")
    p.add_argument("--best-of", type=int, default=1, metavar="N",
                   help="make N candidates (seeds SEED .. SEED+N-1) and keep the one the model's own critic "
                        "rates highest; prints each candidate's P(Yes) (default: 1, no critic)")
    add_lora_args(p)
    add_placement_args(p)
    _add_sampling_args(p)
    p.set_defaults(func=cmd_edit)


def cmd_edit(args: argparse.Namespace) -> int:
    from ..pipelines.best_of import MAX_BEST_OF
    from ..models.lora import lora_option
    from ..pipelines.sampling_options import check_instructions, resolve_device

    out = _check_out(args.out)
    options = _sampling(args, args.model)           # checks the model exists before anything loads
    check_instructions([args.instruction])
    if not 1 <= args.best_of <= MAX_BEST_OF:
        raise ReviseInputError(f"--best-of must be from 1 to {MAX_BEST_OF}, not {args.best_of}")
    lora = lora_option(args.lora, args.lora_scale)
    device, dtype = resolve_device(args.device, args.dtype)
    placement = check_placement(args, options, device, dtype, copies=min(args.best_of, 2))
    _edit(args.model, Path(args.video), args.instruction, out, options, device, dtype, best_of=args.best_of,
          lora=lora, lora_scale=args.lora_scale, offload=placement, quantize=args.quantize,
          encoder_weights=args.encoder_weights)
    return 0


def _edit(model_name: str, video_path: Path, instruction: str, out: Path, options, device: str, dtype, *,
          best_of: int = 1, comparison: Path | None = None, reference=None, lora: Path | None = None,
          lora_scale: float = 1.0, offload=None, quantize: str | None = None, encoder_weights: str | None = None):
    """Edit one clip (best of ``best_of`` seeds by the critic), write the mp4 (and a middle-frame PNG:
    source | edit [| reference]); return the pipeline, the source clip [3, F, H, W] and the edit."""
    from ..models.revise_model import prompt_style_of
    from ..models.tokenizers import instruction_warnings
    from ..pipelines.edit import ReviseEditPipeline, read_source
    from ..pipelines.edit_file import edit_to_file
    from ..video import side_by_side, to_uint8, write_image

    start = time.perf_counter()
    o = options
    # bad video fails before the model loads; read as the model's prompt style reads a file
    source, vlm_frames = read_source(video_path, o.num_frames, o.height, o.width, prompt_style_of(model_name))
    _quiet_libraries()
    pipe = ReviseEditPipeline.from_pretrained(model_name, device=device, dtype=dtype, offload=offload,
                                              encoder_weights=encoder_weights)
    if lora is not None:
        pipe.load_lora_weights(lora, scale=lora_scale)
    if quantize == "fp8":
        pipe.enable_fp8()           # after the adapter, which it merges in
    for note in instruction_warnings(instruction, pipe.model.tokenizer, pipe.model.context_config.max_text_len):
        _warn(note)
    bar = _ProgressBar(f"best of {best_of}") if best_of > 1 else None
    try:
        result = edit_to_file(pipe, source, instruction, out, o, model=model_name, best_of=best_of,
                              progress=bar, bar=bar is None, vlm_frames=vlm_frames)
    finally:
        if bar is not None:
            bar.close()
    if best_of > 1:
        print(f"best of {best_of}: seed {result.seed}; critic P(Yes) per seed: "
              + ", ".join(f"{c['seed']}: {c['p_yes']:.3f}" for c in result.candidates))
        print("kept candidate, P(Yes) per dimension: " + ", ".join(f"{k} {v:.3f}" for k, v in result.scores.items()))
    if comparison is not None:
        clips = [to_uint8(source), to_uint8(result.video.float().cpu())] + ([to_uint8(reference)] if reference is not None else [])
        row = side_by_side(*clips)
        write_image(comparison, row[len(row) // 2])
    took = time.perf_counter() - start
    extra = f", comparison {comparison}" if comparison is not None else ""
    print(f"wrote {out} ({o.num_frames} frames {o.width}x{o.height}, {o.num_inference_steps} {o.solver} steps, "
          f"{device}) in {took:.1f} s{extra}")
    return pipe, source, result.video
