"""The learned modules that join the understanding VLM and the source video to the DiT.

Attribute names follow the released ReViSE / Omni-Video state dicts (``decoder_query``,
``fc.0``, ``fc.2``, ``visionHeadAdapter.*``, ``adapter.*``, ``patch_embedding``, ``projection``),
so official weights load by name.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def _query_transformer(d_model: int, num_heads: int, num_encoder_layers: int, num_decoder_layers: int) -> nn.Transformer:
    """``nn.Transformer`` as the release builds it: pre-norm, batch-first, ffn 4x, no dropout."""
    def layer(cls):
        return cls(d_model, num_heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True)

    # Built from parts only to turn off the nested-tensor fast path, which pre-norm layers cannot use;
    # the parameter names are those of a plain nn.Transformer.
    encoder = nn.TransformerEncoder(layer(nn.TransformerEncoderLayer), num_encoder_layers,
                                    norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
    decoder = nn.TransformerDecoder(layer(nn.TransformerDecoderLayer), num_decoder_layers, norm=nn.LayerNorm(d_model))
    return nn.Transformer(d_model, num_heads, custom_encoder=encoder, custom_decoder=decoder, batch_first=True)


class _QueryResampler(ModelMixin, ConfigMixin):
    """Learned queries attend, through an encoder-decoder transformer, to projected inputs."""

    def _build(self, in_dim: int, d_model: int, num_queries: int, num_heads: int,
               num_encoder_layers: int, num_decoder_layers: int) -> nn.Transformer:
        self.fc = nn.Sequential(nn.Linear(in_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.decoder_query = nn.Parameter(torch.randn(1, num_queries, d_model) * d_model**-0.5)
        return _query_transformer(d_model, num_heads, num_encoder_layers, num_decoder_layers)

    def _resample(self, transformer: nn.Transformer, inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        src = self.fc(inputs)
        tgt = self.decoder_query.expand(src.shape[0], -1, -1).to(src.dtype)
        pad = None if mask is None else ~mask.bool()
        return transformer(src, tgt, src_key_padding_mask=pad, memory_key_padding_mask=pad)


class VisionHead(_QueryResampler):
    """VLM last hidden states [B, L, lm_dim] -> ``num_queries`` vision tokens [B, Q, hidden_dim]."""

    @register_to_config
    def __init__(self, lm_dim: int = 4096, hidden_dim: int = 1152, num_queries: int = 4, num_heads: int = 8,
                 num_encoder_layers: int = 4, num_decoder_layers: int = 4):
        super().__init__()
        self.visionHeadAdapter = self._build(lm_dim, hidden_dim, num_queries, num_heads,
                                             num_encoder_layers, num_decoder_layers)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._resample(self.visionHeadAdapter, hidden_states, attention_mask)


class Adapter(_QueryResampler):
    """Each vision token on its own -> ``num_queries`` context tokens of the DiT's text width.

    [B, V, in_dim] -> [B, V * num_queries, out_dim], the V blocks concatenated in order.
    """

    @register_to_config
    def __init__(self, in_dim: int = 1152, out_dim: int = 4096, num_queries: int = 256, num_heads: int = 8,
                 num_encoder_layers: int = 4, num_decoder_layers: int = 4):
        super().__init__()
        self.adapter = self._build(in_dim, out_dim, num_queries, num_heads, num_encoder_layers, num_decoder_layers)

    def forward(self, vision_tokens: torch.Tensor) -> torch.Tensor:
        b, v, d = vision_tokens.shape
        out = self._resample(self.adapter, vision_tokens.reshape(b * v, 1, d), None)
        return out.reshape(b, v * out.shape[1], out.shape[2])


class VisualContextAdapter(ModelMixin, ConfigMixin):
    """Normalised source latents [B, C, f, h, w] -> tokens [B, f*(h/4)*(w/4), out_dim].

    Conv3d patchify (kernel = stride = patch_size) -> LayerNorm (no affine) -> Linear -> LayerNorm (no affine).

    ``position_embedding="sincos"`` (not in the release, whose layout is the default ``None``) adds a
    fixed 3D sine-cosine code of each token's (frame, row, column) after the first norm: the DiT sees
    the context through cross-attention, which carries no positions, so a model trained from scratch
    (the ``mini`` preset) needs it to tell where a source token lies.
    """

    @register_to_config
    def __init__(self, in_channels: int = 16, hidden_dim: int = 1536, out_dim: int = 4096,
                 patch_size: tuple[int, int, int] = (1, 4, 4), position_embedding: str | None = None):
        super().__init__()
        if position_embedding not in (None, "sincos"):
            raise ValueError(f"position_embedding must be None or 'sincos', not {position_embedding!r}")
        self.patch_embedding = nn.Conv3d(in_channels, hidden_dim, kernel_size=tuple(patch_size), stride=tuple(patch_size))
        self.norm_in = nn.LayerNorm(hidden_dim, elementwise_affine=False)
        self.projection = nn.Linear(hidden_dim, out_dim)
        self.norm_out = nn.LayerNorm(out_dim, elementwise_affine=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(latents)
        grid = x.shape[2:]
        x = self.norm_in(x.flatten(2).transpose(1, 2))
        if self.config.position_embedding == "sincos":
            x = x + sincos_3d(grid, x.shape[-1], x.device).to(x.dtype)
        return self.norm_out(self.projection(x))


def sincos_3d(grid: tuple[int, int, int], dim: int, device: torch.device | None = None) -> torch.Tensor:
    """[f*h*w, dim] fixed position code: a third of the channels (in sin/cos pairs) per axis, each at
    geometric frequencies; unused channels (dim not divisible by 6) are zero."""
    per_axis = (dim // 6) * 2
    out = torch.zeros(*grid, dim, device=device)
    for axis, n in enumerate(grid):
        pos = torch.arange(n, device=device, dtype=torch.float32)
        freq = 1.0 / (100.0 ** (torch.arange(per_axis // 2, device=device, dtype=torch.float32) / max(per_axis // 2, 1)))
        ang = pos[:, None] * freq[None]
        code = torch.cat([ang.sin(), ang.cos()], -1)                 # [n, per_axis]
        shape = [1, 1, 1, per_axis]
        shape[axis] = n
        out[..., axis * per_axis:(axis + 1) * per_axis] = code.view(shape)
    return out.flatten(0, 2)
