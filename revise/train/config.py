"""The training configuration: one YAML/JSON file, every field with the released default."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import ReviseInputError

OBJECTIVES = ("sft", "rwo", "uso", "critic", "qa", "vae")
MODULES = ("transformer", "visual_context_adapter", "adapter", "vision_head", "context_tokens", "lm_head",
           "understanding", "vae", "text_encoder")


@dataclasses.dataclass
class TrainConfig:
    model: str = "tiny"                  # preset or model folder to start from
    data: str = ""                       # JSON list of {source_video_path, target_video_path, instruction, type}
    out: str = "runs/train"
    objective: str = "sft"               # sft | rwo | uso | critic (Yes/No) | qa (short answers) | vae (autoencoder)
    steps: int = 100
    batch_size: int = 1
    grad_accum: int = 1
    lr: float = 3e-6
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    grad_clip: float = 0.1
    mixed_precision: str = "no"          # no | bf16 | fp16
    gradient_checkpointing: bool = False  # DiT, and the VLM's LM and vision tower on the critic path
    cache_text: bool = False             # encode every instruction once (out/cache), then free the T5 encoder
    preload: bool = False                # decode every clip once into memory (uint8) before training
    preload_workers: int = 0             # processes that decode clips for preload and the feature cache
    cache_features: bool = False         # VAE latents (and frozen-VLM hidden states) computed once (cache_dir)
    cache_dir: str = ""                  # where the feature cache lives (default: out/cache); runs may share it
    time_limit_s: float = 0.0            # stop (and save) once this much wall time has passed; 0: none
    vae_kl_weight: float = 1.0e-6        # the KL term of VAE training
    vae_focus: float = 0.0               # VAE training: add the mean L1 of the worst this fraction of pixels
    vae_sample: bool = True              # VAE training: decode a posterior sample (False: the posterior mean)
    critic_balance: bool = True          # weight Yes and No answers equally in critic training
    train_modules: list[str] = dataclasses.field(default_factory=lambda: ["transformer", "visual_context_adapter"])
    lm_head_lr: float = 1e-5             # the critic's LM head when "lm_head" trains
    lm_head_weight_decay: float = 0.0
    lm_head_grad_clip: float = 0.5
    cond_dropout: float = 0.2            # text and VLM inputs replaced by the unconditional ones
    timestep_scheme: str = "logit_normal"
    timestep_mean: float = 0.0
    timestep_std: float = 1.0
    mode_scale: float = 1.29
    flow_shift: float = 3.0
    uso_lambda: float = 0.1
    uso_max_sigma: float = 1.0           # semantic loss only where s <= this
    rwo_baseline_momentum: float = 0.9   # running mean of P(Yes) that normalises RWO weights
    num_frames: int = 17
    height: int = 64
    width: int = 64
    seed: int = 0
    log_every: int = 1
    save_every: int = 50
    keep_checkpoints: int = 2

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ReviseInputError(f"training config {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
        except (yaml.YAMLError, json.JSONDecodeError) as err:
            raise ReviseInputError(f"training config {path} cannot be parsed: {err}") from None
        return cls.from_dict({**(raw or {}), **{k: v for k, v in overrides.items() if v is not None}}, source=str(path))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ReviseInputError(f"{source}: unknown field(s) {', '.join(unknown)}")
        cfg = cls(**d)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        if self.objective not in OBJECTIVES:
            raise ReviseInputError(f"{source}: objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        bad = [m for m in self.train_modules if m not in MODULES]
        if bad:
            raise ReviseInputError(f"{source}: unknown train_modules {', '.join(bad)} (choose from {', '.join(MODULES)})")
        if not self.data:
            raise ReviseInputError(f"{source}: 'data' (a JSON list of training items) is required")
        if self.cache_features and self.objective in ("vae", "critic", "qa"):
            raise ReviseInputError(f"{source}: cache_features serves the generator objectives, not {self.objective}")
        if self.cache_text and "text_encoder" in self.train_modules:
            raise ReviseInputError(f"{source}: cache_text needs a frozen text encoder (its features are computed once)")
        if self.cache_features and "vae" in self.train_modules:
            raise ReviseInputError(f"{source}: cache_features needs a frozen VAE (its latents are computed once)")
        if not 0.0 <= self.vae_focus <= 1.0:
            raise ReviseInputError(f"{source}: vae_focus is a fraction of pixels in [0, 1], not {self.vae_focus}")
        if (self.num_frames - 1) % 4 or self.height % 16 or self.width % 16:
            raise ReviseInputError(f"{source}: frames must be 4n+1 and sizes multiples of 16")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
