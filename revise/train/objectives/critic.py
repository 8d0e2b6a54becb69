"""Critic training: the Yes/No cross-entropy of the understanding VLM's answer, each sample asked its
own question (the overall one, or one dimension's), Yes and No optionally weighted equally."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .base import Objective, register


@dataclasses.dataclass
class CriticOptions:
    balance: bool = True                 # weight Yes and No answers equally


@register
class CriticObjective(Objective):
    name = "critic"
    Options = CriticOptions
    shown = ("loss", "p_yes", "accuracy")

    def __init__(self, options: CriticOptions, cfg):
        super().__init__(options, cfg)
        self.class_weights: tuple[float, float] | None = None    # (Yes, No)

    def setup(self, data) -> None:
        answers = data.answers() if self.options.balance else None
        if answers:
            yes = sum(answers) / len(answers)
            if 0 < yes < 1:
                self.class_weights = (0.5 / yes, 0.5 / (1 - yes))

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        answers = [s.get("answer", 1.0) for s in samples]
        out: dict[str, Any] = {"answers": torch.tensor(answers, device=device),
                               "dimensions": [s.get("dimension") for s in samples]}
        if self.class_weights is not None:
            out["weights"] = torch.tensor([self.class_weights[0] if a else self.class_weights[1] for a in answers],
                                          device=device)
        return out

    def loss(self, step, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = step.critic.logits(batch["source"], batch["target"], batch["instructions"],
                                    batch.get("dimensions")).float()
        answers = batch["answers"]
        margin = logits[:, 0] - logits[:, 1]
        nll = nn.functional.binary_cross_entropy_with_logits(margin, answers, reduction="none")
        w = batch.get("weights")
        loss = nll.mean() if w is None else (nll * w).sum() / w.sum()
        acc = ((margin > 0).float() == answers).float().mean()
        return loss, {"accuracy": acc.detach(), "p_yes": torch.sigmoid(margin).mean().detach()}
