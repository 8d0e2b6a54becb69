"""The mixed context the DiT cross-attends to, and the learned tokens that frame it.

Layout (docs/design.md)::

    <img_st> source-video tokens <img_ed> [<img_st> reference tokens <img_ed>]
    <ipl_st> VLM adapter tokens  <ipl_ed>
    <prp_st> T5 text tokens      <prp_ed>

then truncated to ``max_context_len`` and zero-padded up to it. The DiT attends to the padding
(no mask), as the released model does.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

SPECIAL_TOKEN_NAMES = ("<img_st>", "<img_ed>", "<ipl_st>", "<ipl_ed>", "<prp_st>", "<prp_ed>")


def assemble_context(special: dict[str, torch.Tensor], visual: torch.Tensor, vlm: torch.Tensor, text: torch.Tensor,
                     max_len: int, reference: torch.Tensor | None = None) -> torch.Tensor:
    """One sample's context [max_len, D] from blocks of shape [n_i, D]."""
    blocks = [special["<img_st>"], visual, special["<img_ed>"]]
    if reference is not None:
        blocks += [special["<img_st>"], reference, special["<img_ed>"]]
    blocks += [special["<ipl_st>"], vlm, special["<ipl_ed>"], special["<prp_st>"], text, special["<prp_ed>"]]
    ctx = torch.cat([b.to(visual.dtype) for b in blocks])[:max_len]
    return torch.cat([ctx, ctx.new_zeros(max_len - ctx.shape[0], ctx.shape[1])])


def assemble_batch(special: dict[str, torch.Tensor], visual: torch.Tensor, vlm: Sequence[torch.Tensor],
                   text: Sequence[torch.Tensor], max_len: int) -> torch.Tensor:
    """[B, max_len, D] from per-sample blocks (``visual`` [B, Nv, D]; ``vlm``/``text`` lists of [n_i, D])."""
    return torch.stack([assemble_context(special, visual[i], vlm[i], text[i], max_len) for i in range(visual.shape[0])])


class ContextTokens(nn.Module):
    """The six learned special-token blocks and the unconditional context for guidance.

    ``uncond_context`` [L, text_dim] replaces the T5 text tokens and ``uncond_ar_vision``
    [1, L', lm_dim] replaces the VLM hidden states in the unconditional branch; the source-video
    tokens stay in both branches.
    """

    def __init__(self, special: dict[str, torch.Tensor], uncond_context: torch.Tensor, uncond_ar_vision: torch.Tensor):
        super().__init__()
        missing = [n for n in SPECIAL_TOKEN_NAMES if n not in special]
        if missing:
            raise ValueError(f"special tokens missing: {', '.join(missing)}")
        self.special = nn.ParameterDict({_key(n): nn.Parameter(special[n]) for n in SPECIAL_TOKEN_NAMES})
        self.uncond_context = nn.Parameter(uncond_context)
        self.uncond_ar_vision = nn.Parameter(uncond_ar_vision)

    @classmethod
    def random(cls, text_dim: int, lm_dim: int, special_len: int, uncond_text_len: int, uncond_vision_len: int,
               generator: torch.Generator | None = None) -> "ContextTokens":
        def rand(*shape):
            return torch.randn(*shape, generator=generator) * 0.02
        special = {n: rand(special_len, text_dim) for n in SPECIAL_TOKEN_NAMES}
        return cls(special, rand(uncond_text_len, text_dim), rand(1, uncond_vision_len, lm_dim))

    def special_dict(self) -> dict[str, torch.Tensor]:
        return {n: self.special[_key(n)] for n in SPECIAL_TOKEN_NAMES}

    def special_state(self) -> dict[str, torch.Tensor]:
        """For ``special_tokens.safetensors`` (keys as released: ``<img_st>`` ...)."""
        return {n: t.detach().contiguous() for n, t in self.special_dict().items()}

    def uncond_state(self) -> dict[str, torch.Tensor]:
        """For ``unconditioned_context.safetensors``."""
        return {"uncond_context": self.uncond_context.detach().contiguous(),
                "uncond_ar_vision": self.uncond_ar_vision.detach().contiguous()}


def _key(name: str) -> str:
    return name.strip("<>")
