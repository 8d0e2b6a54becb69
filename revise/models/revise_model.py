"""``ReviseModel``: the unified model, its components, and how they turn a source clip and an
instruction into the DiT's mixed context.

Data flow of one edit (docs/design.md)::

    source clip --VAE encode--> latents --VisualContextAdapter--> source tokens ----+
    source clip + instruction --UnderstandingModel--> hidden states                  |
                             --VisionHead--> vision tokens --Adapter--> VLM tokens --+--> mixed context --> DiT
    instruction --UMT5 encoder--> text tokens ---------------------------------------+

On disk it is a diffusers-style folder: ``transformer/ vae/ text_encoder/ tokenizer/ understanding/
vision_head/ adapter/ visual_context_adapter/ special_tokens.safetensors
unconditioned_context.safetensors revise_config.json``; safetensors only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from ..atomic import atomic_folder
from ..config import ContextConfig, SamplingConfig, load_preset
from ..errors import ReviseInputError
from .connectors import Adapter, VisionHead, VisualContextAdapter
from .context import ContextTokens, assemble_batch
from .dit_position import add_position_code
from .lora import has_lora, save_merged
from .prompt_style import DEFAULT_PROMPT_STYLE, IMAGE_TOKEN, check_prompt_style, wan_prompt_clean
from .tokenizers import build_tokenizer
from .understanding import UnderstandingModel, hf_dtype_kwargs
from .vae_checkpoint import decode_checkpointed
from ..video import to_uint8

COMPONENT_FOLDERS = ("transformer", "vae", "text_encoder", "tokenizer", "understanding",
                     "vision_head", "adapter", "visual_context_adapter")
SPECIAL_TOKENS_FILE = "special_tokens.safetensors"
UNCOND_FILE = "unconditioned_context.safetensors"
CONFIG_FILE = "revise_config.json"


class ReviseModel(nn.Module):
    def __init__(self, *, transformer: WanTransformer3DModel, vae: AutoencoderKLWan, text_encoder: UMT5EncoderModel,
                 tokenizer, understanding: UnderstandingModel, vision_head: VisionHead, adapter: Adapter,
                 visual_context_adapter: VisualContextAdapter, context_tokens: ContextTokens,
                 context_config: ContextConfig, sampling_config: SamplingConfig, name: str = "custom",
                 dit_position_embedding: str | None = None, prompt_style: str = DEFAULT_PROMPT_STYLE):
        super().__init__()
        # how conditioning inputs are made from a clip and an instruction (revise/models/prompt_style.py)
        self.prompt_style = check_prompt_style(prompt_style)
        add_position_code(transformer, dit_position_embedding)
        self.dit_position_embedding = dit_position_embedding
        self.transformer = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.understanding = understanding
        self.vision_head = vision_head
        self.adapter = adapter
        self.visual_context_adapter = visual_context_adapter
        self.context_tokens = context_tokens
        self.context_config = context_config
        self.sampling_config = sampling_config
        self.name = name

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path, *, device: str | torch.device | None = None,
             dtype: torch.dtype | None = None, seed: int = 0) -> "ReviseModel":
        """A model folder if ``name_or_path`` is a directory, else a preset with seeded random weights."""
        if Path(name_or_path).is_dir():
            return cls.from_pretrained(name_or_path, device=device, dtype=dtype)
        return cls.from_preset(name_or_path, device=device, dtype=dtype, seed=seed)

    @classmethod
    def from_preset(cls, preset: str | Path | dict[str, Any], *, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None, seed: int = 0) -> "ReviseModel":
        """Random weights (seeded) in the shapes a preset gives. ``device="meta"`` allocates nothing."""
        cfg = preset if isinstance(preset, dict) else load_preset(preset)
        with _building_on(device, dtype), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tokenizer = build_tokenizer("t5", cfg["tokenizer"])
            transformer = WanTransformer3DModel(**cfg["transformer"])
            vae = AutoencoderKLWan(**cfg["vae"])
            te_cfg = {"vocab_size": len(tokenizer), **cfg["text_encoder"]}
            text_encoder = UMT5EncoderModel(UMT5Config(**te_cfg, pad_token_id=tokenizer.pad_token_id,
                                                       eos_token_id=tokenizer.eos_token_id))
            understanding = UnderstandingModel.from_config(cfg["understanding"])
            lm_dim = understanding.llm.config.hidden_size
            text_dim = transformer.config.text_dim
            vision_head = VisionHead(lm_dim=lm_dim, **cfg["vision_head"])
            adapter = Adapter(in_dim=vision_head.config.hidden_dim, out_dim=text_dim, **cfg["adapter"])
            vca = VisualContextAdapter(in_channels=vae.config.z_dim, out_dim=text_dim, **cfg["visual_context_adapter"])
            ctx_cfg = ContextConfig.from_dict(cfg["context"])
            context_tokens = ContextTokens.random(text_dim, lm_dim, ctx_cfg.special_token_len,
                                                  ctx_cfg.uncond_text_len, ctx_cfg.uncond_vision_len)
        model = cls(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                    understanding=understanding, vision_head=vision_head, adapter=adapter,
                    visual_context_adapter=vca, context_tokens=context_tokens, context_config=ctx_cfg,
                    sampling_config=SamplingConfig.from_dict(cfg["sampling"]), name=cfg.get("name", "custom"),
                    dit_position_embedding=cfg.get("dit_position_embedding"),
                    prompt_style=cfg.get("prompt_style", DEFAULT_PROMPT_STYLE))
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, base: str | Path | None = None) -> "ReviseModel":
        """Load a model folder. ``base`` may name a diffusers Wan2.1 folder (such as
        Wan2.1-T2V-1.3B-Diffusers) that supplies whichever of transformer/, vae/, text_encoder/ and
        tokenizer/ the folder lacks, loaded as it is, with no conversion."""
        path = Path(path)
        cfg = read_model_config(path, base)
        dirs = component_dirs(path, Path(base) if base is not None else None)
        try:
            special = load_file(path / SPECIAL_TOKENS_FILE)
            uncond = load_file(path / UNCOND_FILE)
            model = cls(
                transformer=WanTransformer3DModel.from_pretrained(dirs["transformer"], torch_dtype=dtype),
                vae=AutoencoderKLWan.from_pretrained(dirs["vae"], torch_dtype=dtype),
                text_encoder=UMT5EncoderModel.from_pretrained(dirs["text_encoder"], **hf_dtype_kwargs(dtype)),
                tokenizer=AutoTokenizer.from_pretrained(dirs["tokenizer"]),
                understanding=UnderstandingModel.from_pretrained(path / "understanding", dtype),
                vision_head=VisionHead.from_pretrained(path / "vision_head", torch_dtype=dtype),
                adapter=Adapter.from_pretrained(path / "adapter", torch_dtype=dtype),
                visual_context_adapter=VisualContextAdapter.from_pretrained(path / "visual_context_adapter", torch_dtype=dtype),
                context_tokens=ContextTokens(special, uncond["uncond_context"], uncond["uncond_ar_vision"]),
                context_config=ContextConfig.from_dict(cfg.get("context", {})),
                sampling_config=SamplingConfig.from_dict(cfg.get("sampling", {})),
                name=cfg.get("name", path.name),
                dit_position_embedding=cfg.get("dit_position_embedding"),
                prompt_style=cfg.get("prompt_style", DEFAULT_PROMPT_STYLE),
            )
        except Exception as err:  # a corrupt file: safetensors, diffusers and transformers raise all kinds
            if isinstance(err, (ReviseInputError, MemoryError, torch.OutOfMemoryError)):
                raise
            reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            raise ReviseInputError(f"cannot load model folder {path}: {reason}") from err
        if dtype is not None:
            model.to(dtype)
        if device is not None:
            model.to(device)
        return model.eval()

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the folder; it appears at ``path`` only once complete (an old one is replaced)."""
        with atomic_folder(path) as tmp:
            if has_lora(self.transformer):       # LoRA adapters merged in: a plain folder (revise/models/lora.py)
                save_merged(self.transformer, tmp / "transformer")
            else:
                self.transformer.save_pretrained(tmp / "transformer")
            self.vae.save_pretrained(tmp / "vae")
            self.text_encoder.save_pretrained(tmp / "text_encoder")
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            self.understanding.save_pretrained(tmp / "understanding")
            self.vision_head.save_pretrained(tmp / "vision_head")
            self.adapter.save_pretrained(tmp / "adapter")
            self.visual_context_adapter.save_pretrained(tmp / "visual_context_adapter")
            save_file(self.context_tokens.special_state(), tmp / SPECIAL_TOKENS_FILE)
            save_file(self.context_tokens.uncond_state(), tmp / UNCOND_FILE)
            config = model_config_dict(self.name, self.context_config, self.sampling_config,
                                       self.dit_position_embedding, self.prompt_style)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return Path(path)

    # ---- inspection -----------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        counts = {name: sum(p.numel() for p in getattr(self, name).parameters())
                  for name in ("transformer", "vae", "text_encoder", "understanding", "vision_head", "adapter",
                               "visual_context_adapter", "context_tokens")}
        counts["understanding.vision_tower"] = sum(p.numel() for p in self.understanding.vision_tower.parameters())
        counts["understanding.llm"] = sum(p.numel() for p in self.understanding.llm.parameters())
        return counts

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    # ---- the VAE --------------------------------------------------------------------------
    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.vae.config
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean, device=like.device, dtype=like.dtype).view(shape)
        std = torch.tensor(cfg.latents_std, device=like.device, dtype=like.dtype).view(shape)
        return mean, std

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, F, H, W] in [-1, 1] -> normalised latents [B, z, (F-1)/4+1, H/8, W/8] (the posterior mode)."""
        z = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode()
        mean, std = self._latent_stats(z)
        return (z - mean) / std

    def decode_latents(self, latents: torch.Tensor, checkpointed: bool = False) -> torch.Tensor:
        """Normalised latents -> [B, 3, F, H, W] in [-1, 1]. ``checkpointed`` saves activation memory
        when gradients flow through the decode (USO); the result is the same."""
        latents = latents.to(self.vae.dtype)
        mean, std = self._latent_stats(latents)
        if checkpointed and torch.is_grad_enabled():
            return decode_checkpointed(self.vae, latents * std + mean)
        return self.vae.decode(latents * std + mean).sample.clamp(-1, 1)

    # ---- the three context sources --------------------------------------------------------
    def encode_text(self, instructions: Sequence[str]) -> list[torch.Tensor]:
        """UMT5 hidden states of each instruction, cut to its real length: list of [n_i, text_dim]."""
        if self.prompt_style == "release":
            instructions = [wan_prompt_clean(i) for i in instructions]
        enc = self.tokenizer(list(instructions), padding=True, truncation=True,
                             max_length=self.context_config.max_text_len, return_tensors="pt")
        dev = self.text_encoder.device
        ids, mask = enc.input_ids.to(dev), enc.attention_mask.to(dev)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return [h[: int(n)] for h, n in zip(hidden, mask.sum(1))]

    def vlm_tokens(self, videos: torch.Tensor, instructions: Sequence[str],
                   vlm_images: torch.Tensor | None = None) -> torch.Tensor:
        """Source clips [B, 3, F, H, W] + instructions -> VLM hidden states -> vision head -> adapter:
        [B, num_vision_tokens * adapter_queries, text_dim].

        In the ``release`` prompt style the VLM sees one image per clip: ``vlm_images`` [B, 3, S, S]
        (pixel values of the file's frame 0, ``understanding.preprocess_images``), or, when not
        given, each clip's first frame."""
        return self.vlm_from_hidden(*self.vlm_hidden_states(videos, instructions, vlm_images))

    def vlm_hidden_states(self, videos: torch.Tensor, instructions: Sequence[str],
                          vlm_images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The VLM's last hidden states [B, L, lm_dim] and mask [B, L] for the conditioning prompts."""
        u = self.understanding
        if self.prompt_style == "revise":
            prompts = [u.conditioning_prompt(i) for i in instructions]
            return u.hidden_states(prompts, [[v] for v in videos])
        if vlm_images is None:
            vlm_images = u.preprocess_images([to_uint8(v[:, :1])[0] for v in videos])
        prompts = [u.release_conditioning_prompt(i) for i in instructions]
        return u.hidden_states(prompts, [[img] for img in vlm_images], media_token=IMAGE_TOKEN)

    def vlm_from_hidden(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """VLM hidden states [B, L, lm_dim] -> vision head -> adapter: [B, n, text_dim]."""
        return self.adapter(self.vision_head(hidden.to(self.vision_head.dtype), mask))

    def uncond_vlm_tokens(self) -> torch.Tensor:
        """The unconditional branch's VLM tokens [1, n, text_dim], from ``uncond_ar_vision``."""
        return self.vlm_from_hidden(self.context_tokens.uncond_ar_vision)

    def source_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised source latents -> [B, n, text_dim]."""
        return self.visual_context_adapter(latents.to(self.visual_context_adapter.dtype))

    def build_context(self, source_latents: torch.Tensor, source_video: torch.Tensor,
                      instructions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditional and unconditional mixed contexts, each [B, max_context_len, text_dim]."""
        return self.assemble_contexts(source_latents, self.vlm_tokens(source_video, instructions),
                                      self.encode_text(instructions))

    def assemble_contexts(self, source_latents: torch.Tensor, vlm: torch.Tensor | Sequence[torch.Tensor],
                          text: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Both mixed contexts from the VLM tokens and text features computed already."""
        visual = self.source_tokens(source_latents)
        b = visual.shape[0]
        return self._mixed_context(visual, vlm, text, [False] * b), self._mixed_context(visual, vlm, text, [True] * b)

    def training_context(self, source_latents: torch.Tensor, vlm: torch.Tensor | Sequence[torch.Tensor],
                         text: Sequence[torch.Tensor], drop: Sequence[bool]) -> torch.Tensor:
        """One mixed context per sample, the samples ``drop`` marks with the unconditional VLM and
        text tokens (condition dropout)."""
        return self._mixed_context(self.source_tokens(source_latents), vlm, text, drop)

    def _mixed_context(self, visual: torch.Tensor, vlm: torch.Tensor | Sequence[torch.Tensor],
                       text: Sequence[torch.Tensor], drop: Sequence[bool]) -> torch.Tensor:
        """[B, max_context_len, text_dim]; the source-video tokens ``visual`` stay in every sample."""
        vlm, text = list(vlm), list(text)
        if any(drop):
            uncond_vlm = self.uncond_vlm_tokens()[0]
            vlm = [uncond_vlm if d else t for d, t in zip(drop, vlm)]
            text = [self.context_tokens.uncond_context if d else t for d, t in zip(drop, text)]
        ctx = assemble_batch(self.context_tokens.special_dict(), visual, vlm, text, self.context_config.max_context_len)
        return ctx.to(self.transformer.dtype)


def model_config_dict(name: str, context: ContextConfig, sampling: SamplingConfig,
                      dit_position_embedding: str | None = None,
                      prompt_style: str = DEFAULT_PROMPT_STYLE) -> dict[str, Any]:
    """The content of ``revise_config.json``."""
    config = {"_class_name": "ReviseModel", "name": name, "prompt_style": check_prompt_style(prompt_style),
              "context": dataclasses.asdict(context), "sampling": dataclasses.asdict(sampling)}
    if dit_position_embedding is not None:      # absent in released folders: no code
        config["dit_position_embedding"] = dit_position_embedding
    return config


WAN_COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer")


def component_dirs(path: Path, base: Path | None = None) -> dict[str, Path]:
    """Where each component folder is: in ``path``, or for the Wan parts in ``base`` (a diffusers Wan folder)."""
    dirs = {}
    for c in COMPONENT_FOLDERS:
        dirs[c] = path / c
        if not dirs[c].is_dir() and base is not None and c in WAN_COMPONENTS:
            dirs[c] = base / c
    return dirs


#: Weight files that are pickles: never loaded (unpickling runs code the file names).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_weight_files(path: Path, dirs: dict[str, Path]) -> None:
    """Every component with weights holds safetensors and no pickle: a pickled weight file is refused
    by name (``revise convert`` turns released pickles into safetensors without unpickling them)."""
    for c, d in dirs.items():
        pickles = sorted(p for p in d.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
        if pickles:
            raise ReviseInputError(f"model folder {path}: {pickles[0].relative_to(d.parent)} is a pickle, which revise "
                                   "never loads (it could run code); convert the release with 'revise convert'")
        if c != "tokenizer" and not any(d.rglob("*.safetensors")):
            raise ReviseInputError(f"model folder {path}: {c}/ has no weights (*.safetensors)")


def read_model_config(path: str | Path, base: str | Path | None = None) -> dict[str, Any]:
    """``revise_config.json`` of a model folder, after checking that every component is there."""
    path = Path(path)
    if not path.is_dir():
        raise ReviseInputError(f"model folder {path} does not exist")
    if base is not None and not Path(base).is_dir():
        raise ReviseInputError(f"base Wan folder {base} does not exist")
    dirs = component_dirs(path, Path(base) if base is not None else None)
    missing = [f"{c}/" for c, d in dirs.items() if not d.is_dir()]
    missing += [f for f in (SPECIAL_TOKENS_FILE, UNCOND_FILE, CONFIG_FILE) if not (path / f).is_file()]
    if missing:
        raise ReviseInputError(f"model folder {path} is missing {', '.join(missing)}")
    check_weight_files(path, dirs)
    try:
        return json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as err:
        raise ReviseInputError(f"{path / CONFIG_FILE} is not valid JSON: {err}") from None


def sampling_defaults(name_or_path: str | Path) -> SamplingConfig:
    """The sampling defaults of a model folder or preset, without loading any weights."""
    if Path(name_or_path).is_dir():
        return SamplingConfig.from_dict(read_model_config(name_or_path).get("sampling", {}))
    return SamplingConfig.from_dict(load_preset(name_or_path)["sampling"])


def prompt_style_of(name_or_path: str | Path) -> str:
    """The prompt style of a model folder or preset, without loading any weights."""
    if Path(name_or_path).is_dir():
        return read_model_config(name_or_path).get("prompt_style", DEFAULT_PROMPT_STYLE)
    return load_preset(name_or_path).get("prompt_style", DEFAULT_PROMPT_STYLE)


@contextlib.contextmanager
def _building_on(device: str | torch.device | None, dtype: torch.dtype | None) -> Iterator[None]:
    """Create parameters directly on ``device`` in ``dtype`` (no float32 copy on the CPU first)."""
    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            yield
    finally:
        torch.set_default_dtype(old)

