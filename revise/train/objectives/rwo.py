"""RWO: the per-sample flow-matching loss weighted by a reward of the sample's own x0 estimate, divided
by a baseline (the batch mean, or the running mean kept here), with no gradient through the weight.

The reward (``rwo: {reward: ...}``) is the frozen critic's P(Yes) of the decoded x0 estimate
(``critic``, the method's; ``question`` picks the overall question or one dimension's) or, on RVE-Synth data only, the exact judge's edit accuracy / 10 of it
against the item's exact target (``judge``: an oracle that real data cannot have, the upper bound of
what a better critic could give; :mod:`revise.synth.reward`).

Issue #22's curve (gain over SFT against the critic's pair agreement with the judge) needs critics of
known quality between a real critic and the oracle: ``reward_noise`` adds Gaussian noise of that many
judge points to each judged score, so the reward is an exact judge blurred to a chosen agreement. Its
agreement is measured, not assumed: each step logs ``agree_pairs`` (pairs of one item's candidates
whose exact EA differs by a point or more) and ``agree_hits`` (how many of them the reward orders
alike; :func:`revise.stats.pair_agreement`). For a critic reward ``agreement_every: N`` runs the
exact judge every N-th step to log the same, on RVE-Synth data.

Other weightings (e.g. normalised within a group of candidates of one item, :mod:`.rwo_group`)
subclass :class:`RWO` and override :meth:`RWO.weights` (and ``samples_per_item`` for the group's size).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ...errors import ReviseInputError
from ...stats import pair_agreement
from ...vocab import CRITIC_DIMENSIONS, OVERALL_QUESTION
from .base import register
from .flow_matching import FlowMatchingObjective, FlowMatchingOptions, Prediction, flow_matching_per_sample

REWARDS = ("critic", "judge")
QUESTIONS = (OVERALL_QUESTION, *CRITIC_DIMENSIONS)


def rwo_weights(p_yes: torch.Tensor, baseline: float | torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample weights P(Yes) / baseline (default baseline: the batch mean), without gradient."""
    p = p_yes.detach().float()
    base = p.mean() if baseline is None else torch.as_tensor(baseline, dtype=p.dtype, device=p.device)
    return p / base.clamp_min(eps)


def rwo_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, p_yes: torch.Tensor,
             baseline: float | torch.Tensor | None = None) -> torch.Tensor:
    return (rwo_weights(p_yes, baseline) * flow_matching_per_sample(v_pred, x0, noise)).mean()


def judge_clips(video: torch.Tensor):
    """[B, 3, F, H, W] in [-1, 1] -> uint8 numpy [B, F, H, W, 3], as the judge reads clips."""
    return ((video.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()


@dataclasses.dataclass
class RWOOptions(FlowMatchingOptions):
    baseline_momentum: float = 0.9       # running mean of the reward that normalises the weights
    reward: str = "critic"               # critic: P(Yes) | judge: RVE-Synth's exact EA / 10 (an oracle)
    judge_workers: int = 0               # processes scoring x0 estimates for reward: judge (0: this one)
    question: str = OVERALL_QUESTION     # the critic's question for reward: critic: overall, or one dimension's
    reward_noise: float = 0.0            # reward: judge: std (judge points) of Gaussian noise on each score
    agreement_every: int = 0             # reward: critic: every N-th step, log its pair agreement with the judge


@register
class RWO(FlowMatchingObjective):
    name = "rwo"
    Options = RWOOptions
    cached_clip_parts = ("source",)      # the critic sees the source clip
    shown = ("loss", "reward")

    def __init__(self, options: RWOOptions, cfg):
        super().__init__(options, cfg)
        self.baseline: float | None = None
        self.judge = None                    # the exact judge: the reward (reward: judge) or its yardstick
        self.noise = np.random.default_rng(cfg.seed)
        self.calls = 0

    @classmethod
    def check(cls, options: Any, cfg, source: str) -> None:
        super().check(options, cfg, source)
        if options.reward not in REWARDS:
            raise ReviseInputError(f"{source}: {cls.name}.reward must be one of {', '.join(REWARDS)}, "
                                   f"not {options.reward!r}")
        if options.question not in QUESTIONS:
            raise ReviseInputError(f"{source}: {cls.name}.question must be one of {', '.join(QUESTIONS)}, "
                                   f"not {options.question!r}")
        if options.judge_workers < 0:
            raise ReviseInputError(f"{source}: {cls.name}.judge_workers must be 0 or more")
        if not options.reward_noise >= 0:
            raise ReviseInputError(f"{source}: {cls.name}.reward_noise must be 0 or more, not {options.reward_noise}")
        if options.reward_noise and options.reward != "judge":
            raise ReviseInputError(f"{source}: {cls.name}.reward_noise blurs the judge's reward: it needs reward: judge")
        if options.agreement_every < 0:
            raise ReviseInputError(f"{source}: {cls.name}.agreement_every must be 0 or more")

    @classmethod
    def reads_critic(cls, options: Any) -> bool:
        return options.reward == "critic"

    def setup(self, data) -> None:
        if self.options.reward == "judge" or self.options.agreement_every:
            from ...synth.reward import JudgeReward
            self.judge = JudgeReward(data.items, workers=self.options.judge_workers,
                                     source=f"training data {self.cfg.data}")

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        out = super().fields(samples, g, latent_shape, device)
        if self.judge is not None:
            out["item_index"] = [s["index"] for s in samples]     # the record the judge scores against
        return out

    def reward(self, step, batch: dict[str, Any], pred: Prediction) -> tuple[torch.Tensor, np.ndarray | None]:
        """Each sample's reward [B] of its decoded x0 estimate, without gradient (the frozen critic's
        P(Yes), or with ``reward: judge`` the exact judge's EA / 10, blurred by ``reward_noise``), and
        the exact judge's EA [B] where it was scored this step (else None)."""
        self.calls += 1
        every = self.options.agreement_every
        with torch.no_grad():
            edit = step.model.decode_latents(pred.x0_estimate())
            exact = None
            if self.options.reward == "judge" or (every and self.calls % every == 0):
                exact = 10 * self.judge(batch["item_index"], judge_clips(edit))
            if self.options.reward == "judge":
                noisy = exact + self.options.reward_noise * self.noise.standard_normal(len(exact))
                noisy = noisy.clip(0, 10)        # the judge's range: RWO's weights stay non-negative
                return torch.as_tensor(noisy / 10, dtype=torch.float32, device=pred.v.device), exact
            dimension = None if self.options.question == OVERALL_QUESTION else self.options.question
            return step.critic.p_yes(batch.get("source"), edit, batch["instructions"], dimension).float(), exact

    def weights(self, reward: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Per-sample loss weights [B], without gradient."""
        return rwo_weights(reward, self.baseline)

    def flow_loss(self, step, batch: dict[str, Any], pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        r, exact = self.reward(step, batch, pred)
        loss = (self.weights(r, batch) * pred.per_sample()).mean()
        metrics = {"reward": r.mean()}
        if self.options.reward == "critic":
            metrics["p_yes"] = metrics["reward"]
        if exact is not None:
            pairs, hits = pair_agreement(r.cpu().numpy(), exact, batch["group"].cpu().numpy())
            metrics |= {"judge_ea": torch.tensor(float(exact.mean())), "agree_pairs": torch.tensor(float(pairs)),
                        "agree_hits": torch.tensor(float(hits))}
        return loss, metrics

    def after_step(self, metrics: dict[str, float]) -> None:
        if "reward" in metrics:
            m = self.options.baseline_momentum
            r = metrics["reward"]
            self.baseline = r if self.baseline is None else m * self.baseline + (1 - m) * r

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = state.get("baseline")

    def finish(self, trainer) -> None:
        if self.judge is not None:
            self.judge.close()
