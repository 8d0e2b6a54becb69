"""ViCLIP_T: text-video similarity, ``100 * cos(video embedding, text embedding)``.

:func:`load_viclip` reads a ViCLIP checkpoint in InternVideo's layout (``ViClip-InternVid-10M-FLT.pth``:
``{"model": state_dict}``, or a bare state dict, ``.pth`` or ``.safetensors``) without running code
from it, and builds the model from the tensor shapes alone:

* ``vision_encoder.*``: a CLIP ViT whose patch embedding is a Conv3d (``conv1``, kernel T x P x P,
  no bias), ``class_embedding``, ``positional_embedding`` [grid^2 + 1, W], a learned
  ``temporal_positional_embedding`` [1, frames, W] added to every patch token per frame, ``ln_pre``,
  ``transformer.resblocks.{i}`` (``ln_1``, ``attn`` = nn.MultiheadAttention, ``ln_2``,
  ``mlp.c_fc`` / ``mlp.c_proj`` with QuickGELU), ``ln_post`` and ``proj`` [W, D] on the class token.
  All frames' patch tokens attend to each other jointly.
* ``text_encoder.*``: the CLIP text transformer (``token_embedding``, ``positional_embedding``
  [context, W], causal ``transformer.resblocks.{i}``, ``ln_final``, ``text_projection`` [W, D]) read
  at the end-of-text token; ViCLIP's context is 32 tokens.
* ``temp``: the contrastive temperature (unused here).

Head counts are not in any tensor: width / 64, as in every released ViCLIP (ViT-L/14: 1024 / 16
vision, 768 / 12 text), unless given. Video input as InternVid's demo: ``frames`` evenly spaced
frames (8 for the release) squashed to the square input size, ImageNet mean/std. Text: OpenAI
CLIP's BPE through a transformers ``CLIPTokenizer`` folder (e.g. any CLIP model's tokenizer files).

:class:`CLIPFrameScorer` is the fallback when no ViCLIP checkpoint is at hand: a transformers
``CLIPModel`` from a local folder, ``100 * cos(frame, text)`` averaged over 8 frames. The report
names which of the two made its ViCLIP_T column.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ReviseInputError
from ...video import even_indices
from ..frames import sample_frames

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_width: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, mlp_width), gelu=QuickGELU(),
                                             c_proj=nn.Linear(mlp_width, width)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_width: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, mlp_width) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


@dataclasses.dataclass(frozen=True)
class ViCLIPConfig:
    vision_width: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    vision_mlp: int = 4096
    patch_size: int = 14
    kernel_size: int = 1
    image_size: int = 224
    num_frames: int = 8
    embed_dim: int = 768
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_mlp: int = 3072
    vocab_size: int = 49408
    context_length: int = 32


class ViCLIPVision(nn.Module):
    def __init__(self, c: ViCLIPConfig):
        super().__init__()
        w, grid = c.vision_width, c.image_size // c.patch_size
        self.conv1 = nn.Conv3d(3, w, (c.kernel_size, c.patch_size, c.patch_size),
                               (c.kernel_size, c.patch_size, c.patch_size), bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(w))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, w))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, c.num_frames, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, c.vision_layers, c.vision_heads, c.vision_mlp)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.zeros(w, c.embed_dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] normalised -> [B, embed_dim]."""
        x = self.conv1(video)                                             # [B, W, T, h, w]
        b, width, t = x.shape[:3]
        x = x.flatten(3).permute(0, 2, 3, 1)                              # [B, T, h*w, W]
        x = x + self.positional_embedding[1:].to(x.dtype)
        temporal = self.temporal_positional_embedding
        temporal = temporal.mean(1, keepdim=True) if t == 1 else temporal[:, :t]
        x = x + temporal.to(x.dtype).unsqueeze(2)                         # the same per frame to every patch
        x = x.transpose(1, 2).reshape(b, -1, width)                       # patch-major, frame-minor tokens
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype).expand(b, 1, width)
        x = self.ln_pre(torch.cat([cls, x], dim=1))
        x = self.ln_post(self.transformer(x))
        return x[:, 0] @ self.proj.to(x.dtype)


class ViCLIPText(nn.Module):
    def __init__(self, c: ViCLIPConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.positional_embedding = nn.Parameter(torch.zeros(c.context_length, c.text_width))
        self.transformer = Transformer(c.text_width, c.text_layers, c.text_heads, c.text_mlp)
        self.ln_final = nn.LayerNorm(c.text_width)
        self.text_projection = nn.Parameter(torch.zeros(c.text_width, c.embed_dim))

    def forward(self, ids: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Token ids [B, context] (zero-padded) and the end-of-text positions [B] -> [B, embed_dim]."""
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        causal = torch.ones(n, n, dtype=torch.bool, device=ids.device).triu(1)
        x = self.ln_final(self.transformer(x, causal))
        return x[torch.arange(len(ids), device=ids.device), eot] @ self.text_projection


class ViCLIP(nn.Module):
    def __init__(self, config: ViCLIPConfig):
        super().__init__()
        self.config = config
        self.vision_encoder = ViCLIPVision(config)
        self.text_encoder = ViCLIPText(config)
        self.temp = nn.Parameter(torch.tensor(0.01))


def unwrap_state_dict(sd: dict) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "module"):
        if isinstance(sd.get(key), dict):
            sd = sd[key]
    return {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def config_from_state_dict(sd: dict[str, torch.Tensor], vision_heads: int | None = None,
                           text_heads: int | None = None) -> ViCLIPConfig:
    try:
        conv = sd["vision_encoder.conv1.weight"]
        pos = sd["vision_encoder.positional_embedding"]
        tok = sd["text_encoder.token_embedding.weight"]
        grid = round((pos.shape[0] - 1) ** 0.5)
        vw, tw = conv.shape[0], tok.shape[1]
        return ViCLIPConfig(
            vision_width=vw, vision_layers=_count_layers(sd, "vision_encoder"),
            vision_heads=vision_heads or max(1, vw // 64),
            vision_mlp=sd["vision_encoder.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            patch_size=conv.shape[3], kernel_size=conv.shape[2], image_size=grid * conv.shape[3],
            num_frames=sd["vision_encoder.temporal_positional_embedding"].shape[1],
            embed_dim=sd["vision_encoder.proj"].shape[1], text_width=tw,
            text_layers=_count_layers(sd, "text_encoder"), text_heads=text_heads or max(1, tw // 64),
            text_mlp=sd["text_encoder.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            vocab_size=tok.shape[0], context_length=sd["text_encoder.positional_embedding"].shape[0])
    except KeyError as err:
        raise ReviseInputError(f"not a ViCLIP checkpoint in InternVideo's layout: no tensor {err}") from None


def _count_layers(sd: dict[str, torch.Tensor], prefix: str) -> int:
    start = f"{prefix}.transformer.resblocks."
    return len({k[len(start):].split(".")[0] for k in sd if k.startswith(start)})


def load_viclip(path: str | Path, vision_heads: int | None = None, text_heads: int | None = None) -> ViCLIP:
    path = Path(path)
    if not path.is_file():
        raise ReviseInputError(f"ViCLIP checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            raw = load_file(path)
        except Exception as err:                          # safetensors raises its own error types
            raise ReviseInputError(f"cannot read {path}: {err}") from None
    else:
        from ...convert.safe_load import load_checkpoint
        raw = load_checkpoint(path)
    sd = unwrap_state_dict(raw)
    try:
        config = config_from_state_dict(sd, vision_heads, text_heads)
    except ReviseInputError as err:
        raise ReviseInputError(f"{path}: {err}") from None
    if config.vision_width % config.vision_heads or config.text_width % config.text_heads:
        raise ReviseInputError(f"ViCLIP head counts {config.vision_heads}/{config.text_heads} do not divide the "
                               f"widths {config.vision_width}/{config.text_width}")
    model = ViCLIP(config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ReviseInputError(f"{path} does not match the ViCLIP layout: missing {missing[:4]}, "
                               f"unexpected {unexpected[:4]}")
    return model.eval()


def _resize_normalize(frames, size: int, mean, std, crop: bool) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, size, size]: squashed, or shortest side + centre crop."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    if crop:
        h, w = x.shape[2:]
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bicubic",
                          antialias=True, align_corners=False)
        top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    else:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return (x.clamp(0, 1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


class ViCLIPScorer:
    kind = "viclip"

    def __init__(self, checkpoint: str | Path, tokenizer: str | Path | None = None, device: str = "cpu",
                 vision_heads: int | None = None, text_heads: int | None = None):
        from transformers import AutoTokenizer

        self.model = load_viclip(checkpoint, vision_heads, text_heads).to(device)
        folder = Path(tokenizer) if tokenizer else Path(checkpoint).parent
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise ReviseInputError(f"no CLIP tokenizer in {folder} ({str(err).splitlines()[0]}): pass "
                                   "--viclip-tokenizer with a CLIP tokenizer folder (vocab.json, merges.txt)") from None
        self.device = device
        self.description = (f"ViCLIP {Path(checkpoint).name} ({self.model.config.num_frames} frames, "
                            f"{self.model.config.image_size} px): 100 * cos(video, text)")

    @torch.no_grad()
    def __call__(self, video_path: str | Path, text: str) -> float:
        c = self.model.config
        frames = sample_frames(video_path, c.num_frames)
        frames = frames[even_indices(len(frames), c.num_frames)]          # repeats frames of a short clip
        video = _resize_normalize(frames, c.image_size, IMAGENET_MEAN, IMAGENET_STD, crop=False)
        v = self.model.vision_encoder(video.transpose(0, 1).unsqueeze(0).to(self.device))
        ids = self.tokenizer(text, truncation=True, max_length=c.context_length)["input_ids"]
        padded = torch.zeros(1, c.context_length, dtype=torch.long)
        padded[0, :len(ids)] = torch.tensor(ids)
        t = self.model.text_encoder(padded.to(self.device), torch.tensor([len(ids) - 1], device=self.device))
        return float(100 * F.cosine_similarity(v.float(), t.float())[0])


class CLIPFrameScorer:
    kind = "clip"

    def __init__(self, folder: str | Path, device: str = "cpu", frames: int = 8):
        from transformers import AutoTokenizer, CLIPModel

        folder = Path(folder)
        try:
            self.model = CLIPModel.from_pretrained(folder).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise ReviseInputError(f"cannot load a CLIPModel and its tokenizer from {folder}: "
                                   f"{str(err).splitlines()[0]}") from None
        pre = folder / "preprocessor_config.json"
        cfg = json.loads(pre.read_text()) if pre.is_file() else {}
        self.mean, self.std = cfg.get("image_mean", CLIP_MEAN), cfg.get("image_std", CLIP_STD)
        self.device, self.frames = device, frames
        self.size = self.model.config.vision_config.image_size
        self.description = (f"CLIP fallback, not ViCLIP: transformers CLIPModel {folder.name}, "
                            f"100 * cos(frame, text) averaged over {frames} frames")

    @torch.no_grad()
    def __call__(self, video_path: str | Path, text: str) -> float:
        pixels = _resize_normalize(sample_frames(video_path, self.frames), self.size, self.mean, self.std, crop=True)
        max_len = self.model.config.text_config.max_position_embeddings
        tokens = self.tokenizer([text], truncation=True, max_length=max_len, return_tensors="pt").to(self.device)
        out = self.model(**tokens, pixel_values=pixels.to(self.device))
        return float(100 * (out.image_embeds @ out.text_embeds[0]).mean())
