"""USO: flow matching + lambda * (-log P(Yes)), the semantic loss's gradient flowing through the
decoded x0 estimate into the generator. Samples whose noise level is above ``max_sigma`` may be left
out of the semantic term (their x0 estimate is mostly noise)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .base import register
from .flow_matching import FlowMatchingObjective, FlowMatchingOptions, Prediction
from .sft import sft_loss


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


@dataclasses.dataclass
class USOOptions(FlowMatchingOptions):
    semantic_weight: float = 0.1         # lambda, the weight of -log P(Yes)
    max_sigma: float = 1.0               # semantic loss only where s <= this


@register
class USO(FlowMatchingObjective):
    name = "uso"
    Options = USOOptions
    former_names = {"uso_lambda": "semantic_weight"}
    cached_clip_parts = ("source",)      # the critic sees the source clip
    shown = ("loss", "p_yes")

    def flow_loss(self, step, batch: dict[str, Any], pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        edit = step.model.decode_latents(pred.x0_estimate(), checkpointed=self.cfg.gradient_checkpointing)
        p = step.critic.p_yes(batch.get("source"), edit, batch["instructions"])
        o = self.options
        loss = uso_loss(pred.v, pred.x0, pred.noise, p, lam=o.semantic_weight, sigmas=pred.sigmas,
                        max_sigma=o.max_sigma)
        return loss, {"p_yes": p.detach().mean()}
