"""Checkpoints in the original Wan2.1 layouts with made-up weights, built with the original key names
(those the converters of this package map), for tests and the conversion benchmark."""

from __future__ import annotations

import re
from typing import Callable

import torch
from diffusers import AutoencoderKLWan

Init = Callable[..., torch.Tensor]


def _randn(seed: int, scale: float) -> Init:
    g = torch.Generator().manual_seed(seed)
    return lambda *shape: torch.randn(*shape, generator=g) * scale


def original_dit(dim=64, heads=4, layers=2, ffn=96, text_dim=40, freq_dim=32, in_dim=16, out_dim=16, seed=0,
                 init: Init | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """An original-layout DiT state dict and its config.json."""
    r = init or _randn(seed, 0.05)
    sd = {"patch_embedding.weight": r(dim, in_dim, 1, 2, 2), "patch_embedding.bias": r(dim),
          "text_embedding.0.weight": r(dim, text_dim), "text_embedding.0.bias": r(dim),
          "text_embedding.2.weight": r(dim, dim), "text_embedding.2.bias": r(dim),
          "time_embedding.0.weight": r(dim, freq_dim), "time_embedding.0.bias": r(dim),
          "time_embedding.2.weight": r(dim, dim), "time_embedding.2.bias": r(dim),
          "time_projection.1.weight": r(6 * dim, dim), "time_projection.1.bias": r(6 * dim),
          "head.modulation": r(1, 2, dim), "head.head.weight": r(out_dim * 4, dim), "head.head.bias": r(out_dim * 4)}
    for n in range(layers):
        b = f"blocks.{n}."
        sd[b + "modulation"] = r(1, 6, dim)
        for attn in ("self_attn", "cross_attn"):
            for p in "qkvo":
                sd[f"{b}{attn}.{p}.weight"], sd[f"{b}{attn}.{p}.bias"] = r(dim, dim), r(dim)
            sd[f"{b}{attn}.norm_q.weight"], sd[f"{b}{attn}.norm_k.weight"] = 1 + r(dim), 1 + r(dim)
        sd[b + "norm3.weight"], sd[b + "norm3.bias"] = 1 + r(dim), r(dim)
        sd[b + "ffn.0.weight"], sd[b + "ffn.0.bias"] = r(ffn, dim), r(ffn)
        sd[b + "ffn.2.weight"], sd[b + "ffn.2.bias"] = r(dim, ffn), r(dim)
    config = {"_class_name": "WanModel", "dim": dim, "eps": 1e-6, "ffn_dim": ffn, "freq_dim": freq_dim,
              "in_dim": in_dim, "model_type": "t2v", "num_heads": heads, "num_layers": layers,
              "out_dim": out_dim, "text_len": 16}
    return sd, config


def original_t5(vocab=300, d=40, heads=5, layers=3, ff=72, buckets=32, seed=0,
                init: Init | None = None) -> dict[str, torch.Tensor]:
    """A state dict of Wan's UMT5 encoder port."""
    r = init or _randn(seed, 0.1)
    sd = {"token_embedding.weight": r(vocab, d), "norm.weight": 1 + r(d)}
    for n in range(layers):
        b = f"blocks.{n}."
        sd.update({b + "norm1.weight": 1 + r(d), b + "norm2.weight": 1 + r(d),
                   b + "ffn.gate.0.weight": r(ff, d), b + "ffn.fc1.weight": r(ff, d), b + "ffn.fc2.weight": r(d, ff),
                   b + "pos_embedding.embedding.weight": r(buckets, heads)})
        for p in "qkvo":
            sd[f"{b}attn.{p}.weight"] = r(d, d)
    return sd


def original_vae_from(vae: AutoencoderKLWan) -> dict[str, torch.Tensor]:
    """Rename a diffusers Wan VAE's tensors to the original layout (the inverse mapping, written
    independently of the converter's)."""
    n = vae.config.num_res_blocks
    inv_res = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
               "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
               "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}
    out = {}
    for k, v in vae.state_dict().items():
        o = k
        o = re.sub(r"^quant_conv\.", "conv1.", o)
        o = re.sub(r"^post_quant_conv\.", "conv2.", o)
        o = re.sub(r"\.conv_in\.", ".conv1.", o)
        o = re.sub(r"\.norm_out\.", ".head.0.", o)
        o = re.sub(r"\.conv_out\.", ".head.2.", o)
        o = re.sub(r"mid_block\.attentions\.0\.", "middle.1.", o)
        m = re.match(r"(\w+)\.mid_block\.resnets\.(\d)\.(.*)", o)
        if m:
            o = f"{m.group(1)}.middle.{2 * int(m.group(2))}.{inv_res[m.group(3)]}"
        m = re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", o)
        if m:
            o = f"encoder.downsamples.{m.group(1)}.{inv_res.get(m.group(2), m.group(2))}"
        m = re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", o)
        if m:
            o = f"decoder.upsamples.{int(m.group(1)) * (n + 2) + int(m.group(2))}.{inv_res[m.group(3)]}"
        m = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", o)
        if m:
            o = f"decoder.upsamples.{int(m.group(1)) * (n + 2) + n + 1}.{m.group(2)}"
        out[o] = v.clone()
    return out


def original_dit_from(transformer) -> tuple[dict[str, torch.Tensor], dict]:
    """A diffusers ``WanTransformer3DModel`` written back in the original layout (with config.json)."""
    from .wan import dit_key

    c = transformer.config
    dim = c.num_attention_heads * c.attention_head_dim
    names, config = original_dit(dim=dim, heads=c.num_attention_heads, layers=c.num_layers, ffn=c.ffn_dim,
                                 text_dim=c.text_dim, freq_dim=c.freq_dim, in_dim=c.in_channels,
                                 out_dim=c.out_channels, init=lambda *s: torch.empty(0))
    state = transformer.state_dict()
    return {k: state[dit_key(k)].clone() for k in names}, {**config, "eps": c.eps}
