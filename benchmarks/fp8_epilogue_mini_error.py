"""The FP8 GELU epilogue's error on trained weights: the shipped mini model's edits of the bundled examples (#24).

The loop's A/B (`benchmarks/fp8_loop_variants.py`) measures error on the 1.3B preset's random weights.
This edits each bundled example with the embedded mini model three ways on the CPU (FP8 in emulation,
``enable_fp8(allow_cpu=True)``, linears only): in float32, in FP8 with the one-pass GELU kernel's row
scales (``gelu_epilogue=False``) and in FP8 with the GELU epilogue's single scales
(``gelu_epilogue=True``: the up-projection's input and weight at one scale each), and prints each
FP8 edit's final latents' relative error against the float32 edit's (same seed).

    python benchmarks/fp8_epilogue_mini_error.py        # about 1 minute on 2 CPU cores
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_latency import rel_error  # noqa: E402

from revise import ReviseEditPipeline  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "revise" / "assets"


def edits(mode: str) -> list[torch.Tensor]:
    """Final latents of each bundled example: ``mode`` float32, kernel or epilogue."""
    pipe = ReviseEditPipeline.from_pretrained(ASSETS / "models" / "mini", device="cpu", dtype=torch.float32)
    if mode != "float32":
        pipe.enable_fp8(allow_cpu=True, gelu_epilogue=mode == "epilogue")
    examples = json.loads((ASSETS / "examples" / "examples.json").read_text())
    return [pipe(ASSETS / "examples" / ex["video"], ex["instruction"], seed=1, output_type="latent",
                 progress=False).video for ex in examples]


def main() -> None:
    names = [ex["name"] for ex in json.loads((ASSETS / "examples" / "examples.json").read_text())]
    ref, kernel, epilogue = edits("float32"), edits("kernel"), edits("epilogue")
    print("| example | FP8, GELU kernel (row scales) | FP8, GELU epilogue (one scale) |")
    print("| --- | --- | --- |")
    for name, r, k, e in zip(names, ref, kernel, epilogue):
        print(f"| {name} | {rel_error(k, r):.3e} | {rel_error(e, r):.3e} |")
    means = [sum(map(rel_error, fp8, ref)) / len(ref) for fp8 in (kernel, epilogue)]
    print(f"| mean | {means[0]:.3e} | {means[1]:.3e} |")


if __name__ == "__main__":
    main()
