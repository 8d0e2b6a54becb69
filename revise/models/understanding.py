"""The internal understanding VLM (VILA style): SigLIP vision tower -> ``mlp_downsample``
projector -> causal LM.

It serves two roles: its last hidden states condition the generator, and, asked a question
about a source clip and a candidate edit, its Yes/No answer logits make the critic.

On disk it keeps the VILA layout: ``config.json`` (ours), ``llm/`` (a transformers causal LM with
its tokenizer), ``vision_tower/`` (a transformers SigLIP vision model), ``mm_projector/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, SiglipVisionConfig, SiglipVisionModel

from ..errors import ReviseInputError
from ..video import even_indices
from .prompt_style import IMAGE_TOKEN, release_vlm_prompt
from .tokenizers import build_tokenizer

MEDIA_TOKEN = "<video>"          # stands in a prompt where one clip's frame embeddings go
GENERATION_ANSWER = "[GEN_VID]"  # the assistant turn of a conditioning prompt, as released
PREPROCESSOR_FILE = "preprocessor_config.json"   # SigLIP's image processor settings, beside the vision tower


class MLPDownsampleProjector(ModelMixin, ConfigMixin):
    """VILA's ``mlp_downsample``: merge each 2x2 block of patch tokens (odd sides zero-padded),
    then LayerNorm -> Linear -> GELU -> Linear. Weight names ``layers.{1,2,4}`` as released."""

    @register_to_config
    def __init__(self, mm_hidden_size: int = 1152, hidden_size: int = 4096, mm_projector_type: str = "mlp_downsample"):
        super().__init__()
        if mm_projector_type != "mlp_downsample":
            raise ValueError(f"only the mlp_downsample projector is implemented, not {mm_projector_type!r}")
        c = 4 * mm_hidden_size
        self.layers = nn.Sequential(nn.Identity(), nn.LayerNorm(c), nn.Linear(c, hidden_size), nn.GELU(),
                                    nn.Linear(hidden_size, hidden_size))

    @staticmethod
    def merge_2x2(x: torch.Tensor) -> torch.Tensor:
        """[N, P, C] patch tokens of a square grid -> [N, ceil(s/2)^2, 4C], VILA's element order."""
        n, p, c = x.shape
        side = int(round(p**0.5))
        x = x.reshape(n, side, side, c)
        x = F.pad(x, (0, 0, 0, side % 2, 0, side % 2))  # zero row/column at the end of odd sides
        s = x.shape[1]
        x = x.reshape(n, s, s // 2, 2 * c).permute(0, 2, 1, 3).reshape(n, s // 2, s // 2, 4 * c)
        return x.reshape(n, -1, 4 * c)

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        return self.layers[1:](self.merge_2x2(patch_tokens))


class UnderstandingModel(nn.Module):
    """Vision tower + projector + causal LM, with the prompt handling both roles need."""

    def __init__(self, vision_tower: SiglipVisionModel, mm_projector: MLPDownsampleProjector,
                 llm: nn.Module, tokenizer, num_frames: int = 8, vision_select_layer: int = -2,
                 critic_change_clip: bool = False, image_processor: dict[str, Any] | None = None):
        super().__init__()
        self.vision_tower = vision_tower
        self.mm_projector = mm_projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.num_frames = num_frames
        self.vision_select_layer = vision_select_layer
        # as a critic, also shown the change (edit - source) / 2 as a third clip (revise/critic.py)
        self.critic_change_clip = critic_change_clip
        # SigLIP image processor settings (preprocessor_config.json), for frames given as uint8 images
        self.image_processor = dict(image_processor or {})

    # ---- construction and storage -------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "UnderstandingModel":
        """Random weights from a preset's ``understanding`` block."""
        tokenizer = build_tokenizer("chat", cfg["tokenizer"])
        vision_tower = SiglipVisionModel(SiglipVisionConfig(**cfg["vision_tower"]))
        llm_cfg = dict(cfg["llm"])
        llm_cfg.setdefault("vocab_size", len(tokenizer))
        if llm_cfg["vocab_size"] < len(tokenizer):
            raise ValueError(f"llm vocab_size {llm_cfg['vocab_size']} < tokenizer size {len(tokenizer)}")
        llm_cfg.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
        llm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**llm_cfg))
        projector = MLPDownsampleProjector(vision_tower.config.hidden_size, llm.config.hidden_size)
        return cls(vision_tower, projector, llm, tokenizer, cfg.get("num_frames", 8), cfg.get("vision_select_layer", -2),
                   cfg.get("critic_change_clip", False))

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.llm.save_pretrained(path / "llm")
        self.tokenizer.save_pretrained(path / "llm")
        self.vision_tower.save_pretrained(path / "vision_tower")
        self.mm_projector.save_pretrained(path / "mm_projector")
        if self.image_processor:
            (path / "vision_tower" / PREPROCESSOR_FILE).write_text(json.dumps(self.image_processor, indent=2) + "\n")
        (path / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")

    def config_dict(self) -> dict[str, Any]:
        return {
            "architectures": ["ReviseUnderstandingModel"],
            "mm_projector_type": "mlp_downsample",
            "mm_hidden_size": self.vision_tower.config.hidden_size,
            "hidden_size": self.llm.config.hidden_size,
            "num_video_frames": self.num_frames,
            "mm_vision_select_layer": self.vision_select_layer,
            "critic_change_clip": self.critic_change_clip,
        }

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None) -> "UnderstandingModel":
        path = Path(path)
        for sub in ("config.json", "llm", "vision_tower", "mm_projector"):
            if not (path / sub).exists():
                raise ReviseInputError(f"understanding model folder {path} is missing '{sub}'")
        cfg = json.loads((path / "config.json").read_text())
        kw = hf_dtype_kwargs(dtype)
        llm = AutoModelForCausalLM.from_pretrained(path / "llm", **kw)
        tokenizer = AutoTokenizer.from_pretrained(path / "llm")
        vision_tower = SiglipVisionModel.from_pretrained(path / "vision_tower", **kw)
        projector = MLPDownsampleProjector.from_pretrained(path / "mm_projector", torch_dtype=dtype)
        processor_file = path / "vision_tower" / PREPROCESSOR_FILE
        try:
            processor = json.loads(processor_file.read_text()) if processor_file.is_file() else None
        except json.JSONDecodeError as err:
            raise ReviseInputError(f"{processor_file} is not valid JSON: {err}") from None
        return cls(vision_tower, projector, llm, tokenizer, cfg.get("num_video_frames", 8),
                   cfg.get("mm_vision_select_layer", -2), cfg.get("critic_change_clip", False), processor)

    # ---- vision ---------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.vision_tower.config.image_size

    def sample_frames(self, video: torch.Tensor) -> torch.Tensor:
        """[3, F, H, W] clip in [-1, 1] -> [num_frames, 3, S, S] at the tower's input size.

        SigLIP normalises with mean = std = 0.5, so [-1, 1] pixels are already its input.
        Resizing is differentiable, so the critic can pass gradients back to a decoded clip.
        """
        idx = even_indices(video.shape[1], self.num_frames)
        frames = video[:, idx].transpose(0, 1)
        if frames.shape[-2:] == (self.image_size, self.image_size):
            return frames
        # resized in float32: antialiased resizing has no bf16 backward on the CPU
        return F.interpolate(frames.float(), size=(self.image_size, self.image_size), mode="bilinear",
                             align_corners=False, antialias=True).to(frames.dtype)

    def preprocess_images(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 frames [n, H, W, 3] -> pixel values [n, 3, S, S] as SigLIP's image processor makes them:
        resized whole (no crop) with PIL (bicubic unless its preprocessor_config.json says otherwise),
        rescaled to [0, 1], normalised (mean = std = 0.5 unless it says otherwise)."""
        cfg = self.image_processor
        size = cfg.get("size", {})
        hw = (size.get("height", self.image_size), size.get("width", self.image_size))
        resample = Image.Resampling(cfg.get("resample", Image.Resampling.BICUBIC))
        mean = torch.tensor(cfg.get("image_mean", [0.5] * 3)).view(1, 3, 1, 1)
        std = torch.tensor(cfg.get("image_std", [0.5] * 3)).view(1, 3, 1, 1)
        images = [np.asarray(Image.fromarray(np.asarray(f, dtype=np.uint8)).resize(hw[::-1], resample)) for f in frames]
        pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        return (pixels * cfg.get("rescale_factor", 1 / 255) - mean) / std

    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel values [N, 3, S, S] -> [N, tokens_per_frame, lm_dim]."""
        out = self.vision_tower(pixel_values=pixels.to(self.vision_tower.device, self.vision_tower.dtype),
                                output_hidden_states=True)
        return self.mm_projector(out.hidden_states[self.vision_select_layer])

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """[3, F, H, W] -> [num_frames * tokens_per_frame, lm_dim], the frames in order."""
        return self.embed_videos([video])[0]

    def embed_videos(self, videos: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Several clips through one vision-tower forward: each [num_frames * tokens_per_frame, lm_dim]."""
        if not videos:
            return []
        feats = self.embed_images(torch.cat([self.sample_frames(v) for v in videos]))   # [clips * F, T, D]
        return list(feats.reshape(len(videos), -1, feats.shape[-1]))

    # ---- prompts --------------------------------------------------------------------------
    def chat(self, user: str, assistant: str | None = None) -> str:
        """A chat-templated prompt; without ``assistant`` it ends where the answer would start."""
        messages = [{"role": "user", "content": user}]
        if assistant is not None:
            messages.append({"role": "assistant", "content": assistant})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=assistant is None)

    def conditioning_prompt(self, instruction: str) -> str:
        """The released conditioning prompt: user ``<video>\\n{instruction}``, assistant ``[GEN_VID]``."""
        return self.chat(f"{MEDIA_TOKEN}\n{instruction}", GENERATION_ANSWER)

    def release_conditioning_prompt(self, instruction: str) -> str:
        """The released code's conditioning prompt (``prompt_style.release_vlm_prompt``) with the
        ``<|begin_of_text|>`` its tokenizer adds in front; its one ``<image>`` takes one image's tokens."""
        return self.tokenizer.bos_token + release_vlm_prompt(instruction)

    def embed_prompts(self, prompts: Sequence[str], videos: Sequence[Sequence[torch.Tensor]],
                      media_token: str = MEDIA_TOKEN) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with each ``<video>`` replaced by that clip's frame embeddings.

        ``videos[i]`` holds one [3, F, H, W] clip per ``<video>`` in ``prompts[i]``; with
        ``media_token="<image>"`` it holds one image's pixel values [3, S, S] per ``<image>`` instead.
        Returns right-padded embeddings [B, L, D] (zeros past each prompt) and a bool mask [B, L].
        The whole batch takes one tokenizer call, one vision-tower forward and one embedding lookup.
        """
        embed = self.llm.get_input_embeddings()
        marked = self.prompt_ids(prompts, media_token, media_id=-1)
        for ids, clips in zip(marked, videos):
            if ids.count(-1) != len(clips):
                raise ValueError(f"prompt has {ids.count(-1)} {media_token} markers but {len(clips)} clips were given")
        media = [c for clips in videos for c in clips]
        if media_token == IMAGE_TOKEN:
            clip_embeds = list(self.embed_images(torch.stack(media))) if media else []
        else:
            clip_embeds = self.embed_videos(media)   # each [T, D], T the same
        per_clip = clip_embeds[0].shape[0] if clip_embeds else 0
        rows = [[i for t in ids for i in ([-1] * per_clip if t == -1 else [t])] for ids in marked]  # -1: media
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (length - len(r)) for r in rows]).to(embed.weight.device, non_blocking=True)
        lengths = torch.tensor([len(r) for r in rows]).to(ids.device, non_blocking=True)
        mask = torch.arange(length, device=ids.device)[None] < lengths[:, None]
        embeds = embed(ids.clamp_min(0))
        if clip_embeds:
            is_media = (ids < 0).unsqueeze(-1)
            embeds = embeds.masked_scatter(is_media, torch.cat(clip_embeds).to(embeds.dtype))
        return embeds * mask.unsqueeze(-1).to(embeds.dtype), mask

    def prompt_ids(self, prompts: Sequence[str], media_token: str = MEDIA_TOKEN, media_id: int = -200) -> list[list[int]]:
        """Token ids of each prompt, with one ``media_id`` where each media marker stands (VILA writes
        -200 there). The text between markers is tokenized piece by piece, as VILA does, with no
        special tokens added (a prompt carries its own); the whole batch takes one tokenizer call."""
        pieces = [prompt.split(media_token) for prompt in prompts]
        texts = [t for prompt_pieces in pieces for t in prompt_pieces if t]
        text_ids = iter(self.tokenizer(texts, add_special_tokens=False).input_ids if texts else [])
        rows = []
        for prompt_pieces in pieces:
            ids: list[int] = []
            for i, text in enumerate(prompt_pieces):
                if text:
                    ids += next(text_ids)
                if i < len(prompt_pieces) - 1:
                    ids.append(media_id)
            rows.append(ids)
        return rows

    # ---- the two roles --------------------------------------------------------------------
    def hidden_states(self, prompts: Sequence[str], videos: Sequence[Sequence[torch.Tensor]],
                      media_token: str = MEDIA_TOKEN) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states (after the LM's final norm) [B, L, D] and their mask [B, L]."""
        embeds, mask = self.embed_prompts(prompts, videos, media_token)
        out = self.llm.base_model(inputs_embeds=embeds, attention_mask=mask.long())
        return out.last_hidden_state, mask

    def answer_token_ids(self, answers: Sequence[str] = ("Yes", "No")) -> list[int]:
        """The first token of each answer word (as it starts an assistant turn)."""
        return [self.tokenizer(a, add_special_tokens=False).input_ids[0] for a in answers]

    def answer_logits(self, prompts: Sequence[str], videos: Sequence[Sequence[torch.Tensor]],
                      answers: Sequence[str] = ("Yes", "No")) -> torch.Tensor:
        """Logits [B, len(answers)] of each answer's first token at the position after each prompt.

        Prompts should end where the answer starts (``chat(question)`` does). Only the answer rows
        of the LM head are computed.
        """
        hidden, mask = self.hidden_states(prompts, videos)
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]
        head = self.llm.get_output_embeddings().weight[self.answer_token_ids(answers)]
        return last @ head.T.to(last.dtype)

    def answer_loss(self, prompts: Sequence[str], videos: Sequence[Sequence[torch.Tensor]],
                    answers: Sequence[str]) -> torch.Tensor:
        """Mean cross-entropy of each short ``answer`` (then the end-of-turn token), teacher-forced after
        its prompt (which ends where the answer starts); per sample, averaged over its answer tokens."""
        embed = self.llm.get_input_embeddings()
        eot = self.tokenizer.eos_token_id
        ids = [self.tokenizer(a, add_special_tokens=False).input_ids + [eot] for a in answers]
        p_embeds, p_mask = self.embed_prompts(prompts, videos)
        lengths = p_mask.sum(1).tolist()
        rows, targets = [], []
        for i, (n, a) in enumerate(zip(lengths, ids)):
            a = torch.tensor(a, device=embed.weight.device)
            rows.append(torch.cat([p_embeds[i, :n], embed(a[:-1]).to(p_embeds.dtype)]))
            targets.append(torch.cat([torch.full((n - 1,), -100, device=a.device), a]))
        length = max(r.shape[0] for r in rows)
        x = torch.stack([F.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows])
        y = torch.stack([F.pad(t, (0, length - t.shape[0]), value=-100) for t in targets])
        mask = (torch.arange(length, device=x.device)[None] < torch.tensor([r.shape[0] for r in rows], device=x.device)[:, None])
        logits = self.llm(inputs_embeds=x, attention_mask=mask.long()).logits.float()
        nll = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=-100, reduction="none")
        per_sample = nll.sum(1) / (y != -100).sum(1).clamp_min(1)
        return per_sample.mean()

    @torch.no_grad()
    def generate(self, prompt: str, videos: Sequence[torch.Tensor] = (), max_new_tokens: int = 64) -> str:
        """Greedy text answer to one prompt."""
        embeds, mask = self.embed_prompts([prompt], [list(videos)])
        ids = self.llm.generate(inputs_embeds=embeds, attention_mask=mask.long(), max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(ids[0], skip_special_tokens=True)


def hf_dtype_kwargs(dtype: torch.dtype | None) -> dict[str, Any]:
    """The dtype keyword of transformers' ``from_pretrained`` (renamed ``dtype`` in 4.56)."""
    if dtype is None:
        return {}
    import transformers
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}
