"""Critic training that ranks: the Bradley-Terry loss of preference pairs beside the Yes/No answers.

The critic's use in RWO is to order one item's candidates (issue #22's gate is its agreement with the
exact judge on pairs of the generator's own edits), which a Yes/No cross-entropy on thresholded
labels teaches only indirectly: two candidates both labelled No give it nothing to order. A preference
pair (``revise synth pairs``: two of the generator's edits of one item whose judge scores differ by at
least a gap) holds ``candidate_video_path``, the better one, and ``rival_video_path``, on the question
``dimension`` (None: the overall one). Its loss is -log sigmoid(m_better - m_rival), m being the
critic's Yes-minus-No logit, which moves P(Yes) apart in the right order without saying where either
should be. Yes/No records in the same file keep their cross-entropy (the anchor that keeps P(Yes)
calibrated); the step's loss is their mean plus ``pair_weight`` times the pairs' mean.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ...errors import ReviseInputError
from .base import Objective, register
from .critic import answer_fields, class_weights


@dataclasses.dataclass
class CriticPairwiseOptions:
    pair_weight: float = 1.0             # the pairs' loss against the Yes/No records' cross-entropy
    balance: bool = True                 # weight Yes and No answers equally


def pairwise_loss(better: torch.Tensor, rival: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: mean -log sigmoid(better - rival) of Yes-minus-No logit margins [N]."""
    return nn.functional.softplus(rival - better).mean()


@register
class CriticPairwiseObjective(Objective):
    name = "critic_pairwise"
    Options = CriticPairwiseOptions
    clip_parts = ("source", "target", "rival")
    shown = ("loss", "pair_accuracy", "accuracy")

    def __init__(self, options: CriticPairwiseOptions, cfg):
        super().__init__(options, cfg)
        self.class_weights: tuple[float, float] | None = None    # (Yes, No)

    @classmethod
    def check(cls, options: Any, cfg, source: str) -> None:
        if not options.pair_weight >= 0:
            raise ReviseInputError(f"{source}: critic_pairwise.pair_weight must be 0 or more")

    def setup(self, data) -> None:
        answers = data.answers(pairs_aside=True)
        if not any("rival_video_path" in it for it in data.items):
            raise ReviseInputError(f"training data {self.cfg.data}: no preference pairs ('revise synth pairs')")
        if answers is None:
            loose = next(i for i, it in enumerate(data.items)
                         if "rival_video_path" not in it and ("answer" not in it or "question" in it))
            raise ReviseInputError(f"training data {self.cfg.data}: item {loose} is neither a pair nor a Yes/No record")
        self.class_weights = class_weights(answers) if self.options.balance else None

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        out = answer_fields(samples, self.class_weights, device)
        pair = torch.tensor([bool(s.get("pair")) for s in samples], device=device)
        weights = out.get("weights", torch.ones(len(samples), device=device))
        return {**out, "pair": pair, "weights": torch.where(pair, 0.0, weights)}   # pairs answer nothing

    def loss(self, step, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pair, critic = batch["pair"], step.critic
        logits = critic.logits(batch["source"], batch["target"], batch["instructions"], batch["dimensions"]).float()
        margin = logits[:, 0] - logits[:, 1]
        zero = margin.sum() * 0                  # keeps the graph whole when a step has no rows of a kind
        metrics: dict[str, torch.Tensor] = {}
        w = batch["weights"]
        if bool((~pair).any()):
            nll = nn.functional.binary_cross_entropy_with_logits(margin, batch["answers"], reduction="none")
            answer_loss = (nll * w).sum() / w.sum()
            metrics["accuracy"] = ((margin[~pair] > 0).float() == batch["answers"][~pair]).float().mean().detach()
        else:
            answer_loss = zero
        if bool(pair.any()):
            idx = pair.nonzero().squeeze(1).tolist()
            rival = critic.logits(batch["source"][idx], batch["rival"][idx], [batch["instructions"][i] for i in idx],
                                  [batch["dimensions"][i] for i in idx]).float()
            rival_margin = rival[:, 0] - rival[:, 1]
            pair_loss = pairwise_loss(margin[idx], rival_margin)
            metrics["pair_accuracy"] = (margin[idx] > rival_margin).float().mean().detach()
        else:
            pair_loss = zero
        metrics["pair_loss"] = pair_loss.detach()
        metrics["p_yes"] = torch.sigmoid(margin).mean().detach()
        return answer_loss + self.options.pair_weight * pair_loss, metrics
