"""What a model folder or preset holds: components, classes and parameter counts.

Folders are read from the safetensors headers alone, so a model of any size is summarised
in a moment without loading a weight.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ..errors import ReviseInputError
from .prompt_style import DEFAULT_PROMPT_STYLE
from .revise_model import COMPONENT_FOLDERS, ReviseModel, read_model_config


def _shapes(file: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors header; a file that is not one is a ``ReviseInputError``."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {key: f.get_slice(key).get_shape() for key in f.keys()}
    except Exception as err:  # SafetensorError (truncated, not safetensors) is no OSError
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ReviseInputError(f"{file} is not a readable safetensors file: {reason}") from None


def _count_file(file: Path) -> int:
    total = 0
    for shape in _shapes(file).values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def _count_safetensors(folder: Path) -> int:
    return sum(_count_file(file) for file in sorted(folder.rglob("*.safetensors")))


def _class_name(folder: Path) -> str:
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        return "tokenizer" if folder.name == "tokenizer" else "?"
    cfg = json.loads(cfg_file.read_text())
    return cfg.get("_class_name") or (cfg.get("architectures") or ["?"])[0]


def summarize(name_or_path: str | Path) -> dict[str, Any]:
    """``{"name", "source", "components": [(name, class, parameters)], "prompt_style", "context", "sampling"}``."""
    path = Path(name_or_path)
    if path.is_dir():
        cfg = read_model_config(path)
        rows = [(c, _class_name(path / c), _count_safetensors(path / c)) for c in COMPONENT_FOLDERS]
        for sub in ("vision_tower", "llm", "mm_projector"):
            rows.append((f"  understanding/{sub}", _class_name(path / "understanding" / sub),
                         _count_safetensors(path / "understanding" / sub)))
        for file in ("special_tokens.safetensors", "unconditioned_context.safetensors"):
            shapes = _shapes(path / file)
            rows.append((file, ", ".join(f"{k} {list(v)}" for k, v in shapes.items()), _count_file(path / file)))
        return {"name": cfg.get("name", path.name), "source": f"folder {path}", "components": rows,
                "prompt_style": cfg.get("prompt_style", DEFAULT_PROMPT_STYLE),
                "context": cfg.get("context", {}), "sampling": cfg.get("sampling", {})}
    model = ReviseModel.from_preset(name_or_path, device="meta")
    counts = model.parameter_counts()
    rows = [(c, type(getattr(model, c)).__name__ if c != "tokenizer" else type(model.tokenizer).__name__,
             counts.get(c, 0)) for c in COMPONENT_FOLDERS]
    rows.append(("  understanding/vision_tower", type(model.understanding.vision_tower).__name__,
                 counts["understanding.vision_tower"]))
    rows.append(("  understanding/llm", type(model.understanding.llm).__name__, counts["understanding.llm"]))
    rows.append(("context_tokens", "special tokens + unconditional context", counts["context_tokens"]))
    return {"name": model.name, "source": "preset (random weights)", "components": rows,
            "prompt_style": model.prompt_style,
            "context": asdict(model.context_config), "sampling": asdict(model.sampling_config)}

