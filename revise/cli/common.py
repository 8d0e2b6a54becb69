"""What the ``revise`` commands share: the argument parser class, the sampling and model
arguments, the default model, one-line errors and warnings, progress bars."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES_DIR = ASSETS / "examples"
# The embedded default: the trained mini model shipped in the package (docs/results.md); the tiny
# random-weight preset only in a checkout that lacks it.
BUNDLED_MODEL = ASSETS / "models" / "mini"
DEFAULT_MODEL = str(BUNDLED_MODEL) if (BUNDLED_MODEL / "revise_config.json").is_file() else "tiny"
#: What ``--model`` accepts besides a folder: the short name of the embedded trained model, and the
#: presets (``tiny``, ``mini``, ``wan2.1-1.3b``), which are seeded random weights in a model's shapes.
DEFAULT_NAME = "default"
MODEL_HELP = (f"model folder, '{DEFAULT_NAME}' (the embedded trained mini model), or a preset name: tiny, mini, "
              "wan2.1-1.3b (seeded random weights in those shapes: 'mini' is NOT the trained model)")


def _model(text: str) -> str:
    """``--model``: the short name ``default`` is the embedded trained model's folder."""
    return DEFAULT_MODEL if text == DEFAULT_NAME else text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x352 (WIDTHxHEIGHT), not '{text}'") from None
    return w, h


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults: the model's own, the released values for real models)")
    g.add_argument("--frames", type=int, help="frames to edit, 4n+1 (released: 17)")
    g.add_argument("--size", type=_size, metavar="WxH",
                   help="output size, multiples of 16, at most 8192 a side (released: 640x352); an edit that "
                        "needs more memory than the device has free is refused before it starts")
    g.add_argument("--steps", type=int, help="denoising steps, 1 to 1000 (released: 40)")
    g.add_argument("--guidance", type=float,
                   help="guidance g >= 0 in the released convention cond + g*(cond - uncond), "
                        "i.e. usual CFG scale g+1; 0 disables it (released: 3.0)")
    g.add_argument("--shift", type=float, help="flow time shift, more than 0 (released: 5.0)")
    g.add_argument("--solver", choices=["unipc", "euler"], default="unipc", help="sampler (default: unipc)")
    g.add_argument("--seed", type=int, default=0, help="noise seed, 0 or more (default: 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available); a device "
                                                  "this machine lacks is refused")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="weights and activations (default: bfloat16 on a GPU, float32 on a CPU)")


def _check_out(out: str) -> Path:
    from ..pipelines.edit_file import check_output_path
    return check_output_path(out)


def _sampling(args: argparse.Namespace, model: str):
    """The edit's checked settings: the command's arguments, else the model's defaults."""
    from ..pipelines.sampling_options import resolve_sampling

    width, height = args.size or (None, None)
    return resolve_sampling(model, frames=args.frames, height=height, width=width, steps=args.steps,
                            guidance=args.guidance, shift=args.shift, solver=args.solver, seed=args.seed)


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def _fail(message: str, code: int) -> int:
    """One line on stderr, on a line of its own: progress bars cut short are closed first."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(tqdm, "tqdm", object)._instances if tqdm else []):
        bar.close()
    print(f"revise: error: {message}", file=sys.stderr)
    return code


class _ProgressBar:
    """A progress bar for ``progress(fraction, stage)`` callbacks (best-of's candidates and critic)."""

    def __init__(self, desc: str):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=1000, desc=desc, leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def __call__(self, fraction: float, stage: str) -> None:
        self.bar.n = min(1000, round(fraction * 1000))
        self.bar.set_postfix_str(stage, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _warn(message: str) -> None:
    print(f"revise: warning: {message}", file=sys.stderr)


def _quiet_libraries() -> None:
    """Keep transformers/diffusers load chatter off the terminal; our own progress bar stays."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import diffusers
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()


def _version() -> str:
    from .. import __version__
    return __version__


def add_lora_args(p: argparse.ArgumentParser) -> None:
    """--lora and --lora-scale (edit and serve); ``models.lora.lora_option`` checks them."""
    p.add_argument("--lora", default=None, metavar="PATH",
                   help="a LoRA adapter for the DiT: a diffusers-format .safetensors file, or a folder holding "
                        "pytorch_lora_weights.safetensors (what 'revise train' writes to OUT/lora)")
    p.add_argument("--lora-scale", type=float, default=1.0, metavar="S",
                   help="the adapter's strength: 0 leaves it out, 1 as trained (default: 1)")


def add_placement_args(p: argparse.ArgumentParser) -> None:
    """--offload, --quantize and --encoder-weights: how the model sits on the device (edit and serve)."""
    p.add_argument("--offload", choices=["auto", "none", "stages"], default="auto",
                   help="stages: keep the weights in host memory and put each stage's (VAE encoder, VLM, T5, "
                        "DiT, VAE decoder) on the device only while it runs, for GPUs too small for the whole "
                        "model; auto (default): stages only when the model does not fit the GPU's free memory, "
                        "keeping on it the components that fit; none: the whole model on the device")
    p.add_argument("--quantize", choices=["fp8"], default=None,
                   help="fp8: the DiT's linear layers in FP8 (GPUs of compute capability 8.9+: Ada, Hopper)")
    p.add_argument("--encoder-weights", choices=["int8"], default=None,
                   help="int8: the VLM's and T5's linear layers with 8-bit weights (half their memory)")


def check_placement(args: argparse.Namespace, options, device: str, dtype, copies: int = 1):
    """The edit's placement (``plan_offload``), its memory checked: before any model is loaded."""
    from ..models.fp8 import check_fp8_device
    from ..pipelines.sampling_options import check_memory, plan_offload

    if args.quantize == "fp8":
        check_fp8_device(device)
    plan = plan_offload(args.model, options, device, dtype, args.offload, copies=copies,
                        encoder_weights=args.encoder_weights)
    check_memory(args.model, options, device, dtype, copies=copies, offload=plan.offload, keep=plan.keep,
                 encoder_weights=args.encoder_weights)
    return plan
