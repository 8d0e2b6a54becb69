"""The official ReViSE / Omni-Video release -> a ``ReviseModel`` folder.

Two layouts are read:

- the release as its loader reads it (``revise_ckpt/``, the layout the release's code loads): fixed paths
  (:data:`RELEASE_FILES`); the fine-tuned DiT and the visual context adapter come from
  ``transformer/model.pt`` (``wan_model.*``, ``visual_context_adapter.*``), which the release loads
  last, so its ``adapter.*`` and ``ar_vision_head.*`` also win over the separate files; the base Wan
  folder ``wan/wanxiang1_3b/`` gives the DiT's config, the VAE, the T5 encoder and its tokenizer.
  A converted release records ``prompt_style: "release"``, T5 text length 512 and Wan's sampling
  schedule, so that it conditions and samples as the released inference code does.
- an older flat layout: legacy files anywhere one folder deep, recognised by their keys, not their
  names, beside a Wan DiT folder and a VILA-style understanding folder (``llm/``, ``vision_tower/``,
  ``mm_projector/``); the VAE, T5 encoder and tokenizer come from the release folder if it has them,
  else from ``wan`` (an original Wan2.1 folder or a diffusers one).

Every legacy file is read without running code (``safe_load``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import save_file

from ..config import ContextConfig, SamplingConfig
from ..errors import ReviseInputError
from ..models.connectors import Adapter, VisionHead, VisualContextAdapter
from ..models.context import SPECIAL_TOKEN_NAMES
from ..models.revise_model import CONFIG_FILE, SPECIAL_TOKENS_FILE, UNCOND_FILE, model_config_dict
from ..models.understanding import MLPDownsampleProjector
from .safe_load import load_checkpoint
from .shards import DEFAULT_SHARD_BYTES, ShardedWriter, check_state, safetensors_files
from .wan import (DIT_WEIGHTS, T5_FILE, VAE_FILE, _expected_shapes, convert_dit, convert_dit_state,
                  convert_t5, convert_vae, find_tokenizer, output_folder)

LEGACY_SUFFIXES = (".bin", ".pth", ".pt", ".pkl", ".pickle")
PARTS = ("adapter", "vision_head", "visual_context_adapter", "special_tokens", "unconditioned_context")

#: The release's files as its loader (``ReviseVideoGenerator.model_paths``) reads them: name -> (path, what).
RELEASE_FILES = {
    "wan": ("wan/wanxiang1_3b", "the base Wan2.1 folder: DiT config, VAE, T5 encoder, tokenizer"),
    "transformer": ("transformer/model.pt", "the fine-tuned DiT and the visual context adapter"),
    "adapter": ("adapter/model.pt", "the adapter"),
    "vision_head": ("vision_head/vision_head/pytorch_model.bin", "the vision head"),
    "special_tokens": ("special_tokens/tokens.pkl", "the special tokens"),
    "unconditioned_context": ("unconditioned_context/context.pkl", "the unconditioned context"),
    "understanding": ("ar_model/checkpoint", "the understanding VLM"),
}
#: What the released loader reads inside ``wan/wanxiang1_3b`` and ``ar_model/checkpoint``.
_RELEASE_INNER = {"wan": ("config.json", VAE_FILE, T5_FILE), "understanding": ("llm", "vision_tower", "mm_projector")}
#: Prefixes of ``transformer/model.pt``'s state dict -> the part each holds.
_MODEL_PT_PREFIXES = {"wan_model.": "transformer", "visual_context_adapter.": "visual_context_adapter",
                      "adapter.": "adapter", "ar_vision_head.": "vision_head"}
#: The released inference script's T5 text length (``text_len`` 512; training used 256).
RELEASE_TEXT_LEN = 512


def unwrap(sd: dict[str, Any]) -> dict[str, Any]:
    """Strip the wrappers the release's copies carry: {"model_state_dict"|"state_dict": ...}, "module." prefixes."""
    for key in ("model_state_dict", "state_dict", "module"):
        if isinstance(sd.get(key), dict) and all(isinstance(k, str) for k in sd[key]):
            sd = sd[key]
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def classify(sd: dict[str, Any]) -> str | None:
    """Which ReViSE part a legacy state dict holds, by its keys."""
    keys = set(sd)
    if "<img_st>" in keys:
        return "special_tokens"
    if {"uncond_context", "uncond_ar_vision"} <= keys or {"text_emb", "vlm_last_hidden_states"} <= keys:
        return "unconditioned_context"
    if "decoder_query" in keys and any(k.startswith("visionHeadAdapter.") for k in keys):
        return "vision_head"
    if "decoder_query" in keys and any(k.startswith("adapter.") for k in keys):
        return "adapter"
    if {"patch_embedding.weight", "projection.weight"} <= keys and getattr(sd["patch_embedding.weight"], "dim", lambda: 0)() == 5:
        return "visual_context_adapter"
    return None


def _layers(keys, prefix: str) -> int:
    return 1 + max((int(m.group(1)) for k in keys if (m := re.match(rf"{re.escape(prefix)}\.layers\.(\d+)\.", k))),
                   default=-1)


def resampler_config(sd: dict[str, torch.Tensor], attr: str, num_heads: int) -> dict[str, Any]:
    """Sizes of a vision head (``attr="visionHeadAdapter"``) or adapter (``"adapter"``) from its tensors."""
    out_dim, in_dim = sd["fc.0.weight"].shape
    cfg = {"num_queries": sd["decoder_query"].shape[1], "num_heads": num_heads,
           "num_encoder_layers": _layers(sd, f"{attr}.encoder"), "num_decoder_layers": _layers(sd, f"{attr}.decoder")}
    if attr == "visionHeadAdapter":
        return {"lm_dim": in_dim, "hidden_dim": out_dim, **cfg}
    return {"in_dim": in_dim, "out_dim": out_dim, **cfg}


def _write_module(name: str, sd: dict[str, torch.Tensor], build: Callable[[], torch.nn.Module], out: Path,
                  dtype: torch.dtype | None) -> None:
    expected, model = _expected_shapes(build)
    check_state(expected, {k: tuple(v.shape) for k, v in sd.items()}, f"{name} checkpoint")
    writer = ShardedWriter(out, DIT_WEIGHTS, DEFAULT_SHARD_BYTES, dtype)
    for k, v in sd.items():
        writer.add(k, v)
    writer.close()
    model.save_config(out)


def copy_hf_folder(src: Path, dst: Path) -> None:
    """Copy a transformers checkpoint folder, turning legacy ``.bin`` weights into safetensors."""
    dst.mkdir(parents=True, exist_ok=True)
    renamed = {}
    for f in sorted(src.iterdir()):
        if f.is_dir():
            continue
        if f.suffix == ".bin" and f.name.startswith("pytorch_model"):
            name = f.name.replace("pytorch_model", "model").replace(".bin", ".safetensors")
            sd = {k: v.contiguous() for k, v in unwrap(load_checkpoint(f, mmap=True)).items()}
            save_file(sd, str(dst / name), metadata={"format": "pt"})
            renamed[f.name] = name
        elif f.name == "pytorch_model.bin.index.json":
            continue
        else:
            shutil.copy2(f, dst / f.name)
    index = src / "pytorch_model.bin.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {k: renamed.get(v, v) for k, v in data["weight_map"].items()}
        (dst / "model.safetensors.index.json").write_text(json.dumps(data, indent=2) + "\n")


def convert_understanding(src: Path, dst: Path, dtype: torch.dtype | None) -> None:
    """A VILA-style folder -> ours (same sub-folders; the projector in the diffusers format)."""
    vila = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    copy_hf_folder(src / "llm", dst / "llm")
    copy_hf_folder(src / "vision_tower", dst / "vision_tower")
    proj = src / "mm_projector"
    files = [proj / "model.safetensors"] if (proj / "model.safetensors").is_file() else []
    if files:
        from safetensors.torch import load_file
        sd = load_file(str(files[0]))
    elif (proj / "pytorch_model.bin").is_file():
        sd = unwrap(load_checkpoint(proj / "pytorch_model.bin"))
    else:
        raise ReviseInputError(f"{proj} has neither model.safetensors nor pytorch_model.bin")
    ptype = json.loads((proj / "config.json").read_text()).get("mm_projector_type", vila.get("mm_projector_type"))
    if ptype not in (None, "mlp_downsample"):
        raise ReviseInputError(f"{proj}: projector type {ptype!r} is not supported (only mlp_downsample)")
    mm, hidden = sd["layers.1.weight"].shape[0] // 4, sd["layers.4.weight"].shape[0]
    _write_module("mm_projector", sd, lambda: MLPDownsampleProjector(mm, hidden), dst / "mm_projector", dtype)
    config = {"architectures": ["ReviseUnderstandingModel"], "mm_projector_type": "mlp_downsample",
              "mm_hidden_size": mm, "hidden_size": hidden,
              "num_video_frames": vila.get("num_video_frames", 8),
              "mm_vision_select_layer": vila.get("mm_vision_select_layer", -2)}
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _find_understanding(src: Path) -> Path:
    for d in [src, *sorted(p for p in src.iterdir() if p.is_dir())]:
        if all((d / s).is_dir() for s in ("llm", "vision_tower", "mm_projector")):
            return d
    raise ReviseInputError(f"{src} has no understanding model folder (one with llm/, vision_tower/, mm_projector/)")


def _find_dit(src: Path) -> Path:
    for d in [src, *sorted(p for p in src.iterdir() if p.is_dir())]:
        if (d / "config.json").is_file() and ((d / DIT_WEIGHTS).is_file() or (d / f"{DIT_WEIGHTS}.index.json").is_file()):
            return d
    raise ReviseInputError(f"{src} has no Wan DiT (config.json + {DIT_WEIGHTS})")


def find_parts(src: Path, skip: Path) -> dict[str, tuple[Path, dict]]:
    """Load each legacy file beside the DiT (one folder deep) and recognise its part by its keys."""
    found: dict[str, tuple[Path, dict]] = {}
    candidates = [f for d in [src, *sorted(p for p in src.iterdir() if p.is_dir() and p != skip)]
                  for f in sorted(d.iterdir()) if f.is_file() and f.suffix in LEGACY_SUFFIXES
                  and f.name not in (VAE_FILE, T5_FILE)]
    for f in candidates:
        sd = unwrap(load_checkpoint(f, mmap=True))
        part = classify(sd)
        if part is None:
            continue
        if part in found:
            raise ReviseInputError(f"both {found[part][0]} and {f} hold the {part}: keep one")
        found[part] = (f, sd)
    missing = [p for p in PARTS if p not in found]
    if missing:
        looked = ", ".join(str(f.relative_to(src)) for f in candidates) or "none"
        raise ReviseInputError(f"{src} lacks the {', '.join(missing)} (legacy files examined: {looked})")
    return found


def convert_release(src: str | Path, dst: str | Path, *, wan: str | Path | None = None,
                    dtype: torch.dtype | None = None, num_heads: int = 8, max_context_len: int = 2560,
                    name: str | None = None) -> Path:
    """Convert the ReViSE / Omni-Video release at ``src`` into a model folder at ``dst``.

    ``src`` is the release's ``revise_ckpt/`` folder (or the folder holding it), or an older flat
    layout (see the module docstring). ``wan`` supplies the Wan2.1 parts the release lacks."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ReviseInputError(f"release folder {src} does not exist")
    base = Path(wan) if wan is not None else None
    if base is not None and not base.is_dir():
        raise ReviseInputError(f"Wan2.1 folder {base} does not exist")
    if (src / "revise_ckpt").is_dir():
        src = src / "revise_ckpt"
    if is_release_layout(src):
        return _convert_release_layout(src, dst, base, dtype, num_heads, max_context_len, name)
    understanding = _find_understanding(src)
    dit_dir = _find_dit(src)
    parts = {k: sd for k, (_, sd) in find_parts(src, skip=understanding).items()}
    base_kind, base_dir = _base_source(src, base)
    with output_folder(dst) as tmp:
        convert_dit(dit_dir, tmp / "transformer", dtype=dtype)
        _base_components(base_kind, base_dir, tmp, dtype)
        convert_understanding(understanding, tmp / "understanding", dtype)
        context = _write_parts(parts, tmp, dtype, num_heads, max_context_len)
        config = model_config_dict(name or src.name, context, SamplingConfig())
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return dst


def is_release_layout(src: Path) -> bool:
    """Whether ``src`` is laid out as the released loader reads it: it has ``transformer/model.pt`` or
    any of the release's folders no flat layout has (``wan/``, ``ar_model/``, ``special_tokens/``,
    ``unconditioned_context/``)."""
    return (src / RELEASE_FILES["transformer"][0]).is_file() or any(
        (src / d).is_dir() for d in ("wan", "ar_model", "special_tokens", "unconditioned_context"))


def release_paths(src: Path, wan: Path | None = None) -> dict[str, Path]:
    """The release's files (:data:`RELEASE_FILES`) under ``src``; ``wan`` stands in for a missing
    ``wan/wanxiang1_3b``. Raises one ``ReviseInputError`` naming everything that is missing."""
    paths = {k: src / path for k, (path, _) in RELEASE_FILES.items()}
    if wan is not None and not paths["wan"].is_dir():
        paths["wan"] = wan
    missing = []
    for key, path in paths.items():
        what = RELEASE_FILES[key][1]
        inner = _RELEASE_INNER.get(key)
        shown = path if key == "wan" and wan is not None and path == wan else path.relative_to(src)
        if inner is None:
            if not path.is_file():
                missing.append(f"{shown} ({what})")
        elif not path.is_dir():
            missing.append(f"{shown}/ ({what}{'; or pass --wan with an original Wan2.1 folder' if key == 'wan' else ''})")
        else:
            missing += [f"{shown}/{sub}" for sub in inner if not (path / sub).exists()]
            if key == "wan" and (path / VAE_FILE).is_file() and find_tokenizer(path) is None:
                missing.append(f"{shown}/google/umt5-xxl (the T5 tokenizer)")
    if missing:
        raise ReviseInputError(f"{src} is not a complete ReViSE release: it lacks {', '.join(missing)}")
    return paths


def split_model_pt(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``transformer/model.pt`` -> its parts by prefix (:data:`_MODEL_PT_PREFIXES`), prefixes removed.
    The fine-tuned DiT and the visual context adapter must be there: nothing else holds them."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in unwrap(load_checkpoint(path, mmap=True)).items():
        prefix = next((p for p in _MODEL_PT_PREFIXES if key.startswith(p)), None)
        if prefix is not None and isinstance(value, torch.Tensor):
            parts.setdefault(_MODEL_PT_PREFIXES[prefix], {})[key[len(prefix):]] = value
    missing = [f"{p}* ({'the fine-tuned DiT' if part == 'transformer' else 'the visual context adapter'})"
               for p, part in _MODEL_PT_PREFIXES.items()
               if part in ("transformer", "visual_context_adapter") and part not in parts]
    if missing:
        raise ReviseInputError(f"{path} holds no {' and no '.join(missing)} tensors: not the release's model.pt")
    return parts


def _convert_release_layout(src: Path, dst: Path, wan: Path | None, dtype: torch.dtype | None, num_heads: int,
                            max_context_len: int, name: str | None) -> Path:
    paths = release_paths(src, wan)
    model_pt = split_model_pt(paths["transformer"])
    parts: dict[str, dict[str, Any]] = {}
    for part in ("adapter", "vision_head", "special_tokens", "unconditioned_context"):
        sd = unwrap(load_checkpoint(paths[part], mmap=True))
        if classify(sd) != part:
            raise ReviseInputError(f"{paths[part]} does not hold {RELEASE_FILES[part][1]} (keys: {_names(sd)})")
        parts[part] = sd
    # the release loads transformer/model.pt last and non-strictly: what it holds wins
    parts.update({k: v for k, v in model_pt.items() if k != "transformer"})
    try:
        dit_config = json.loads((paths["wan"] / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReviseInputError(f"{paths['wan'] / 'config.json'} is not valid JSON: {err}") from None
    with output_folder(dst) as tmp:
        convert_dit_state(model_pt["transformer"], dit_config, tmp / "transformer", dtype=dtype)
        _base_components("original", paths["wan"], tmp, dtype)
        convert_understanding(paths["understanding"], tmp / "understanding", dtype)
        context = _write_parts(parts, tmp, dtype, num_heads, max_context_len, max_text_len=RELEASE_TEXT_LEN)
        sampling = SamplingConfig(sigma_schedule="wan")
        config = model_config_dict(name or src.name, context, sampling, prompt_style="release")
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return dst


def _names(sd: dict, limit: int = 5) -> str:
    keys = sorted(map(str, sd))
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _write_parts(parts: dict[str, dict[str, Any]], tmp: Path, dtype: torch.dtype | None, num_heads: int,
                 max_context_len: int, **context: Any) -> ContextConfig:
    """Write the vision head, adapter, visual context adapter, special tokens and unconditioned
    context; returns the context layout they imply."""
    vh = parts["vision_head"]
    vh_cfg = resampler_config(vh, "visionHeadAdapter", num_heads)
    _write_module("vision_head", vh, lambda: VisionHead(**vh_cfg), tmp / "vision_head", dtype)
    ad = parts["adapter"]
    ad_cfg = resampler_config(ad, "adapter", num_heads)
    _write_module("adapter", ad, lambda: Adapter(**ad_cfg), tmp / "adapter", dtype)
    vca = parts["visual_context_adapter"]
    pe = vca["patch_embedding.weight"]
    vca_cfg = {"in_channels": pe.shape[1], "hidden_dim": pe.shape[0],
               "out_dim": vca["projection.weight"].shape[0], "patch_size": list(pe.shape[2:])}
    _write_module("visual_context_adapter", vca, lambda: VisualContextAdapter(**vca_cfg),
                  tmp / "visual_context_adapter", dtype)

    special = parts["special_tokens"]
    missing = [n for n in SPECIAL_TOKEN_NAMES if n not in special]
    if missing:
        raise ReviseInputError(f"the special tokens lack {', '.join(missing)}")
    save_file({n: _cast(special[n], dtype) for n in SPECIAL_TOKEN_NAMES}, str(tmp / SPECIAL_TOKENS_FILE))
    uncond = unconditioned_context(parts["unconditioned_context"])
    save_file({k: _cast(v, dtype) for k, v in uncond.items()}, str(tmp / UNCOND_FILE))
    return ContextConfig(special_token_len=special["<img_st>"].shape[0], max_context_len=max_context_len,
                         uncond_text_len=uncond["uncond_context"].shape[-2],
                         uncond_vision_len=uncond["uncond_ar_vision"].shape[-2], **context)


def unconditioned_context(sd: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``uncond_context`` [L, text_dim] and ``uncond_ar_vision`` [1, L', lm_dim] from either naming:
    ours, or the release's ``text_emb`` (a list holding the text context) and ``vlm_last_hidden_states``."""
    if "uncond_context" in sd:
        text, vision = sd["uncond_context"], sd["uncond_ar_vision"]
    else:
        text, vision = sd["text_emb"], sd["vlm_last_hidden_states"]
        if isinstance(text, (list, tuple)):
            if len(text) != 1:
                raise ReviseInputError(f"the unconditioned context's text_emb holds {len(text)} tensors, not one")
            text = text[0]
    if not isinstance(text, torch.Tensor) or text.dim() != 2:
        raise ReviseInputError("the unconditioned text context is not a [L, text_dim] tensor")
    if not isinstance(vision, torch.Tensor) or vision.dim() not in (2, 3):
        raise ReviseInputError("the unconditioned VLM hidden states are not a [1, L, lm_dim] tensor")
    return {"uncond_context": text, "uncond_ar_vision": vision.reshape(1, *vision.shape[-2:])}


def _base_source(src: Path, base: Path | None) -> tuple[str, Path]:
    """Where vae/, text_encoder/, tokenizer/ come from: ("original", folder) or ("diffusers", folder)."""
    for folder in [src] + ([base] if base is not None else []):
        if (folder / VAE_FILE).is_file() and (folder / T5_FILE).is_file():
            if find_tokenizer(folder) is None:
                raise ReviseInputError(f"{folder} has no tokenizer folder (google/umt5-xxl or tokenizer)")
            return "original", folder
        if all((folder / c).is_dir() for c in ("vae", "text_encoder", "tokenizer")):
            return "diffusers", folder
    raise ReviseInputError(f"{src} has no VAE and T5 encoder: pass --wan with an original Wan2.1 folder "
                           "or a diffusers one (vae/, text_encoder/, tokenizer/)")


def _base_components(kind: str, folder: Path, out: Path, dtype: torch.dtype | None) -> None:
    if kind == "original":
        convert_vae(folder / VAE_FILE, out / "vae", dtype=dtype)
        convert_t5(folder / T5_FILE, out / "text_encoder", dtype=dtype)
        from transformers import AutoTokenizer
        AutoTokenizer.from_pretrained(find_tokenizer(folder)).save_pretrained(out / "tokenizer")
    else:
        for c in ("vae", "text_encoder", "tokenizer"):
            shutil.copytree(folder / c, out / c)


def _cast(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous()
