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
        self.class_weights = class_weights(data.answers()) if self.options.balance else None

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        return answer_fields(samples, self.class_weights, device)

    def loss(self, step, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return yes_no_loss(step.critic, batch["source"], batch["target"], batch["instructions"],
                           batch.get("dimensions"), batch["answers"], batch.get("weights"))


def class_weights(answers: list[float] | None) -> tuple[float, float] | None:
    """(Yes, No) weights that make both answers count equally, or None when one is missing."""
    if answers:
        yes = sum(answers) / len(answers)
        if 0 < yes < 1:
            return 0.5 / yes, 0.5 / (1 - yes)
    return None


def answer_fields(samples: list[dict[str, Any]], weights: tuple[float, float] | None,
                  device: torch.device) -> dict[str, Any]:
    """Labelled samples' ``answers`` (1 Yes, 0 No), ``dimensions`` and, with (Yes, No) class weights,
    each sample's ``weights``."""
    answers = [s.get("answer", 1.0) for s in samples]
    out: dict[str, Any] = {"answers": torch.tensor(answers, device=device),
                           "dimensions": [s.get("dimension") for s in samples]}
    if weights is not None:
        out["weights"] = torch.tensor([weights[0] if a else weights[1] for a in answers], device=device)
    return out


def yes_no_loss(critic, source: torch.Tensor, candidate: torch.Tensor, instructions: list[str],
                dimensions: list[str | None] | None, answers: torch.Tensor,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The critic's (weighted) Yes/No cross-entropy on labelled candidates, with its accuracy and mean
    P(Yes); also USO's anchor of a critic that trains beside the generator."""
    logits = critic.logits(source, candidate, instructions, dimensions).float()
    margin = logits[:, 0] - logits[:, 1]
    nll = nn.functional.binary_cross_entropy_with_logits(margin, answers, reduction="none")
    loss = nll.mean() if weights is None else (nll * weights).sum() / weights.sum()
    acc = ((margin > 0).float() == answers).float().mean()
    return loss, {"accuracy": acc.detach(), "p_yes": torch.sigmoid(margin).mean().detach()}
