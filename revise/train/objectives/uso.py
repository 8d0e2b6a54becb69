"""USO: flow matching + lambda * (-log P(Yes)), the semantic loss's gradient flowing through the
decoded x0 estimate into the generator. Samples whose noise level is above ``max_sigma`` may be left
out of the semantic term (their x0 estimate is mostly noise).

When the critic trains beside the generator (``lm_head`` or ``understanding`` in ``train_modules``,
as in ``configs/train_released.yaml``), -log P(Yes) on the generator's own outputs alone would teach
it to answer Yes to anything. Such a config must name labelled critic data (``critic_data``, e.g.
``revise synth make --critic``'s ``SPLIT_critic.json``): each step then adds ``critic_weight`` times
the critic objective's Yes/No cross-entropy (Yes and No weighted equally) on ``critic_batch_size``
records of it, drawn from the step's seeded generator, which anchors the critic to its labels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ...errors import ReviseInputError
from .base import register
from .critic import answer_fields, class_weights, yes_no_loss
from .flow_matching import FlowMatchingObjective, FlowMatchingOptions, Prediction
from .sft import sft_loss

CRITIC_MODULES = ("lm_head", "understanding")


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
    critic_data: str = ""                # labelled critic data anchoring a critic that trains (required then)
    critic_weight: float = 1.0           # weight of its Yes/No cross-entropy
    critic_batch_size: int = 0           # its records per step (0: the config's batch_size)


@register
class USO(FlowMatchingObjective):
    name = "uso"
    Options = USOOptions
    former_names = {"uso_lambda": "semantic_weight"}
    cached_clip_parts = ("source",)      # the critic sees the source clip
    shown = ("loss", "p_yes")

    def __init__(self, options: USOOptions, cfg):
        super().__init__(options, cfg)
        self.anchor = None                   # the critic data, when it anchors the critic
        self.anchor_weights: tuple[float, float] | None = None

    @classmethod
    def reads_critic(cls, options: Any) -> bool:
        return True

    @classmethod
    def check(cls, options: Any, cfg, source: str) -> None:
        super().check(options, cfg, source)
        trains_critic = bool(set(CRITIC_MODULES) & set(cfg.train_modules))
        if trains_critic and options.semantic_weight > 0 and not (options.critic_data and options.critic_weight > 0):
            raise ReviseInputError(
                f"{source}: the critic trains ({', '.join(m for m in CRITIC_MODULES if m in cfg.train_modules)}) "
                "but only by -log P(Yes) on the generator's own outputs, which teaches it to say Yes: give "
                "uso.critic_data (labelled critic data, e.g. SPLIT_critic.json) and a positive uso.critic_weight")
        if options.critic_data and not trains_critic:
            raise ReviseInputError(f"{source}: uso.critic_data anchors a critic that trains, but train_modules "
                                   f"has neither {' nor '.join(CRITIC_MODULES)}")
        if options.critic_batch_size < 0 or options.critic_weight < 0:
            raise ReviseInputError(f"{source}: uso.critic_batch_size and uso.critic_weight must be 0 or more")

    def setup(self, data) -> None:
        if not self.options.critic_data:
            return
        from ..data import TripletData

        cfg = self.cfg
        self.anchor = TripletData(self.options.critic_data, cfg.num_frames, cfg.height, cfg.width)
        answers = self.anchor.answers()
        if answers is None:
            raise ReviseInputError(f"uso.critic_data {self.options.critic_data}: every record needs a Yes/No "
                                   "'answer' (critic data, 'revise synth make --critic')")
        self.anchor_weights = class_weights(answers)
        if cfg.preload or cfg.cache_features:
            self.anchor.preload(cfg.preload_workers, parts=("source", "target"))

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        out = super().fields(samples, g, latent_shape, device)
        if self.anchor is None:
            return out
        from ..data import clips_to_device

        want = self.options.critic_batch_size or self.cfg.batch_size
        picked: list[dict[str, Any]] = []
        for index in torch.randint(len(self.anchor), (10 * want,), generator=g).tolist():
            sample = self.anchor.load(index, ("source", "target"), raw=True)
            if sample is not None:
                picked.append(sample)
                if len(picked) == want:
                    break
        if not picked:
            raise RuntimeError(f"no readable records in uso.critic_data {self.options.critic_data}")
        labels = answer_fields(picked, self.anchor_weights, device)
        return {**out, "anchor_source": clips_to_device([s["source"] for s in picked], device),
                "anchor_candidate": clips_to_device([s["target"] for s in picked], device),
                "anchor_instructions": [s["instruction"] for s in picked],
                **{f"anchor_{k}": v for k, v in labels.items()}}

    def flow_loss(self, step, batch: dict[str, Any], pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        edit = step.model.decode_latents(pred.x0_estimate(), checkpointed=self.cfg.gradient_checkpointing)
        p = step.critic.p_yes(batch.get("source"), edit, batch["instructions"])
        o = self.options
        loss = uso_loss(pred.v, pred.x0, pred.noise, p, lam=o.semantic_weight, sigmas=pred.sigmas,
                        max_sigma=o.max_sigma)
        metrics = {"p_yes": p.detach().mean()}
        if self.anchor is not None:
            ce, m = yes_no_loss(step.critic, batch["anchor_source"], batch["anchor_candidate"],
                                batch["anchor_instructions"], batch["anchor_dimensions"], batch["anchor_answers"],
                                batch.get("anchor_weights"))
            loss = loss + o.critic_weight * ce
            metrics.update(critic_ce=ce.detach(), critic_accuracy=m["accuracy"])
        return loss, metrics
