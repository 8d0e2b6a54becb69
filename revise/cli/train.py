"""``revise train``: SFT, RWO, USO, critic, QA or VAE training from a config."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ReviseInputError, storage_error
from .common import MODEL_HELP, _model, _quiet_libraries

def add_parser(sub) -> None:
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


def cmd_train(args: argparse.Namespace) -> int:
    from ..train.config import TrainConfig
    from ..train.trainer import Trainer

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
    lora = ""
    if cfg.lora is not None:
        try:
            lora = f"; LoRA adapter {trainer.save_lora(Path(cfg.out) / 'lora')}"
        except Exception as err:  # a full disk, as above
            raise storage_error(Path(cfg.out) / "lora", err, "the model folder holds the trained weights") from err
    skipped = len(trainer.data.skipped)
    print(f"trained {cfg.objective} to step {trainer.step}: loss {last.get('loss', float('nan')):.4g}, "
          f"{trainer.nonfinite_steps} non-finite steps skipped, {skipped} unreadable samples skipped; model {final}{lora}")
    return 0


#: Training settings that must be whole numbers at least 1, at least 0, and finite numbers above 0.
_TRAIN_AT_LEAST_1 = ("steps", "batch_size", "grad_accum", "log_every", "save_every", "keep_checkpoints")
_TRAIN_AT_LEAST_0 = ("warmup_steps", "preload_workers", "seed")
_TRAIN_POSITIVE = ("lr", "grad_clip", "lm_head_lr", "lm_head_grad_clip", "timestep_std", "flow_shift")
_TRAIN_NOT_NEGATIVE = ("weight_decay", "time_limit_s", "cond_dropout", "semantic_weight", "critic_weight")



def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_train_numbers(cfg, source: str) -> None:
    """The numbers of a training config that the trainer would otherwise take silently (``steps: -3``
    trained nothing, printed ``loss nan`` and saved the untrained model), and its data file. A number
    that belongs to the objective is looked up in its section (``sft: {flow_shift: ...}``)."""
    import math

    def holder(name: str):
        return cfg if hasattr(cfg, name) else cfg.options if hasattr(cfg.options, name) else None

    def bad(name: str, what: str) -> ReviseInputError:
        where = "" if holder(name) is cfg else f"{cfg.objective}."
        return ReviseInputError(f"{source}: {where}{name} must be {what}, not {getattr(holder(name), name)!r}")

    for name in _TRAIN_AT_LEAST_1 + _TRAIN_AT_LEAST_0:
        value, least = getattr(cfg, name), 1 if name in _TRAIN_AT_LEAST_1 else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(name, f"a whole number, at least {least}")
    for names, above_zero in ((_TRAIN_POSITIVE, True), (_TRAIN_NOT_NEGATIVE, False)):
        for name in names:
            if holder(name) is None:
                continue
            value = getattr(holder(name), name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (above_zero and value == 0):
                err = bad(name, "a finite number above 0" if above_zero else "a finite number, 0 or more")
                if isinstance(value, str) and _is_float(value):     # YAML 1.1 reads 1e-4 as text, 1.0e-4 as a number
                    err = ReviseInputError(f"{err} (YAML reads {value} as text: write it with a dot and a signed "
                                           f"exponent, e.g. {float(value):.1e})")
                raise err
    if not Path(cfg.data).is_file():
        raise ReviseInputError(f"{source}: training data {cfg.data} does not exist (RVE-Synth makes some: "
                               f"revise synth make --n 64 --split train --out {Path(cfg.data).parent})")
