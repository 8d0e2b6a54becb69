"""``revise info``: a model's components and parameter counts, without loading weights."""

from __future__ import annotations

import argparse

from .common import DEFAULT_MODEL, DEFAULT_NAME, MODEL_HELP, _model, _quiet_libraries

def add_parser(sub) -> None:
    p = sub.add_parser("info", help="list a model's components and parameter counts",
                       description="Components, classes and parameter counts of a model folder or preset "
                                   "(folders are read from safetensors headers: no weights are loaded).")
    p.add_argument("model", nargs="?", type=_model, default=DEFAULT_MODEL, help=MODEL_HELP + f" (default: {DEFAULT_NAME})")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from ..models.summary import summarize

    _quiet_libraries()
    info = summarize(args.model)
    print(f"model: {info['name']} ({info['source']})")
    width = max(len(r[0]) for r in info["components"])
    total = 0
    for name, cls, count in info["components"]:
        if not name.startswith(" "):
            total += count
        print(f"  {name:<{width}}  {count:>15,}  {cls}")
    print(f"  {'total':<{width}}  {total:>15,}")
    print(f"prompt style: {info['prompt_style']}")
    print("context:  " + ", ".join(f"{k} {v}" for k, v in info["context"].items()))
    print("sampling: " + ", ".join(f"{k} {v}" for k, v in info["sampling"].items()))
    return 0
