"""``revise convert wan | revise``: released checkpoints to the layouts revise loads."""

from __future__ import annotations

import argparse
import time

from .common import _Parser, _quiet_libraries

def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert official checkpoints to the diffusers layout",
                       description="Convert released checkpoints. Legacy .pth/.bin/.pkl files are read without "
                                   "running code from them; tensors stream through, so large models convert "
                                   "within a few GiB of memory.")
    conv = p.add_subparsers(dest="kind", required=True, metavar="KIND", parser_class=_Parser)
    w = conv.add_parser("wan", help="original Wan2.1 folder -> diffusers layout",
                        description="Original Wan2.1 folder (config.json, diffusion_pytorch_model.safetensors or "
                                    "shards, Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth, optional "
                                    "google/umt5-xxl tokenizer) -> DST/transformer, vae, text_encoder, tokenizer.")
    w.add_argument("src", help="original Wan2.1 folder")
    w.add_argument("dst", help="output folder (must not exist)")
    w.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="cast floating tensors (default: keep each file's dtype)")
    w.set_defaults(func=cmd_convert_wan)
    r = conv.add_parser("revise", help="official ReViSE / Omni-Video release -> a revise model folder",
                        description="The release's revise_ckpt/ folder as its loader reads it (wan/wanxiang1_3b/, "
                                    "transformer/model.pt, adapter/, vision_head/, special_tokens/, "
                                    "unconditioned_context/, ar_model/checkpoint/), or an older flat layout "
                                    "(legacy files recognised by their keys) -> a folder ReviseModel.from_pretrained "
                                    "loads. Pickles and .pt files are read without running code.")
    r.add_argument("src", help="release folder (revise_ckpt/ or the folder holding it)")
    r.add_argument("dst", help="output folder (must not exist)")
    r.add_argument("--wan", default=None,
                   help="where the VAE, T5 encoder and tokenizer come from if the release lacks them: an original "
                        "Wan2.1 folder or a diffusers one (Wan2.1-T2V-1.3B-Diffusers)")
    r.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="cast floating tensors (default: keep each file's dtype)")
    r.add_argument("--heads", type=int, default=8,
                   help="attention heads of the vision head and adapter; no tensor records it (default: 8, "
                        "torch's nn.Transformer default the release uses)")
    r.add_argument("--max-context-len", type=int, default=2560, help="DiT context length (released: 2560)")
    r.set_defaults(func=cmd_convert_revise)


def cmd_convert_wan(args: argparse.Namespace) -> int:
    import torch

    from ..convert.wan import convert_wan

    _quiet_libraries()
    start = time.perf_counter()
    out = convert_wan(args.src, args.dst, dtype=getattr(torch, args.dtype) if args.dtype else None)
    print(f"converted {args.src} -> {out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_convert_revise(args: argparse.Namespace) -> int:
    import torch

    from ..convert.release import convert_release

    _quiet_libraries()
    start = time.perf_counter()
    out = convert_release(args.src, args.dst, wan=args.wan, dtype=getattr(torch, args.dtype) if args.dtype else None,
                          num_heads=args.heads, max_context_len=args.max_context_len)
    print(f"converted {args.src} -> {out} in {time.perf_counter() - start:.1f} s")
    return 0
