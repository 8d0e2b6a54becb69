"""The training configuration: one YAML/JSON file, every field with the released default.

The loop's settings are top-level fields; the objective's own options sit in a section named after
it (``objective: uso`` with ``uso: {semantic_weight: 0.01, max_sigma: 0.5}``), whose fields and
defaults the objective's class declares (``revise/train/objectives/``). A config written before the
sections (flat ``uso_lambda``, ``flow_shift``, ...) is refused with a one-line error saying where
each such field now goes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import ReviseInputError
from ..models.lora import LoraOptions
from .objectives import REGISTRY

MODULES = ("transformer", "visual_context_adapter", "adapter", "vision_head", "context_tokens", "lm_head",
           "understanding", "vae", "vae_decoder", "text_encoder")


@dataclasses.dataclass
class TrainConfig:
    model: str = "tiny"                  # preset or model folder to start from
    data: str = ""                       # JSON list of {source_video_path, target_video_path, instruction, type}
    out: str = "runs/train"
    objective: str = "sft"               # a name in revise/train/objectives: sft | rwo | uso | critic | qa | vae
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
    train_modules: list[str] = dataclasses.field(default_factory=lambda: ["transformer", "visual_context_adapter"])
    critic_model: str = ""               # a model folder whose VLM is a separate frozen critic for rwo/uso
    lm_head_lr: float = 1e-5             # the critic's LM head when "lm_head" trains
    lm_head_weight_decay: float = 0.0
    lm_head_grad_clip: float = 0.5
    num_frames: int = 17
    height: int = 64
    width: int = 64
    seed: int = 0
    log_every: int = 1
    save_every: int = 50
    keep_checkpoints: int = 2
    options: Any = None                  # the objective's section (its Options dataclass); YAML key: its name
    lora: LoraOptions | None = None      # train the DiT through a LoRA adapter (rank, alpha, target_modules, dropout)

    def __post_init__(self) -> None:
        if self.options is None and self.objective in REGISTRY:
            self.options = REGISTRY[self.objective].Options()

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
        d = dict(d)
        objective = d.get("objective", cls.objective)
        if objective not in REGISTRY:
            raise ReviseInputError(f"{source}: objective must be one of {', '.join(REGISTRY)}, not {objective!r}")
        section = d.pop(objective, None) or {}
        if d.get("lora") is not None:
            d["lora"] = read_section(LoraOptions, d["lora"], "lora", "the LoRA adapter's section", source)
        names = {f.name for f in dataclasses.fields(cls)} - {"options"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ReviseInputError(f"{source}: unknown field(s) {', '.join(unknown)}{_moved(unknown, objective)}")
        options = read_section(REGISTRY[objective].Options, section, objective, "the objective's section", source)
        cfg = cls(**d, options=options)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        if self.objective not in REGISTRY:
            raise ReviseInputError(f"{source}: objective must be one of {', '.join(REGISTRY)}, not {self.objective!r}")
        objective = REGISTRY[self.objective]
        if type(self.options) is not objective.Options:
            raise ReviseInputError(f"{source}: options {type(self.options).__name__} are not the {self.objective} "
                                   f"objective's ({objective.Options.__name__})")
        bad = [m for m in self.train_modules if m not in MODULES]
        if bad:
            raise ReviseInputError(f"{source}: unknown train_modules {', '.join(bad)} (choose from {', '.join(MODULES)})")
        if not self.data:
            raise ReviseInputError(f"{source}: 'data' (a JSON list of training items) is required")
        if self.cache_features and objective.cached_clip_parts is None:
            raise ReviseInputError(f"{source}: cache_features serves the generator objectives, not {self.objective}")
        if self.cache_text and "text_encoder" in self.train_modules:
            raise ReviseInputError(f"{source}: cache_text needs a frozen text encoder (its features are computed once)")
        if self.cache_features and "vae" in self.train_modules:
            raise ReviseInputError(f"{source}: cache_features needs a frozen VAE (its latents are computed once)")
        if self.lora is not None:
            self.lora.check(source)
            if "transformer" not in self.train_modules:
                raise ReviseInputError(f"{source}: lora trains the transformer through an adapter: list "
                                       "transformer in train_modules")
        if self.critic_model:
            if not objective.reads_critic(self.options):
                raise ReviseInputError(f"{source}: critic_model is the critic that scores the generator's samples; "
                                       f"the {self.objective} objective as configured reads no critic")
            if {"understanding", "lm_head"} & set(self.train_modules):
                raise ReviseInputError(f"{source}: critic_model is a frozen critic: train_modules may not list "
                                       "understanding or lm_head with it")
        if (self.num_frames - 1) % 4 or self.height % 16 or self.width % 16:
            raise ReviseInputError(f"{source}: frames must be 4n+1 and sizes multiples of 16")
        objective.check(self.options, self, source)

    def to_dict(self) -> dict[str, Any]:
        """The config as ``from_dict`` reads it (the options under the objective's name)."""
        d = dataclasses.asdict(self)
        d[self.objective] = d.pop("options")
        return d


def read_section(Options: type, section: Any, name: str, what: str, source: str) -> Any:
    """A config section (a mapping) as its ``Options`` dataclass; an unknown field is refused by name."""
    if not isinstance(section, dict):
        raise ReviseInputError(f"{source}: '{name}' is {what}, a mapping of its options")
    unknown = sorted(set(section) - {f.name for f in dataclasses.fields(Options)})
    if unknown:
        raise ReviseInputError(f"{source}: unknown field(s) {', '.join(f'{name}.{k}' for k in unknown)} "
                               f"(the {name} section holds {_field_list(Options)})")
    return Options(**section)


def _field_list(options: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(options)) or "no options"


def _moved(unknown: list[str], objective: str) -> str:
    """Where the flat option names of configs written before the objective sections now go."""
    moved = []
    for key in unknown:
        for cls in sorted(REGISTRY.values(), key=lambda c: c.name != objective):   # the chosen objective first
            fields = {f.name for f in dataclasses.fields(cls.Options)}
            prefix = f"{cls.name}_"
            field = cls.former_names.get(key) or (key[len(prefix):] if key.startswith(prefix) else key)
            if field in fields:
                moved.append(f"{key} is now {cls.name}: {{{field}: ...}}")
                break
        else:
            if key in REGISTRY:
                moved.append(f"the {key} section configures objective {key}, not {objective}")
    return f" ({'; '.join(moved)}: an objective's options sit in a section named after it)" if moved else ""
