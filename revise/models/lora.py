"""LoRA adapters on the DiT, through peft and diffusers' LoRA format.

Training adds one adapter (:func:`add_lora`, diffusers' ``PeftAdapterMixin.add_adapter``); its weights
are saved as diffusers saves a Wan pipeline's LoRA (:func:`save_lora`:
``pytorch_lora_weights.safetensors``, keys ``transformer.blocks.N.attn1.to_q.lora_A.weight``, ...,
the adapter's peft config in the file's metadata), which :func:`load_lora` (and so
``ReviseEditPipeline.load_lora_weights``) and diffusers' own ``WanPipeline.load_lora_weights`` read.
A model with adapters is saved as a plain model folder with the adapters merged into the weights
(:func:`merged_state_dict`), so the folder loads without peft and without the adapter file.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
import torch

from ..errors import ReviseInputError

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
#: Wan's attention projections (self- and cross-attention): query, key, value and output.
DEFAULT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER_NAME = "default"


@dataclasses.dataclass
class LoraOptions:
    """The ``lora:`` section of a training config."""

    rank: int = 16
    alpha: float = 16.0              # the update is scaled by alpha / rank
    target_modules: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    dropout: float = 0.0

    def check(self, source: str = "config") -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ReviseInputError(f"{source}: lora.rank must be a whole number of at least 1, not {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha) \
                or self.alpha <= 0:
            raise ReviseInputError(f"{source}: lora.alpha must be a number above 0, not {self.alpha!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ReviseInputError(f"{source}: lora.dropout must be from 0 to below 1, not {self.dropout!r}")
        if (isinstance(self.target_modules, str) or not self.target_modules
                or not all(isinstance(m, str) and m for m in self.target_modules)):
            raise ReviseInputError(f"{source}: lora.target_modules must be a list of module names, "
                                   f"e.g. {list(DEFAULT_TARGET_MODULES)}, not {self.target_modules!r}")


def has_lora(transformer: torch.nn.Module) -> bool:
    return bool(getattr(transformer, "peft_config", None))


def add_lora(transformer, options: LoraOptions, seed: int, adapter_name: str = ADAPTER_NAME) -> None:
    """A fresh LoRA adapter on ``transformer``'s ``options.target_modules``: B zero (the model is
    unchanged), A drawn from a generator seeded by ``seed`` (so a run, and its resumption, repeat)."""
    from peft import LoraConfig

    config = LoraConfig(r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=list(options.target_modules), init_lora_weights=True)
    try:
        with torch.random.fork_rng(devices=[]):    # peft initialises A on the CPU, then moves it
            torch.manual_seed(seed)
            transformer.add_adapter(config, adapter_name=adapter_name)
    except ValueError as err:      # peft: no module matched
        raise ReviseInputError(f"lora.target_modules {list(options.target_modules)}: {err}") from None


def is_lora_parameter(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def save_lora(transformer, folder: str | Path, adapter_name: str = ADAPTER_NAME) -> Path:
    """The adapter in diffusers' LoRA format: ``folder/pytorch_lora_weights.safetensors``."""
    from diffusers.loaders import WanLoraLoaderMixin
    from peft.utils import get_peft_model_state_dict

    layers = {k: v.detach().float().cpu().contiguous()
              for k, v in get_peft_model_state_dict(transformer, adapter_name=adapter_name).items()}
    metadata = transformer.peft_config[adapter_name].to_dict()
    WanLoraLoaderMixin.save_lora_weights(folder, transformer_lora_layers=layers, weight_name=LORA_WEIGHT_NAME,
                                         transformer_lora_adapter_metadata=metadata)
    return Path(folder) / LORA_WEIGHT_NAME


def lora_file(path: str | Path) -> Path:
    """A LoRA file, or a folder holding ``pytorch_lora_weights.safetensors``; a bad path is a ``ReviseInputError``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / LORA_WEIGHT_NAME
    if not path.is_file():
        raise ReviseInputError(f"LoRA weights {path} do not exist (a .safetensors file or a folder holding "
                               f"{LORA_WEIGHT_NAME})")
    if path.suffix != ".safetensors":
        raise ReviseInputError(f"LoRA weights {path} are not a .safetensors file")
    return path


def lora_option(path: str | Path | None, scale: float, flag: str = "--lora") -> Path | None:
    """A command line's ``--lora PATH`` and ``--lora-scale S``, checked before any model loads: the
    file (:func:`lora_file`) or None, and a finite scale that only comes with an adapter."""
    if path is None:
        if scale != 1.0:
            raise ReviseInputError(f"{flag}-scale needs {flag}")
        return None
    if not math.isfinite(scale):
        raise ReviseInputError(f"{flag}-scale must be a finite number, not {scale}")
    return lora_file(path)


def load_lora(transformer, path: str | Path, adapter_name: str) -> None:
    """Add the adapter of a diffusers-format LoRA file (or an original Wan one, which diffusers converts)."""
    from diffusers.loaders import WanLoraLoaderMixin

    file = lora_file(path)
    if adapter_name in (getattr(transformer, "peft_config", None) or {}):
        raise ReviseInputError(f"a LoRA adapter named {adapter_name!r} is already loaded")
    try:
        state_dict, metadata = WanLoraLoaderMixin.lora_state_dict(str(file.parent), weight_name=file.name,
                                                                  return_lora_metadata=True)
        if not state_dict or not all("lora" in k for k in state_dict):
            raise ValueError("it holds no LoRA weights (keys with 'lora_A'/'lora_B')")
        if not any(k.startswith("transformer.") for k in state_dict):
            raise ValueError("it holds no weights for the transformer (keys 'transformer.…')")
        transformer.load_lora_adapter(state_dict, prefix="transformer", adapter_name=adapter_name, metadata=metadata)
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ReviseInputError(f"cannot load LoRA weights {file}: {reason}") from None


def merged_state_dict(transformer) -> dict[str, torch.Tensor]:
    """``transformer``'s weights under its plain names with each active, unmerged adapter added in (at
    its scale), computed in float32 and stored in the weight's dtype; the model itself is untouched."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, torch.Tensor] = {}
    for name, module in transformer.named_modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            weight = base.weight.detach().float()
            if not module.merged:
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight = weight + module.get_delta_weight(adapter).float()
            merged[f"{name}.weight"] = weight.to(base.weight.dtype)
    state = {}
    for key, value in transformer.state_dict().items():
        if is_lora_parameter(key):
            continue
        plain = key.replace(".base_layer.", ".")
        state[plain] = merged.get(plain, value)
    return state


def save_merged(transformer, folder: str | Path) -> Path:
    """A transformer with adapters saved as a plain diffusers folder (its config and the merged weights)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformer.save_config(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in merged_state_dict(transformer).items()}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    return folder
