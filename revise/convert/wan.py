"""Original Wan2.1 release -> diffusers layout (``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``).

Every size is read from tensor shapes; only the DiT's head count and eps come from its
config.json (no shape records them). Tensors stream through one at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from tqdm.auto import tqdm
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from ..atomic import atomic_folder
from ..errors import ReviseInputError
from .safe_load import load_checkpoint
from .shards import DEFAULT_SHARD_BYTES, ShardedWriter, check_state, iter_tensors, read_shapes, safetensors_files

DIT_WEIGHTS = "diffusion_pytorch_model.safetensors"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_DIRS = ("google/umt5-xxl", "tokenizer")


# ---- DiT ----------------------------------------------------------------------------------------
def dit_config(shapes: dict[str, tuple[int, ...]], original: dict[str, Any]) -> dict[str, Any]:
    """``WanTransformer3DModel`` arguments from the original tensors and config.json."""
    patch = shapes["patch_embedding.weight"]
    dim, in_dim, patch_size = patch[0], patch[1], tuple(patch[2:])
    if "num_heads" not in original:
        raise ReviseInputError("the DiT's config.json lacks num_heads (no tensor shape records it)")
    heads = int(original["num_heads"])
    layers = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k)))
    cfg = {
        "patch_size": list(patch_size),
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": in_dim,
        "out_channels": shapes["head.head.weight"][0] // math.prod(patch_size),
        "text_dim": shapes["text_embedding.0.weight"][1],
        "freq_dim": shapes["time_embedding.0.weight"][1],
        "ffn_dim": shapes["blocks.0.ffn.0.weight"][0],
        "num_layers": layers,
        "cross_attn_norm": "blocks.0.norm3.weight" in shapes,
        "qk_norm": "rms_norm_across_heads" if "blocks.0.self_attn.norm_q.weight" in shapes else None,
        "eps": float(original.get("eps", 1e-6)),
    }
    if "img_emb.proj.0.weight" in shapes:           # image-to-video variants
        cfg["image_dim"] = shapes["img_emb.proj.0.weight"][0]
        cfg["added_kv_proj_dim"] = dim
    return cfg


def dit_key(name: str) -> str:
    """Original DiT tensor name -> diffusers name (diffusers' own rename table)."""
    return next(iter(convert_wan_transformer_to_diffusers({name: None})))


# ---- VAE ----------------------------------------------------------------------------------------
_RESIDUAL = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight", "residual.2.bias": "conv1.bias",
             "residual.3.gamma": "norm2.gamma", "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
             "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}


def vae_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """``AutoencoderKLWan`` arguments from the original VAE's tensor shapes."""
    base = shapes["encoder.conv1.weight"][0]
    resamples = sorted({int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.downsamples\.(\d+)\.resample\.", k))})
    if not resamples:
        raise ReviseInputError("the VAE has no downsampling layers: not a Wan2.1 VAE")
    per_level = resamples[0]                 # residual blocks before the first resample
    levels = len(resamples) + 1
    dim_mult = [shapes[f"encoder.downsamples.{lvl * (per_level + 1)}.residual.2.weight"][0] // base
                for lvl in range(levels)]
    if any(re.match(r"(en|de)coder\.(down|up)samples\.\d+\.(norm|to_qkv)", k) for k in shapes):
        raise ReviseInputError("VAEs with attention inside the down/up blocks are not supported")
    return {
        "base_dim": base,
        "z_dim": shapes["conv2.weight"][0],
        "dim_mult": dim_mult,
        "num_res_blocks": per_level,
        "attn_scales": [],
        "temperal_downsample": [f"encoder.downsamples.{i}.time_conv.weight" in shapes for i in resamples],
    }


def vae_key_mapper(cfg: dict[str, Any]) -> Callable[[str], str]:
    """Original VAE tensor name -> diffusers name, for any depth and width."""
    up_block = cfg["num_res_blocks"] + 2     # the decoder has one residual block more, then a resample

    def residual(rest: str) -> str:
        for old, new in _RESIDUAL.items():
            if rest == old:
                return new
        return rest                           # resample.1.*, time_conv.* keep their names

    def mapper(k: str) -> str:
        if k in ("conv1.weight", "conv1.bias"):
            return k.replace("conv1", "quant_conv")
        if k in ("conv2.weight", "conv2.bias"):
            return k.replace("conv2", "post_quant_conv")
        side, rest = k.split(".", 1)
        if rest.startswith("conv1."):
            return f"{side}.conv_in.{rest[6:]}"
        if rest.startswith("head.0."):
            return f"{side}.norm_out.{rest[7:]}"
        if rest.startswith("head.2."):
            return f"{side}.conv_out.{rest[7:]}"
        if m := re.match(r"middle\.(\d)\.(.*)", rest):
            i, sub = int(m.group(1)), m.group(2)
            if i == 1:
                return f"{side}.mid_block.attentions.0.{sub}"
            return f"{side}.mid_block.resnets.{i // 2}.{residual(sub)}"
        if m := re.match(r"downsamples\.(\d+)\.(.*)", rest):
            return f"{side}.down_blocks.{m.group(1)}.{residual(m.group(2))}"
        if m := re.match(r"upsamples\.(\d+)\.(.*)", rest):
            i, sub = int(m.group(1)), m.group(2)
            block, pos = divmod(i, up_block)
            if pos == up_block - 1:
                return f"{side}.up_blocks.{block}.upsamplers.0.{sub}"
            return f"{side}.up_blocks.{block}.resnets.{pos}.{residual(sub)}"
        return k
    return mapper


# ---- T5 -----------------------------------------------------------------------------------------
_T5_BLOCK = {"norm1.weight": "layer.0.layer_norm.weight", "attn.q.weight": "layer.0.SelfAttention.q.weight",
             "attn.k.weight": "layer.0.SelfAttention.k.weight", "attn.v.weight": "layer.0.SelfAttention.v.weight",
             "attn.o.weight": "layer.0.SelfAttention.o.weight",
             "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
             "norm2.weight": "layer.1.layer_norm.weight", "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
             "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight", "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight"}


def t5_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """``UMT5Config`` arguments from Wan's UMT5 encoder port (T5 attention, gated tanh-GELU)."""
    vocab, d_model = shapes["token_embedding.weight"]
    buckets, heads = shapes["blocks.0.pos_embedding.embedding.weight"]
    return {
        "vocab_size": vocab, "d_model": d_model, "num_heads": heads,
        "d_kv": shapes["blocks.0.attn.q.weight"][0] // heads,
        "d_ff": shapes["blocks.0.ffn.fc1.weight"][0],
        "num_layers": 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k))),
        "relative_attention_num_buckets": buckets, "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False, "use_cache": False,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    }


def t5_key(k: str) -> str:
    if k == "token_embedding.weight":
        return "shared.weight"
    if k == "norm.weight":
        return "encoder.final_layer_norm.weight"
    m = re.match(r"blocks\.(\d+)\.(.*)", k)
    if m and m.group(2) in _T5_BLOCK:
        return f"encoder.block.{m.group(1)}.{_T5_BLOCK[m.group(2)]}"
    return k


# ---- the whole folder ---------------------------------------------------------------------------
def _expected_shapes(build: Callable[[], torch.nn.Module], drop: Iterable[str] = ()) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = build()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for k in drop:
        shapes.pop(k, None)
    return shapes, model


def _write_component(name: str, items: Iterator[tuple[str, torch.Tensor]], count: int, expected: dict,
                     got: dict, out: Path, weights_name: str, save_config: Callable[[Path], None],
                     dtype: torch.dtype | None, max_shard_bytes: int) -> None:
    check_state(expected, got, f"{name} checkpoint")
    writer = ShardedWriter(out, weights_name, max_shard_bytes, dtype)
    for key, tensor in tqdm(items, total=count, desc=f"converting {name}", unit="tensor", leave=False):
        writer.add(key, tensor)
        del tensor
    writer.close()
    save_config(out)


def convert_dit(src: Path, out: Path, *, dtype: torch.dtype | None = None,
                max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """An original-layout DiT folder (config.json + safetensors, one file or shards) -> ``out``."""
    config_file = src / "config.json"
    if not config_file.is_file():
        raise ReviseInputError(f"{src} has no config.json: not an original Wan2.1 DiT folder")
    files = safetensors_files(src, DIT_WEIGHTS)
    shapes = read_shapes(files)          # names and shapes from the headers; tensors stream later
    _write_dit(iter_tensors(files), shapes, json.loads(config_file.read_text()), out, dtype, max_shard_bytes)


def convert_dit_state(state: dict[str, torch.Tensor], original_config: dict[str, Any], out: Path, *,
                      dtype: torch.dtype | None = None, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """An original-layout DiT state dict held elsewhere (the ReViSE release's fine-tuned DiT inside
    ``transformer/model.pt``), with the base folder's config.json -> ``out``."""
    _write_dit(iter(state.items()), {k: tuple(v.shape) for k, v in state.items()}, original_config, out, dtype,
               max_shard_bytes)


def _write_dit(items: Iterator[tuple[str, torch.Tensor]], shapes: dict[str, tuple[int, ...]], original: dict[str, Any],
               out: Path, dtype: torch.dtype | None, max_shard_bytes: int) -> None:
    cfg = dit_config(shapes, original)
    expected, dit = _expected_shapes(lambda: WanTransformer3DModel(**cfg))
    _write_component("transformer", ((dit_key(k), t) for k, t in items), len(shapes), expected,
                     {dit_key(k): v for k, v in shapes.items()}, out, DIT_WEIGHTS, dit.save_config, dtype,
                     max_shard_bytes)


def convert_vae(file: Path, out: Path, *, dtype: torch.dtype | None = None,
                max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """``Wan2.1_VAE.pth`` -> ``out`` (small: loaded whole, safely)."""
    sd = load_checkpoint(file)
    cfg = vae_config({k: tuple(v.shape) for k, v in sd.items()})
    expected, vae = _expected_shapes(lambda: AutoencoderKLWan(**cfg))
    key = vae_key_mapper(cfg)
    _write_component("vae", ((key(k), t) for k, t in sd.items()), len(sd), expected,
                     {key(k): tuple(v.shape) for k, v in sd.items()}, out, DIT_WEIGHTS, vae.save_config, dtype,
                     max_shard_bytes)


def convert_t5(file: Path, out: Path, *, dtype: torch.dtype | None = None,
               max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """Wan's UMT5 encoder file -> ``out``; memory-mapped, so an 11 GB encoder never sits in RAM at once."""
    sd = load_checkpoint(file, mmap=True)
    cfg = UMT5Config(**t5_config({k: tuple(v.shape) for k, v in sd.items()}), architectures=["UMT5EncoderModel"])
    expected, _ = _expected_shapes(lambda: UMT5EncoderModel(cfg), drop=["encoder.embed_tokens.weight"])
    _write_component("text_encoder", ((t5_key(k), t) for k, t in sd.items()), len(sd), expected,
                     {t5_key(k): tuple(v.shape) for k, v in sd.items()}, out, "model.safetensors",
                     cfg.save_pretrained, dtype, max_shard_bytes)


def find_tokenizer(folder: Path) -> Path | None:
    return next((folder / sub for sub in TOKENIZER_DIRS if (folder / sub).is_dir()), None)


def convert_wan_parts(src: Path, dst: Path, *, dit: bool = True, dtype: torch.dtype | None = None,
                      max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """Write ``transformer/`` (if ``dit``), ``vae/``, ``text_encoder/`` and ``tokenizer/`` (if the original
    folder has one) of an original Wan2.1 folder into ``dst``."""
    for f in (VAE_FILE, T5_FILE):
        if not (src / f).is_file():
            raise ReviseInputError(f"{src} lacks {f}")
    if dit:
        convert_dit(src, dst / "transformer", dtype=dtype, max_shard_bytes=max_shard_bytes)
    convert_vae(src / VAE_FILE, dst / "vae", dtype=dtype, max_shard_bytes=max_shard_bytes)
    convert_t5(src / T5_FILE, dst / "text_encoder", dtype=dtype, max_shard_bytes=max_shard_bytes)
    if (tok := find_tokenizer(src)) is not None:
        AutoTokenizer.from_pretrained(tok).save_pretrained(dst / "tokenizer")


def convert_wan(src: str | Path, dst: str | Path, *, dtype: torch.dtype | None = None,
                max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    """Convert an original Wan2.1 folder into the diffusers layout at ``dst`` (written whole or not at all)."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ReviseInputError(f"Wan2.1 folder {src} does not exist")
    with output_folder(dst) as tmp:
        convert_wan_parts(src, tmp, dtype=dtype, max_shard_bytes=max_shard_bytes)
    return dst


@contextlib.contextmanager
def output_folder(dst: Path) -> Iterator[Path]:
    """A conversion's output: ``dst`` must not exist yet; :func:`revise.atomic.atomic_folder` gives
    the temporary sibling folder that becomes ``dst`` only if the block completes."""
    if dst.exists():
        raise ReviseInputError(f"output {dst} already exists: remove it or choose another path")
    with atomic_folder(dst) as tmp:
        yield tmp
