"""VAE training: L1 + MSE reconstruction of source and target clips through a posterior sample (or,
without ``sample``, its mean: what ``encode_video`` gives the DiT), optionally plus the mean L1 of the
worst-reconstructed fraction of pixels (small objects on a plain background are a few percent of the
pixels: a plain mean lets an autoencoder drop them and still score well), plus a small KL term toward
N(0, 1). When training ends, the latents' per-channel statistics go into the VAE's config. With
``vae_decoder`` in ``train_modules`` instead of ``vae`` only the decoder learns: the latents, and so a
DiT trained on them, stay valid (e.g. to draw scenes the autoencoder never saw)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ...errors import ReviseInputError
from .base import Objective, register


def focus_l1(rec: torch.Tensor, x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean L1 (over channels) of the worst ``fraction`` of pixels of each clip [B, C, F, H, W]."""
    err = (rec.float() - x.float()).abs().mean(1).flatten(1)          # [B, F*H*W]
    k = max(1, int(round(fraction * err.shape[1])))
    return err.topk(k, dim=1).values.mean()


@dataclasses.dataclass
class VAEOptions:
    kl_weight: float = 1.0e-6            # the KL term
    focus: float = 0.0                   # add the mean L1 of the worst this fraction of pixels
    sample: bool = True                  # decode a posterior sample (False: the posterior mean)


@register
class VAEObjective(Objective):
    name = "vae"
    Options = VAEOptions

    @classmethod
    def check(cls, options: VAEOptions, cfg, source: str) -> None:
        if not 0.0 <= options.focus <= 1.0:
            raise ReviseInputError(f"{source}: vae.focus is a fraction of pixels in [0, 1], not {options.focus}")

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        return {"vae_noise": torch.randn((2 * len(samples), *latent_shape), generator=g).to(device)}

    def loss(self, step, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        o, vae = self.options, step.model.vae
        x = torch.cat([batch["source"], batch["target"]]).to(vae.dtype)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * batch["vae_noise"].to(post.mean.dtype) if o.sample else post.mean
        rec = vae.decode(z).sample.float()
        l1, mse = (rec - x.float()).abs().mean(), ((rec - x.float()) ** 2).mean()
        kl = 0.5 * (post.mean.float() ** 2 + post.var.float() - 1 - post.logvar.float()).mean()
        loss = l1 + mse + o.kl_weight * kl
        metrics = {"l1": l1.detach(), "kl": kl.detach()}
        if o.focus > 0:
            focus = focus_l1(rec, x, o.focus)
            loss = loss + focus
            metrics["focus_l1"] = focus.detach()
        return loss, metrics

    def finish(self, trainer) -> None:
        if "vae" in trainer.cfg.train_modules:   # a decoder alone leaves the latents as they were
            set_latent_stats(trainer.model.vae, trainer.data, trainer.acc.device)


@torch.no_grad()
def set_latent_stats(vae, data, device: torch.device, batches: int = 16) -> None:
    """Per-channel mean and std of the VAE's latents over training clips, written into its config
    (``latents_mean``/``latents_std``), so the DiT sees unit-scale latents."""
    zs = []
    for i in range(batches):
        samples = [data.load(j) for j in range(i * 8, min(len(data), (i + 1) * 8))]
        samples = [s for s in samples if s is not None]
        if not samples:
            break
        x = torch.stack([s["target"] for s in samples] + [s["source"] for s in samples]).to(device, vae.dtype)
        zs.append(vae.encode(x).latent_dist.mode().float().transpose(0, 1).flatten(1))
    z = torch.cat(zs, 1)
    vae.register_to_config(latents_mean=z.mean(1).tolist(), latents_std=z.std(1).clamp_min(1e-3).tolist())
