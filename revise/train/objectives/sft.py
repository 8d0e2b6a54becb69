"""SFT: the mean squared velocity error of flow matching."""

from __future__ import annotations

from typing import Any

import torch

from .base import register
from .flow_matching import FlowMatchingObjective, Prediction, flow_matching_per_sample


def sft_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return flow_matching_per_sample(v_pred, x0, noise).mean()


@register
class SFT(FlowMatchingObjective):
    name = "sft"

    def flow_loss(self, step, batch: dict[str, Any], pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return sft_loss(pred.v, pred.x0, pred.noise), {}
