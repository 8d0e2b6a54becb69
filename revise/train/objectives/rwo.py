"""RWO: the per-sample flow-matching loss weighted by the critic's P(Yes) on the sample's own x0
estimate, divided by a baseline (the batch mean, or the running mean kept here), with no gradient
through the weight.

Other weightings (e.g. normalised within a group of candidates of one item) subclass :class:`RWO`
and override :meth:`RWO.weights` (and ``samples_per_item`` for the group's size).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .base import register
from .flow_matching import FlowMatchingObjective, FlowMatchingOptions, Prediction, flow_matching_per_sample


def rwo_weights(p_yes: torch.Tensor, baseline: float | torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample weights P(Yes) / baseline (default baseline: the batch mean), without gradient."""
    p = p_yes.detach().float()
    base = p.mean() if baseline is None else torch.as_tensor(baseline, dtype=p.dtype, device=p.device)
    return p / base.clamp_min(eps)


def rwo_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, p_yes: torch.Tensor,
             baseline: float | torch.Tensor | None = None) -> torch.Tensor:
    return (rwo_weights(p_yes, baseline) * flow_matching_per_sample(v_pred, x0, noise)).mean()


@dataclasses.dataclass
class RWOOptions(FlowMatchingOptions):
    baseline_momentum: float = 0.9       # running mean of P(Yes) that normalises the weights


@register
class RWO(FlowMatchingObjective):
    name = "rwo"
    Options = RWOOptions
    cached_clip_parts = ("source",)      # the critic sees the source clip
    shown = ("loss", "p_yes")

    def __init__(self, options: RWOOptions, cfg):
        super().__init__(options, cfg)
        self.baseline: float | None = None

    def p_yes(self, step, batch: dict[str, Any], pred: Prediction) -> torch.Tensor:
        """The frozen critic's P(Yes) of each sample's decoded x0 estimate [B], without gradient."""
        with torch.no_grad():
            edit = step.model.decode_latents(pred.x0_estimate())
            return step.critic.p_yes(batch.get("source"), edit, batch["instructions"])

    def weights(self, p_yes: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Per-sample loss weights [B], without gradient."""
        return rwo_weights(p_yes, self.baseline)

    def flow_loss(self, step, batch: dict[str, Any], pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.p_yes(step, batch, pred)
        loss = (self.weights(p, batch) * pred.per_sample()).mean()
        return loss, {"p_yes": p.mean()}

    def after_step(self, metrics: dict[str, float]) -> None:
        if "p_yes" in metrics:
            m = self.options.baseline_momentum
            p = metrics["p_yes"]
            self.baseline = p if self.baseline is None else m * self.baseline + (1 - m) * p

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = state.get("baseline")
