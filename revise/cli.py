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

from .errors import ReviseEnvironmentError, ReviseInputError, is_storage_error, storage_error
from .serve import add_serve_command
from .synth.dataset import CLIP_FORMATS

ASSETS = Path(__file__).parent / "assets"
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="revise", description="Reason-informed video editing with a unified model (ReViSE).")
    parser.add_argument("--version", action="version", version=f"revise {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("edit", help="edit a video by an instruction",
                       description="Edit a clip by an instruction that may need reasoning, write an H.264 mp4.")
    p.add_argument("--model", type=_model, default=DEFAULT_MODEL, help=MODEL_HELP + f" (default: {DEFAULT_NAME})")
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
    p.add_argument("model", nargs="?", type=_model, default=DEFAULT_MODEL, help=MODEL_HELP + f" (default: {DEFAULT_NAME})")
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
                        description="The release folder (fine-tuned Wan DiT in the original layout, adapter, vision "
                                    "head and visual context adapter state dicts, special-token and unconditioned-"
                                    "context pickles, VILA-style understanding folder llm/ vision_tower/ "
                                    "mm_projector/) -> a folder ReviseModel.from_pretrained loads. Legacy files "
                                    "are recognised by their keys, whatever their names.")
    r.add_argument("src", help="release folder")
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
    p.add_argument("--model", type=_model, default=None, help="override the config's starting model: " + MODEL_HELP)
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
    sc.set_defaults(func=cmd_synth_score)
    g = syn.add_parser("generate", help="edit every item of a split with a model (batched, resumable)",
                       description="Edit each item's source clip by its instruction with a model and write "
                                   "OUT/{id}.mp4 or .npy (existing outputs are kept, so a killed run resumes). "
                                   "Score them with 'revise synth score --videos OUT'.")
    g.add_argument("--model", type=_model, required=True, help=MODEL_HELP)
    g.add_argument("--data", required=True, help="SPLIT.json written by 'revise synth make'")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--batch", type=int, default=32, help="items per batch (default 32)")
    g.add_argument("--format", choices=CLIP_FORMATS, default="mp4",
                   help="output clips: mp4 (default) or npy (uint8 arrays, exact pixels, no codec)")
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
    c.add_argument("--model", type=_model, required=True, help=MODEL_HELP)
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
    except MemoryError:
        return _fail("out of memory: the machine could not hold this run (a smaller --size, --frames or model "
                     "needs less)", 1)
    except RuntimeError as err:  # torch's allocators raise RuntimeError subclasses when memory runs out
        if not _out_of_memory(err):
            raise
        return _fail(f"out of memory: {str(err).splitlines()[0][:200]}", 1)
    except KeyboardInterrupt:
        print("revise: interrupted", file=sys.stderr)
        return 130


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


# ---- commands ---------------------------------------------------------------------------------
def cmd_edit(args: argparse.Namespace) -> int:
    from .pipelines.best_of import MAX_BEST_OF
    from .pipelines.sampling_options import check_instructions, check_memory, resolve_device

    out = _check_out(args.out)
    options = _sampling(args, args.model)           # checks the model exists before anything loads
    check_instructions([args.instruction])
    if not 1 <= args.best_of <= MAX_BEST_OF:
        raise ReviseInputError(f"--best-of must be from 1 to {MAX_BEST_OF}, not {args.best_of}")
    device, dtype = resolve_device(args.device, args.dtype)
    check_memory(args.model, options, device, dtype, copies=min(args.best_of, 2))
    _edit(args.model, Path(args.video), args.instruction, out, options, device, dtype, best_of=args.best_of)
    return 0


def _check_out(out: str) -> Path:
    from .pipelines.edit_file import check_output_path
    return check_output_path(out)


def _sampling(args: argparse.Namespace, model: str):
    """The edit's checked settings: the command's arguments, else the model's defaults."""
    from .pipelines.sampling_options import resolve_sampling

    width, height = args.size or (None, None)
    return resolve_sampling(model, frames=args.frames, height=height, width=width, steps=args.steps,
                            guidance=args.guidance, shift=args.shift, solver=args.solver, seed=args.seed)


def cmd_demo(args: argparse.Namespace) -> int:
    import json

    from .critic import DIMENSIONS, Critic
    from .pipelines.sampling_options import resolve_device, resolve_sampling
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
    check_train_numbers(cfg, args.config)
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


#: Training settings that must be whole numbers at least 1, at least 0, and finite numbers above 0.
_TRAIN_AT_LEAST_1 = ("steps", "batch_size", "grad_accum", "log_every", "save_every", "keep_checkpoints")
_TRAIN_AT_LEAST_0 = ("warmup_steps", "preload_workers", "seed")
_TRAIN_POSITIVE = ("lr", "grad_clip", "lm_head_lr", "lm_head_grad_clip", "timestep_std", "flow_shift")


def check_train_numbers(cfg, source: str) -> None:
    """The numbers of a training config that the trainer would otherwise take silently (``steps: -3``
    trained nothing, printed ``loss nan`` and saved the untrained model), and its data file."""
    import math

    def bad(name: str, what: str) -> ReviseInputError:
        return ReviseInputError(f"{source}: {name} must be {what}, not {getattr(cfg, name)!r}")

    for name in _TRAIN_AT_LEAST_1 + _TRAIN_AT_LEAST_0:
        value, least = getattr(cfg, name), 1 if name in _TRAIN_AT_LEAST_1 else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(name, f"a whole number, at least {least}")
    for name in _TRAIN_POSITIVE:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise bad(name, "a finite number above 0")
    for name in ("weight_decay", "time_limit_s", "cond_dropout", "uso_lambda"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise bad(name, "a finite number, 0 or more")
    if not Path(cfg.data).is_file():
        raise ReviseInputError(f"{source}: training data {cfg.data} does not exist (RVE-Synth makes some: "
                               f"revise synth make --n 64 --split train --out {Path(cfg.data).parent})")


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
    if args.out:
        write_text(args.out, json.dumps(result, indent=1))
    return 0


def cmd_synth_generate(args: argparse.Namespace) -> int:
    from .pipelines.edit import ReviseEditPipeline
    from .pipelines.sampling_options import resolve_device
    from .synth.run import generate_split

    if args.batch < 1:
        raise ReviseInputError(f"--batch must be at least 1, not {args.batch}")
    if args.x0_sigma is not None and not 0.0 < args.x0_sigma < 1.0:
        raise ReviseInputError(f"--x0-sigma must be in (0, 1), not {args.x0_sigma}")
    options = _sampling(args, args.model)
    device, dtype = resolve_device(args.device, args.dtype)
    _quiet_libraries()
    pipe = ReviseEditPipeline.from_pretrained(args.model, device=device, dtype=dtype, seed=0)
    start = time.perf_counter()
    if args.x0_sigma is not None:
        from .synth.run import x0_estimate_split

        out = x0_estimate_split(pipe.model, args.data, args.out, args.x0_sigma, batch_size=args.batch,
                                seed=args.seed, clip_format=args.format)
    else:
        out = generate_split(pipe, args.data, args.out, batch_size=args.batch, seed=options.seed,
                             clip_format=args.format, **options.pipeline_kwargs())
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
    from .pipelines.sampling_options import resolve_device
    from .synth.run import critic_report

    device, dtype = resolve_device(args.device, None)
    _quiet_libraries()
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
    print("context:  " + ", ".join(f"{k} {v}" for k, v in info["context"].items()))
    print("sampling: " + ", ".join(f"{k} {v}" for k, v in info["sampling"].items()))
    return 0


# ---- shared -----------------------------------------------------------------------------------
def _edit(model_name: str, video_path: Path, instruction: str, out: Path, options, device: str, dtype, *,
          best_of: int = 1, comparison: Path | None = None, reference=None):
    """Edit one clip (best of ``best_of`` seeds by the critic), write the mp4 (and a middle-frame PNG:
    source | edit [| reference]); return the pipeline, the source clip [3, F, H, W] and the edit."""
    from .models.tokenizers import instruction_warnings
    from .pipelines.edit import ReviseEditPipeline
    from .pipelines.edit_file import edit_to_file
    from .video import read_video, side_by_side, to_uint8, write_image

    start = time.perf_counter()
    o = options
    source = read_video(video_path, o.num_frames, o.height, o.width)   # bad video fails before the model loads
    _quiet_libraries()
    pipe = ReviseEditPipeline.from_pretrained(model_name, device=device, dtype=dtype)
    for note in instruction_warnings(instruction, pipe.model.tokenizer, pipe.model.context_config.max_text_len):
        _warn(note)
    bar = _ProgressBar(f"best of {best_of}") if best_of > 1 else None
    try:
        result = edit_to_file(pipe, source, instruction, out, o, model=model_name, best_of=best_of,
                              progress=bar, bar=bar is None)
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
    from . import __version__
    return __version__


if __name__ == "__main__":
    sys.exit(main())
