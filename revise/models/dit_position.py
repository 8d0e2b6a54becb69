"""An optional absolute position code on the DiT's input tokens.

diffusers' Wan DiT places its video tokens only by 3D RoPE in self-attention, which is relative: a
token cannot tell where in the frame it is, so it cannot pick "its" source token out of the
cross-attended source-video context. The released model, trained at scale, finds its way; a small
model trained from scratch (the ``mini`` preset) learns to copy the source far faster when each
token also carries the fixed sine-cosine code of its (frame, row, column), the same code the visual
context adapter adds to the source tokens (``VisualContextAdapter(position_embedding="sincos")``).

:func:`add_position_code` swaps the DiT's patch embedding for :class:`PositionalPatchEmbedding`, a
``Conv3d`` with the same parameters (the state dict and the saved ``transformer/`` folder do not
change); the model folder's ``revise_config.json`` records ``dit_position_embedding``.
"""

from __future__ import annotations

import torch
from torch import nn

from .connectors import sincos_3d

POSITION_EMBEDDINGS = (None, "sincos")


class PositionalPatchEmbedding(nn.Conv3d):
    """Patchify (kernel = stride) and add the fixed code of each output position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)                                       # [B, D, f, h, w]
        grid = tuple(y.shape[2:])
        code = sincos_3d(grid, y.shape[1], y.device).to(y.dtype)     # [f*h*w, D]
        return y + code.T.reshape(1, y.shape[1], *grid)


def add_position_code(transformer: nn.Module, kind: str | None) -> None:
    """Give ``transformer`` (a diffusers Wan DiT) the position code ``kind`` (None: leave it as is)."""
    if kind not in POSITION_EMBEDDINGS:
        raise ValueError(f"dit_position_embedding must be one of {POSITION_EMBEDDINGS}, not {kind!r}")
    old = transformer.patch_embedding
    if kind is None or isinstance(old, PositionalPatchEmbedding):
        return
    new = PositionalPatchEmbedding(old.in_channels, old.out_channels, old.kernel_size, old.stride,
                                   device=old.weight.device, dtype=old.weight.dtype)
    new.load_state_dict(old.state_dict())
    new.requires_grad_(old.weight.requires_grad)
    transformer.patch_embedding = new
