"""Flow matching as in Wan, shared by the generator objectives (SFT, RWO, USO).

x_t = (1 - s) x0 + s * noise, the DiT predicts v = noise - x0, and s in (0, 1) is drawn from SD3's
densities (diffusers' ``compute_density_for_timestep_sampling``: logit-normal, "mode" or uniform) and
then time-shifted. Each sample's conditions (VLM and text tokens) are replaced by the unconditional
ones with probability ``cond_dropout``, which classifier-free guidance needs at inference.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from diffusers.training_utils import compute_density_for_timestep_sampling

from ...errors import ReviseInputError
from .base import Objective

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..trainer import TrainStep

SCHEMES = ("logit_normal", "mode", "uniform")


def sample_sigmas(batch: int, *, generator: torch.Generator | None = None, scheme: str = "logit_normal",
                  mean: float = 0.0, std: float = 1.0, mode_scale: float = 1.29, shift: float = 3.0,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Noise levels s in (0, 1) [batch]: u from the density, then s = shift u / (1 + (shift - 1) u)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown timestep scheme {scheme!r}")
    u = compute_density_for_timestep_sampling(scheme, batch, logit_mean=mean, logit_std=std, mode_scale=mode_scale,
                                              generator=generator)
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


@dataclasses.dataclass
class FlowMatchingOptions:
    cond_dropout: float = 0.2            # text and VLM inputs replaced by the unconditional ones
    timestep_scheme: str = "logit_normal"   # logit_normal | mode | uniform
    timestep_mean: float = 0.0
    timestep_std: float = 1.0
    mode_scale: float = 1.29
    flow_shift: float = 3.0


@dataclasses.dataclass
class Prediction:
    """One step's flow-matching quantities: clean latents, noise, noise levels, x_t and the DiT's v."""
    x0: torch.Tensor
    noise: torch.Tensor
    sigmas: torch.Tensor
    x_t: torch.Tensor
    v: torch.Tensor

    def x0_estimate(self) -> torch.Tensor:
        return x0_estimate(self.x_t, self.v, self.sigmas)

    def per_sample(self) -> torch.Tensor:
        return flow_matching_per_sample(self.v, self.x0, self.noise)


class FlowMatchingObjective(Objective):
    """A generator objective: draws noise, noise levels and condition dropout, runs the DiT, and leaves
    the loss on its prediction to :meth:`flow_loss`.

    Batch fields: the clips (``source``, ``target`` [B, 3, F, H, W]) and/or their cached features
    (``source_latents``, ``target_latents``, ``vlm_hidden`` + ``vlm_mask``), ``instructions``, and
    ``noise``, ``sigmas``, ``drop``."""

    Options: ClassVar[type] = FlowMatchingOptions
    cached_clip_parts: ClassVar[tuple[str, ...] | None] = ()

    @classmethod
    def check(cls, options: Any, cfg: "TrainConfig", source: str) -> None:
        if options.timestep_scheme not in SCHEMES:
            raise ReviseInputError(f"{source}: timestep_scheme must be one of {', '.join(SCHEMES)}, "
                                   f"not {options.timestep_scheme!r}")

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        o, b = self.options, len(samples)
        return {"noise": torch.randn((b, *latent_shape), generator=g).to(device),
                "sigmas": sample_sigmas(b, generator=g, scheme=o.timestep_scheme, mean=o.timestep_mean,
                                        std=o.timestep_std, mode_scale=o.mode_scale, shift=o.flow_shift,
                                        device=device),
                "drop": torch.rand(b, generator=g) < o.cond_dropout}

    def loss(self, step: "TrainStep", batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred = self.predict(step, batch)
        loss, metrics = self.flow_loss(step, batch, pred)
        metrics["fm"] = flow_matching_per_sample(pred.v.detach(), pred.x0, pred.noise).mean()
        return loss, metrics

    def flow_loss(self, step: "TrainStep", batch: dict[str, Any],
                  pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def predict(self, step: "TrainStep", batch: dict[str, Any]) -> Prediction:
        m = step.model
        with torch.no_grad():
            x0 = batch["target_latents"] if "target_latents" in batch else m.encode_video(batch["target"])
            source_latents = batch["source_latents"] if "source_latents" in batch else m.encode_video(batch["source"])
        x0, noise, sigmas = x0.float(), batch["noise"], batch["sigmas"]
        context = step.context(source_latents, batch)
        x_t = add_noise(x0, noise, sigmas)
        dit = m.transformer
        v = dit(x_t.to(dit.dtype), sigmas * 1000, context, return_dict=False)[0].float()
        return Prediction(x0, noise, sigmas, x_t, v)
