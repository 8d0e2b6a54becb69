"""``revise demo``: a bundled RVE-Synth example edited by the embedded default model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ReviseInputError
from .common import DEFAULT_MODEL, EXAMPLES_DIR, _check_out
from .edit import _edit

def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="edit a bundled example with the embedded default model",
                       description="Edit a bundled RVE-Synth example with the embedded default model, write "
                                   "the result (mp4) and a source|edit|target comparison (PNG), and print the "
                                   "internal critic's P(Yes) and the exact judge's scores of the edit.")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--example", default=None, help="bundled example name (default: the first)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    import json

    from ..critic import DIMENSIONS, Critic
    from ..pipelines.sampling_options import resolve_device, resolve_sampling
    from ..synth.item import SynthItem
    from ..synth.judge import score_item
    from ..video import read_video, to_uint8

    examples = json.loads((EXAMPLES_DIR / "examples.json").read_text())
    if args.example is None:
        example = examples[0]
    else:
        matches = [e for e in examples if e["name"] == args.example]
        if not matches:
            raise ReviseInputError(f"no bundled example '{args.example}': "
                                   f"choose one of {', '.join(e['name'] for e in examples)}")
        example = matches[0]
    options = resolve_sampling(DEFAULT_MODEL)
    device, dtype = resolve_device(args.device, None)
    out_dir = Path(args.out)
    _check_out(out_dir / f"{example['name']}.mp4")
    print(f"demo: model '{Path(DEFAULT_MODEL).name}', example '{example['name']}' ({example['category']}): "
          f"{example['instruction']}")
    if DEFAULT_MODEL == "tiny":
        print("note: 'tiny' has seeded random weights, so its edit is noise: this shows the pipeline runs end to "
              "end, not what ReViSE can do")
    target = read_video(EXAMPLES_DIR / example["target"], options.num_frames, options.height, options.width)
    pipe, source, edited = _edit(DEFAULT_MODEL, EXAMPLES_DIR / example["video"], example["instruction"],
                                 out_dir / f"{example['name']}.mp4", options, device, dtype,
                                 comparison=out_dir / f"{example['name']}.png", reference=target)
    critic = Critic(pipe.model.understanding)
    src, ed = source[None].to(pipe.device, pipe.model.dtype), edited[None].to(pipe.device, pipe.model.dtype)
    p_yes = {dim: float(critic.score(src, ed, [example["instruction"]], dim)[0]) for dim in (None, *DIMENSIONS)}
    print("critic P(Yes): " + ", ".join(f"{dim or 'overall'} {p:.2f}" for dim, p in p_yes.items()))
    scores = score_item(SynthItem.from_dict(example["item"]), to_uint8(edited.cpu().float()))
    print("exact judge (1-10): " + ", ".join(f"{k} {scores[k]:.2f}" for k in ("EA", "PC", "GN", "GR", "overall")))
    return 0
