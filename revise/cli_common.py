"""What every ``revise`` command line shares: the one-line usage errors, the sampling options, and
quiet library loading. (``revise/cli.py`` and ``revise/bench/cli.py`` both build on it.)"""

from __future__ import annotations

import argparse
import os


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x352 (WIDTHxHEIGHT), not '{text}'") from None
    return w, h


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults: the model's own, the released values for real models)")
    g.add_argument("--frames", type=int, help="frames to edit, 4n+1 (released: 17)")
    g.add_argument("--size", type=parse_size, metavar="WxH", help="output size, multiples of 16 (released: 640x352)")
    g.add_argument("--steps", type=int, help="denoising steps (released: 40)")
    g.add_argument("--guidance", type=float,
                   help="guidance g in the released convention cond + g*(cond - uncond), "
                        "i.e. usual CFG scale g+1; 0 disables it (released: 3.0)")
    g.add_argument("--shift", type=float, help="flow time shift (released: 5.0)")
    g.add_argument("--solver", choices=["unipc", "euler"], default="unipc", help="sampler (default: unipc)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="weights and activations (default: bfloat16 on a GPU, float32 on a CPU)")


def quiet_libraries() -> None:
    """Keep transformers/diffusers load chatter off the terminal; our own progress bar stays."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import diffusers
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
