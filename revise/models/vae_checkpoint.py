"""Wan VAE decoding with gradient checkpointing, for the critic's path in USO training.

diffusers' Wan VAE decodes one latent frame at a time, carrying a feature cache (the last frames
each causal conv saw) from chunk to chunk, and has no gradient checkpointing. Here each chunk runs
under ``torch.utils.checkpoint`` with the cache it starts from as an input and the cache it leaves
as an output, so the recomputation in the backward pass sees exactly what the forward pass saw and
only chunk boundaries stay in memory. Same outputs as ``vae.decode``.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def _chunk(vae, x: torch.Tensor, cache: list, first: bool) -> tuple[torch.Tensor, list]:
    cache = list(cache)
    out = vae.decoder(x, feat_cache=cache, feat_idx=[0], first_chunk=first)
    return out, cache


def decode_checkpointed(vae, z: torch.Tensor) -> torch.Tensor:
    """Unnormalised latents [B, z, T, h, w] -> video [B, 3, 4(T-1)+1, H, W] in [-1, 1]."""
    if vae.config.patch_size is not None:
        raise NotImplementedError("patchified Wan VAEs (Wan2.2) are not supported here")
    vae.clear_cache()
    cache = list(vae._feat_map)
    x = vae.post_quant_conv(z)
    outs = []
    for i in range(x.shape[2]):
        out, cache = checkpoint(_chunk, vae, x[:, :, i:i + 1], cache, i == 0, use_reentrant=False)
        outs.append(out)
    vae.clear_cache()
    return torch.cat(outs, 2).clamp(-1, 1)
