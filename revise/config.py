"""Model presets and the small configuration records the model and pipeline share.

A preset is a YAML file in ``revise/presets/`` (or any path to one): one block per component,
in the argument names of the library class that builds it (diffusers, transformers or ours).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from .errors import ReviseInputError

PRESET_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """Read a preset by name (``tiny``) or from a YAML file path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ReviseInputError(
            f"unknown preset '{name_or_path}': choose one of {', '.join(preset_names())} or give a .yaml file"
        )
    try:
        preset = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ReviseInputError(f"preset {path} is not valid YAML: {err}") from None
    missing = [k for k in REQUIRED_PRESET_KEYS if k not in (preset or {})]
    if missing:
        raise ReviseInputError(f"preset {path} lacks the section(s): {', '.join(missing)}")
    return preset


REQUIRED_PRESET_KEYS = (
    "transformer", "vae", "text_encoder", "tokenizer", "understanding",
    "vision_head", "adapter", "visual_context_adapter", "context", "sampling",
)


def _known_fields(cls, d: dict[str, Any]):
    """A dataclass from the keys of ``d`` it knows (others, e.g. from newer versions, are ignored)."""
    return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass
class ContextConfig:
    """How the mixed context is laid out (see docs/design.md)."""

    special_token_len: int = 6      # tokens in each of the six learned special-token blocks
    max_context_len: int = 2560     # the DiT's context is truncated to and zero-padded up to this
    max_text_len: int = 256         # UMT5 prompt tokens
    uncond_text_len: int = 256      # length of the learned unconditional text context
    uncond_vision_len: int = 164    # length of the unconditional VLM hidden states

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return _known_fields(cls, d)


@dataclasses.dataclass
class SamplingConfig:
    """Defaults of one edit; the released inference script's values unless a preset says otherwise.

    ``guidance_scale`` is in the released convention: pred = cond + g * (cond - uncond),
    which is the usual classifier-free guidance uncond + (g + 1) * (cond - uncond).
    """

    num_frames: int = 17
    height: int = 352
    width: int = 640
    num_inference_steps: int = 40
    guidance_scale: float = 3.0
    shift: float = 5.0
    fps: int = 8
    # where the flow sigmas start: "diffusers" (1 -> 1/N, diffusers' UniPC/Euler defaults; models made
    # here) or "wan" (1 - 1/N -> 0, as Wan2.1's own flow solvers and the ReViSE release sample)
    sigma_schedule: str = "diffusers"

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return _known_fields(cls, d)
