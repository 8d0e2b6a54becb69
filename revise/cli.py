"""The ``revise`` command line: ``revise edit``, ``revise info``, ``revise demo``, ``revise serve`` ...

Bad input ends with one line on stderr and exit code 2; a storage fault (full disk, read-only or
forbidden folder) with one line naming the path and exit code 1. Neither leaves partial output.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .cli_common import Parser as _Parser, add_sampling_args as _add_sampling_args, parse_size as _size
from .cli_common import quiet_libraries as _quiet_libraries
from .errors import ReviseEnvironmentError, ReviseInputError, is_storage_error, storage_error
from .serve import add_serve_command
from .synth.dataset import CLIP_FORMATS
from .synth.floors import INSTRUCTION_MODES

ASSETS = Path(__file__).parent / "assets"
EXAMPLES_DIR = ASSETS / "examples"
# The embedded default: the trained mini model shipped in the package (docs/results.md); the tiny
# random-weight preset only in a checkout that lacks it.
BUNDLED_MODEL = ASSETS / "models" / "mini"
DEFAULT_MODEL = str(BUNDLED_MODEL) if (BUNDLED_MODEL / "revise_config.json").is_file() else "tiny"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="revise", description="Reason-informed video editing with a unified model (ReViSE).")
    parser.add_argument("--version", action="version", version=f"revise {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("edit", help="edit a video by an instruction",
                       description="Edit a clip by an instruction that may need reasoning, write an H.264 mp4.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model folder, or preset name (tiny, mini, wan2.1-1.3b: random weights) "
                        "(default: the embedded mini model)")
    p.add_argument("--video", required=True, help="source clip: mp4, webm, gif ... or a folder of frames")
    p.add_argument("--instruction", required=True, help="what to change, e.g. 'show the scene one second later'")
    p.add_argument("--out", required=True, help="output .mp4 path")
    p.add_argument("--best-of", type=int, default=1, metavar="N",
                   help="make N candidates (seeds SEED .. SEED+N-1) and keep the one the model's own critic "
                        "rates highest; prints each candidate's P(Yes) (default: 1, no critic)")
    _add_sampling_args(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("info", help="list a model's components and parameter counts",
                       description="Components, classes and parameter counts of a model folder or preset "
                                   "(folders are read from safetensors headers: no weights are loaded).")
    p.add_argument("model", help="model folder or preset name")
    p.set_defaults(func=cmd_info)

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

    p = sub.add_parser("train", help="train with SFT, RWO, USO or the critic objective",
                       description="Train from a YAML/JSON config (see configs/). Resumes from the newest complete "
                                   "checkpoint in the output folder. For several GPUs: accelerate launch "
                                   "--config_file configs/accelerate/fsdp.yaml -m revise train --config ...")
    p.add_argument("--config", required=True, help="training config (.yaml or .json)")
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--out", default=None, help="override the config's output folder")
    p.add_argument("--model", default=None, help="override the config's starting model (preset or model folder)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if checkpoints exist")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop and save once this much training time has passed (overrides the config)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synth", help="RVE-Synth: make reasoning edits with exact targets, score clips exactly",
                       description="RVE-Synth, a procedural 2D world whose edits need reasoning (causal, temporal, "
                                   "spatial, commonsense) and whose targets are exact.")
    syn = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    m = syn.add_parser("make", help="write a split: mp4 (or npy) clips, SPLIT.json and a contact sheet PNG",
                       description="Write N items of a split (train/val/test hold out whole phrasings and object "
                                   "combinations) as source/target mp4s (or .npy arrays, --format npy), SPLIT.json "
                                   "in the training/bench format, and SPLIT_sheet.png for people. The same seed "
                                   "writes the same bytes.")
    m.add_argument("--n", type=int, required=True, help="number of items")
    m.add_argument("--split", choices=["train", "val", "test"], required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--size", type=_size, default=(64, 64), metavar="WxH", help="clip size (default 64x64)")
    m.add_argument("--frames", type=int, default=17, help="frames per clip, 4n+1 (default 17)")
    m.add_argument("--critic", action="store_true",
                   help="also write critic data: candidate clips and SPLIT_critic.json (Yes/No per question)")
    m.add_argument("--workers", type=int, default=None, help="worker processes (default: 2)")
    m.add_argument("--format", choices=CLIP_FORMATS, default="mp4",
                   help="clip files: mp4 (H.264, default) or npy (uint8 [F, H, W, 3] arrays: exact pixels, written "
                        "and read without a video codec or PyAV, no decoding in training; ~60x the disk space)")
    m.add_argument("--combos", choices=["train", "val", "test"], default=None,
                   help="main-object colour/shape combinations of another split (a diagnostic: '--split test "
                        "--combos train' holds out the phrasings alone, '--split train --combos test' the "
                        "combinations alone); default: the split's own")
    m.set_defaults(func=cmd_synth_make)
    sc = syn.add_parser("score", help="score generated clips with the exact judge",
                        description="Score VIDEOS/{id}.mp4 (or {id}.npy) for each item of a split with the exact "
                                    "judge: EA, PC, GN, GR on 1-10 and Overall (their mean). VIDEOS may be 'source' "
                                    "or 'target' to score the unedited sources or the exact targets.")
    sc.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    sc.add_argument("--videos", required=True, help="folder of {id}.mp4 or {id}.npy, or 'source' / 'target'")
    sc.add_argument("--out", default=None, help="write per-item scores and the summary to this JSON file")
    sc.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    sc.add_argument("--neutral", default=None, help="the same model's clips for a neutral instruction "
                    "('synth generate --instructions neutral'): printed as an instruction-blind floor")
    sc.add_argument("--other", default=None, help="its clips for another item's instruction on the same source "
                    "('synth generate --instructions other'): a floor, and instruction sensitivity = EA(own) - "
                    "EA(other)")
    sc.set_defaults(func=cmd_synth_score)
    g = syn.add_parser("generate", help="edit every item of a split with a model (batched, resumable)",
                       description="Edit each item's source clip by its instruction with a model and write "
                                   "OUT/{id}.mp4 or .npy (existing outputs are kept, so a killed run resumes). "
                                   "Score them with 'revise synth score --videos OUT'.")
    g.add_argument("--model", required=True, help="model folder or preset")
    g.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--batch", type=int, default=32, help="items per batch (default 32)")
    g.add_argument("--format", choices=CLIP_FORMATS, default="mp4",
                   help="output clips: mp4 (default) or npy (uint8 arrays, exact pixels, no codec)")
    g.add_argument("--instructions", choices=INSTRUCTION_MODES, default="own",
                   help="own (default); neutral: every item asked 'Do something.'; other: the next item's "
                        "instruction of the same source group (the instruction-blind floors)")
    g.add_argument("--x0-sigma", type=float, default=None,
                   help="instead of edits, the one-step x0 estimates that RWO and USO show the critic: each "
                        "target noised to this level (0-1) and denoised in one DiT step")
    _add_sampling_args(g)
    g.set_defaults(func=cmd_synth_generate)
    lb = syn.add_parser("label", help="turn a model's judged edits into critic training data",
                        description="Make critic records (one per question, as 'revise synth make --critic' "
                                    "writes them) for the clips VIDEOS/{id}.npy or .mp4 that a model generated for "
                                    "SPLIT.json, labelled by their exact-judge scores (SCORES.json from 'revise "
                                    "synth score --out'): per dimension Yes at or above --yes-at, No at or below "
                                    "--no-at, not asked in between; overall No if any is No, Yes if all are Yes. "
                                    "--merge prepends an existing critic file's records, so that OUT trains the "
                                    "critic on both.")
    lb.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    lb.add_argument("--videos", required=True, help="folder of the generated {id}.npy or {id}.mp4")
    lb.add_argument("--scores", required=True, help="their scores: the JSON 'revise synth score --out' wrote")
    lb.add_argument("--out", required=True, help="critic records to write (paths in it are relative to its folder)")
    lb.add_argument("--merge", default=None, help="a critic JSON whose records come first in OUT")
    lb.add_argument("--yes-at", type=float, default=8.0, help="judge score (1-10) from which a dimension is Yes")
    lb.add_argument("--no-at", type=float, default=5.0, help="judge score (1-10) up to which a dimension is No")
    lb.set_defaults(func=cmd_synth_label)
    c = syn.add_parser("critic", help="measure a model's internal critic on critic data",
                       description="Ask the model's critic every question of SPLIT_critic.json (written by "
                                   "'revise synth make --critic'); print accuracy per question and candidate kind.")
    c.add_argument("--model", required=True, help="model folder or preset")
    c.add_argument("--data", required=True, help="SPLIT_critic.json")
    c.add_argument("--out", default=None, help="write the report to this JSON file")
    c.add_argument("--batch", type=int, default=32, help="questions per batch (default 32)")
    c.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    c.set_defaults(func=cmd_synth_critic)

    from .bench.cli import add_bench_parser
    add_bench_parser(sub)

    p = sub.add_parser("demo", help="edit a bundled example with the embedded default model",
                       description="Edit a bundled RVE-Synth example with the embedded default model, write "
                                   "the result (mp4) and a source|edit|target comparison (PNG), and print the "
                                   "internal critic's P(Yes) and the exact judge's scores of the edit.")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--example", default=None, help="bundled example name (default: the first)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.set_defaults(func=cmd_demo)

    add_serve_command(sub, DEFAULT_MODEL, EXAMPLES_DIR)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ReviseInputError as err:
        return _fail(str(err), 2)
    except ReviseEnvironmentError as err:
        return _fail(str(err), 1)
    except OSError as err:  # a storage fault outside the atomic writers
        if not is_storage_error(err):
            raise
        return _fail(f"{err.strerror or err}" + (f": '{err.filename}'" if err.filename else ""), 1)
    except KeyboardInterrupt:
        print("revise: interrupted", file=sys.stderr)
        return 130


def _fail(message: str, code: int) -> int:
    """One line on stderr, on a line of its own: progress bars cut short are closed first."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(tqdm, "tqdm", object)._instances if tqdm else []):
        bar.close()
    print(f"revise: error: {message}", file=sys.stderr)
    return code


# ---- commands ---------------------------------------------------------------------------------
def cmd_edit(args: argparse.Namespace) -> int:
    from .models.revise_model import sampling_defaults
    from .pipelines.best_of import MAX_BEST_OF
    from .pipelines.edit import check_edit_args

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise ReviseInputError(f"--out must be an .mp4 file, not '{out}'")
    defaults = sampling_defaults(args.model)       # checks the model exists before anything loads
    frames = args.frames or defaults.num_frames
    width, height = args.size or (defaults.width, defaults.height)
    steps = args.steps or defaults.num_inference_steps
    check_edit_args(frames, height, width, steps, [args.instruction])
    if not 1 <= args.best_of <= MAX_BEST_OF:
        raise ReviseInputError(f"--best-of must be from 1 to {MAX_BEST_OF}, not {args.best_of}")
    _edit(args.model, Path(args.video), args.instruction, out, args.device, args.dtype,
          frames=frames, height=height, width=width, steps=steps, guidance=args.guidance,
          shift=args.shift, solver=args.solver, seed=args.seed, fps=defaults.fps, best_of=args.best_of)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import json

    from .critic import DIMENSIONS, Critic
    from .models.revise_model import sampling_defaults
    from .synth.item import SynthItem
    from .synth.judge import score_item
    from .video import read_video, to_uint8

    examples = json.loads((EXAMPLES_DIR / "examples.json").read_text())
    if args.example is None:
        example = examples[0]
    else:
        matches = [e for e in examples if e["name"] == args.example]
        if not matches:
            raise ReviseInputError(f"no bundled example '{args.example}': "
                                   f"choose one of {', '.join(e['name'] for e in examples)}")
        example = matches[0]
    d = sampling_defaults(DEFAULT_MODEL)
    out_dir = Path(args.out)
    print(f"demo: model '{Path(DEFAULT_MODEL).name}', example '{example['name']}' ({example['category']}): "
          f"{example['instruction']}")
    if DEFAULT_MODEL == "tiny":
        print("note: 'tiny' has seeded random weights, so its edit is noise: this shows the pipeline runs end to "
              "end, not what ReViSE can do")
    target = read_video(EXAMPLES_DIR / example["target"], d.num_frames, d.height, d.width)
    pipe, source, edited = _edit(DEFAULT_MODEL, EXAMPLES_DIR / example["video"], example["instruction"],
                                 out_dir / f"{example['name']}.mp4", args.device, None, frames=d.num_frames,
                                 height=d.height, width=d.width, steps=d.num_inference_steps, guidance=None,
                                 shift=None, solver="unipc", seed=0, fps=d.fps,
                                 comparison=out_dir / f"{example['name']}.png", reference=target)
    critic = Critic(pipe.model.understanding)
    src, ed = source[None].to(pipe.device, pipe.model.dtype), edited[None].to(pipe.device, pipe.model.dtype)
    p_yes = {dim: float(critic.score(src, ed, [example["instruction"]], dim)[0]) for dim in (None, *DIMENSIONS)}
    print("critic P(Yes): " + ", ".join(f"{dim or 'overall'} {p:.2f}" for dim, p in p_yes.items()))
    scores = score_item(SynthItem.from_dict(example["item"]), to_uint8(edited.cpu().float()))
    print("exact judge (1-10): " + ", ".join(f"{k} {scores[k]:.2f}" for k in ("EA", "PC", "GN", "GR", "overall")))
    return 0


def cmd_convert_wan(args: argparse.Namespace) -> int:
    import torch

    from .convert.wan import convert_wan

    _quiet_libraries()
    start = time.perf_counter()
    out = convert_wan(args.src, args.dst, dtype=getattr(torch, args.dtype) if args.dtype else None)
    print(f"converted {args.src} -> {out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_convert_revise(args: argparse.Namespace) -> int:
    import torch

    from .convert.release import convert_release

    _quiet_libraries()
    start = time.perf_counter()
    out = convert_release(args.src, args.dst, wan=args.wan, dtype=getattr(torch, args.dtype) if args.dtype else None,
                          num_heads=args.heads, max_context_len=args.max_context_len)
    print(f"converted {args.src} -> {out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.config import TrainConfig
    from .train.trainer import Trainer

    cfg = TrainConfig.load(args.config, steps=args.steps, out=args.out, model=args.model, time_limit_s=args.time_limit)
    _quiet_libraries()
    trainer = Trainer(cfg)
    if not args.no_resume and trainer.resume():
        print(f"resumed from step {trainer.step}")
    last = trainer.train()
    try:
        final = trainer.save_model(Path(cfg.out) / "model")
    except Exception as err:  # a full disk: safetensors and torch do not raise OSError for it
        raise storage_error(Path(cfg.out) / "model", err, "the last checkpoint holds the trained weights") from err
    skipped = len(trainer.data.skipped)
    print(f"trained {cfg.objective} to step {trainer.step}: loss {last.get('loss', float('nan')):.4g}, "
          f"{trainer.nonfinite_steps} non-finite steps skipped, {skipped} unreadable samples skipped; model {final}")
    return 0


def cmd_synth_make(args: argparse.Namespace) -> int:
    from .synth.dataset import contact_sheet_png, make_dataset

    if args.n < 1:
        raise ReviseInputError(f"--n must be at least 1, not {args.n}")
    if args.frames < 1 or (args.frames - 1) % 4:
        raise ReviseInputError(f"--frames must be 4n+1, not {args.frames}")
    width, height = args.size
    start = time.perf_counter()
    if args.workers is not None and args.workers < 1:
        raise ReviseInputError(f"--workers must be at least 1, not {args.workers}")
    records = make_dataset(args.n, args.split, args.seed, args.out, height=height, width=width, frames=args.frames,
                           workers=args.workers, critic=args.critic, clip_format=args.format,
                           combo_split=args.combos)
    sheet = contact_sheet_png(records, Path(args.out) / f"{args.split}_sheet.png", height=height, width=width)
    print(f"wrote {len(records)} {args.split} items to {Path(args.out) / (args.split + '.json')} and {sheet} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_synth_score(args: argparse.Namespace) -> int:
    import json

    from .atomic import write_text
    from .synth.evaluate import METRICS, score_split

    if args.workers < 1:
        raise ReviseInputError(f"--workers must be at least 1, not {args.workers}")
    result = score_split(args.data, args.videos, workers=args.workers)
    print("| group | n | missing | " + " | ".join(METRICS) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |")
    for group, row in result["summary"].items():
        print(f"| {group} | {row['n']} | {row['missing']} | " + " | ".join(f"{row[m]:.2f}" for m in METRICS) + " |")
    if args.neutral or args.other:
        from .synth.evaluate import floors_report

        result["floors"] = floors_report(args.data, result, args.neutral, args.other, workers=args.workers)
        print("\n| instruction-blind floors (all items) | EA | Overall |\n| --- | --- | --- |")
        for name, row in result["floors"]["rows"].items():
            print(f"| {name} | {row['EA']:.2f} | {row['overall']:.2f} |")
        if "sensitivity" in result["floors"]:
            sens = result["floors"]["sensitivity"]
            lo, hi = sens["interval95"]
            print(f"instruction sensitivity EA(own) - EA(other): {sens['mean']:.2f} [{lo:.2f}, {hi:.2f}] "
                  f"over {sens['n']} items")
    if args.out:
        write_text(args.out, json.dumps(result, indent=1))
    return 0


def cmd_synth_generate(args: argparse.Namespace) -> int:
    from .pipelines.edit import ReviseEditPipeline
    from .synth.run import generate_split

    if args.batch < 1:
        raise ReviseInputError(f"--batch must be at least 1, not {args.batch}")
    if args.x0_sigma is not None and not 0.0 < args.x0_sigma < 1.0:
        raise ReviseInputError(f"--x0-sigma must be in (0, 1), not {args.x0_sigma}")
    _quiet_libraries()
    device, dtype = _device_dtype(args.device, args.dtype)
    pipe = ReviseEditPipeline.from_pretrained(args.model, device=device, dtype=dtype, seed=0)
    sampling = {k: v for k, v in (("num_frames", args.frames), ("num_inference_steps", args.steps),
                                  ("guidance_scale", args.guidance), ("shift", args.shift)) if v is not None}
    if args.size is not None:
        sampling["width"], sampling["height"] = args.size
    start = time.perf_counter()
    if args.x0_sigma is not None:
        from .synth.run import x0_estimate_split

        out = x0_estimate_split(pipe.model, args.data, args.out, args.x0_sigma, batch_size=args.batch,
                                seed=args.seed, clip_format=args.format)
    else:
        out = generate_split(pipe, args.data, args.out, batch_size=args.batch, seed=args.seed, solver=args.solver,
                             clip_format=args.format, instructions=args.instructions, **sampling)
    print(f"generated {args.data} -> {out} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_synth_label(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from .atomic import write_text
    from .manifest import read_json_list
    from .synth.critic_data import judged_records
    from .synth.dataset import load_items

    if not 1.0 <= args.no_at < args.yes_at <= 10.0:
        raise ReviseInputError(f"need 1 <= --no-at < --yes-at <= 10, got {args.no_at} and {args.yes_at}")
    data, videos, out = Path(args.data), Path(args.videos), Path(args.out)
    if not videos.is_dir():
        raise ReviseInputError(f"video folder {videos} does not exist")
    load_items(data)                                # a clear error for a file that is not a split
    split = read_json_list(data, "RVE-Synth split")
    try:
        scores = json.loads(Path(args.scores).read_text())
        rows = [r for r in scores["items"] if r["id"] and (r.get("missing") or all(
            isinstance(r[m], (int, float)) for m in ("EA", "PC", "GN", "GR")))]
    except (OSError, ValueError, KeyError, TypeError):
        raise ReviseInputError(f"{args.scores} is not a scores file written by 'revise synth score --out'") from None

    def rebase(rel: str, folder: Path) -> str:      # a path relative to ``folder``, made relative to OUT's folder
        p = Path(rel)
        return str(p) if p.is_absolute() else os.path.relpath(folder / p, out.parent)

    clips = {}
    for r in split:
        found = next((videos / f"{r['id']}.{ext}" for ext in CLIP_FORMATS if (videos / f"{r['id']}.{ext}").is_file()), None)
        if found is not None:
            clips[r["id"]] = os.path.relpath(found, out.parent)
    split = [{**r, "source_video_path": rebase(r["source_video_path"], data.parent)} for r in split]
    records = judged_records(split, rows, clips, yes_at=args.yes_at, no_at=args.no_at)
    merged = []
    if args.merge:
        merged = [{**r, **{k: rebase(r[k], Path(args.merge).parent) for k in ("source_video_path", "candidate_video_path")}}
                  for r in read_json_list(Path(args.merge), "critic data")]
    write_text(out, json.dumps(merged + records))
    answers = Counter((r["dimension"] or "overall", r["answer"]) for r in records)
    asked = sorted({d for d, _ in answers})
    print(f"{len(records)} questions on {len(clips)} generated clips"
          + (f" after {len(merged)} merged ones" if merged else "") + f" -> {out}")
    for d in asked:
        print(f"  {d}: Yes {answers[(d, 'Yes')]}, No {answers[(d, 'No')]}")
    return 0


def cmd_synth_critic(args: argparse.Namespace) -> int:
    import json

    from .models.revise_model import ReviseModel
    from .synth.run import critic_report

    _quiet_libraries()
    device, dtype = _device_dtype(args.device, None)
    model = ReviseModel.load(args.model, device=device, dtype=dtype)
    report = critic_report(model, args.data, batch_size=args.batch)
    print("| question or kind | n | Yes | accuracy | balanced accuracy | mean P(Yes) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, r in report.items():
        if "accuracy" in r:
            print(f"| {k} | {r['n']} | {r['yes']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['mean_p_yes']:.3f} |")
    rank = report["target_ranked_above_negative"]
    print(f"target ranked above a negative of its item: {rank['rate']:.3f} of {rank['n']} pairs")
    if args.out:
        from .atomic import write_text
        write_text(args.out, json.dumps(report, indent=1))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .models.summary import summarize

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


# ---- shared -----------------------------------------------------------------------------------
def _edit(model_name: str, video_path: Path, instruction: str, out: Path, device: str | None, dtype: str | None, *,
          frames: int, height: int, width: int, steps: int, guidance: float | None, shift: float | None,
          solver: str, seed: int, fps: int, comparison: Path | None = None, best_of: int = 1, reference=None):
    """Edit one clip (best of ``best_of`` seeds by the critic), write the mp4 (and a middle-frame PNG:
    source | edit [| reference]); return the pipeline, the source clip [3, F, H, W] and the edit."""
    import torch

    from .models.revise_model import prompt_style_of
    from .pipelines.edit import ReviseEditPipeline, read_source
    from .video import side_by_side, to_uint8, write_image, write_video

    start = time.perf_counter()
    # bad video fails before the model loads; read as the model's prompt style reads a file
    source, vlm_frames = read_source(video_path, frames, height, width, prompt_style_of(model_name))
    device, torch_dtype = _device_dtype(device, dtype)
    _quiet_libraries()
    pipe = ReviseEditPipeline.from_pretrained(model_name, device=device, dtype=torch_dtype)
    sampling = dict(num_frames=frames, height=height, width=width, num_inference_steps=steps,
                    guidance_scale=guidance, shift=shift, solver=solver, vlm_frames=vlm_frames)
    if best_of > 1:
        from .pipelines.best_of import edit_best_of
        best = edit_best_of(pipe, source, instruction, best_of, seed=seed, **sampling)
        edited = best.video
        print(f"best of {best_of}: seed {best.seed}; critic P(Yes) per seed: "
              + ", ".join(f"{c['seed']}: {c['p_yes']:.3f}" for c in best.candidates))
        print("kept candidate, P(Yes) per dimension: " + ", ".join(f"{k} {v:.3f}" for k, v in best.scores.items()))
    else:
        edited = pipe(source, instruction, seed=seed, progress=True, **sampling).video[0]
    write_video(out, edited, fps=fps)
    if comparison is not None:
        clips = [to_uint8(source), to_uint8(edited.float().cpu())] + ([to_uint8(reference)] if reference is not None else [])
        row = side_by_side(*clips)
        write_image(comparison, row[len(row) // 2])
    took = time.perf_counter() - start
    extra = f", comparison {comparison}" if comparison is not None else ""
    print(f"wrote {out} ({frames} frames {width}x{height}, {steps} {solver} steps, {device}) in {took:.1f} s{extra}")
    return pipe, source, edited


def _device_dtype(device: str | None, dtype: str | None):
    """The device (cuda when available) and torch dtype (bf16 on a GPU, float32 on a CPU by default)."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device, getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)


def _version() -> str:
    from . import __version__
    return __version__


if __name__ == "__main__":
    sys.exit(main())
