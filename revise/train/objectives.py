"""Training objectives as small pure functions over tensors.

Flow matching as in Wan: x_t = (1 - s) x0 + s * noise, the DiT predicts v = noise - x0, and
s in (0, 1) is drawn logit-normal (or by SD3's "mode" density) and then time-shifted.

- SFT: mean squared velocity error.
- RWO: the per-sample flow-matching loss weighted by the critic's P(Yes) on the sample's own x0
  estimate, divided by a baseline (the batch mean, or a running mean the trainer keeps), with no
  gradient through the weight.
- USO: flow-matching loss + lambda * (-log P(Yes)), the semantic loss's gradient flowing through
  the decoded x0 estimate into the generator. Samples whose noise level is above ``max_sigma``
  may be left out of the semantic term (their x0 estimate is mostly noise).
- VAE: L1 + MSE reconstruction, optionally plus the mean L1 of the worst-reconstructed fraction of
  pixels (small objects on a plain background are a few percent of the pixels: a plain mean lets
  an autoencoder drop them and still score well), plus a small KL term.
"""

from __future__ import annotations

import math

import torch


def sample_sigmas(batch: int, *, generator: torch.Generator | None = None, scheme: str = "logit_normal",
                  mean: float = 0.0, std: float = 1.0, mode_scale: float = 1.29, shift: float = 3.0,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Noise levels s in (0, 1) [batch]: u from the density, then s = shift u / (1 + (shift - 1) u)."""
    if scheme == "logit_normal":
        u = torch.sigmoid(torch.randn(batch, generator=generator) * std + mean)
    elif scheme == "mode":
        u = torch.rand(batch, generator=generator)
        u = 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    elif scheme == "uniform":
        u = torch.rand(batch, generator=generator)
    else:
        raise ValueError(f"unknown timestep scheme {scheme!r}")
    u = u.clamp(1e-5, 1 - 1e-5)
    return (shift * u / (1 + (shift - 1) * u)).to(device)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    s = sigmas.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def x0_estimate(x_t: torch.Tensor, v_pred: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x0_hat = x_t - s * v_hat (exact when v_hat = noise - x0)."""
    s = sigmas.view(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
    return x_t - s * v_pred


def flow_matching_per_sample(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Mean squared velocity error of each sample [B]."""
    return ((v_pred.float() - (noise - x0).float()) ** 2).flatten(1).mean(1)


def sft_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return flow_matching_per_sample(v_pred, x0, noise).mean()


def rwo_weights(p_yes: torch.Tensor, baseline: float | torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample weights P(Yes) / baseline (default baseline: the batch mean), without gradient."""
    p = p_yes.detach().float()
    base = p.mean() if baseline is None else torch.as_tensor(baseline, dtype=p.dtype, device=p.device)
    return p / base.clamp_min(eps)


def rwo_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, p_yes: torch.Tensor,
             baseline: float | torch.Tensor | None = None) -> torch.Tensor:
    return (rwo_weights(p_yes, baseline) * flow_matching_per_sample(v_pred, x0, noise)).mean()


def semantic_loss(p_yes: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """-log P(Yes) (cross-entropy toward "Yes"), averaged over the samples ``mask`` keeps."""
    nll = -torch.log(p_yes.float().clamp_min(eps))
    if mask is None:
        return nll.mean()
    mask = mask.float()
    return (nll * mask).sum() / mask.sum().clamp_min(1.0)


def uso_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, p_yes: torch.Tensor, *,
             lam: float = 0.1, sigmas: torch.Tensor | None = None, max_sigma: float = 1.0) -> torch.Tensor:
    mask = None if sigmas is None else (sigmas <= max_sigma)
    return sft_loss(v_pred, x0, noise) + lam * semantic_loss(p_yes, mask)


def focus_l1(rec: torch.Tensor, x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean L1 (over channels) of the worst ``fraction`` of pixels of each clip [B, C, F, H, W]."""
    err = (rec.float() - x.float()).abs().mean(1).flatten(1)          # [B, F*H*W]
    k = max(1, int(round(fraction * err.shape[1])))
    return err.topk(k, dim=1).values.mean()
