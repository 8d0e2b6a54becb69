"""Group-relative RWO: several candidates of each item, their loss weights normalised within the item's
group (as Flow-GRPO normalises its advantages), not by a running mean over all items.

Each item appears ``group_size`` times in a step's batch, each copy with its own noise; with
``shared_noise_level`` (the default) the copies share the noise level and the condition dropout, so
they differ only by the noise and a candidate is compared with candidates as hard as itself (the x0
estimate of a noisier sample is worse whatever the generator does). Each copy's reward r (the critic's
P(Yes) of its x0 estimate, or the exact judge's, ``reward`` as in RWO) becomes

    advantage  a_i = (r_i - mean_group(r)) / (std_group(r) + 1e-4)        (population std)
    weight     w_i = group_size * softmax_group(a / temperature)_i

so the weights are non-negative, their mean over each group is exactly 1, they do not change when a
constant is added to a group's rewards, a better candidate gets a larger weight, a group of equal
rewards gives every copy weight 1 (plain flow matching), and no gradient flows through them. A lower
``temperature`` concentrates a group's weight on its best candidates (at most ``group_size`` each).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ...errors import ReviseInputError
from .base import register
from .rwo import RWO, RWOOptions

STD_EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = STD_EPS) -> torch.Tensor:
    """(r - group mean) / (group std + eps) for rewards [N * group_size], each group's rows adjacent."""
    r = rewards.detach().float().view(-1, group_size)
    centred = r - r.mean(1, keepdim=True)
    return (centred / (r.std(1, unbiased=False, keepdim=True) + eps)).flatten()


def group_weights(rewards: torch.Tensor, group_size: int, temperature: float = 1.0) -> torch.Tensor:
    """Non-negative loss weights [N * group_size] with mean 1 in each group: group_size times the
    softmax over the group of advantage / temperature; without gradient."""
    a = group_advantages(rewards, group_size).view(-1, group_size)
    return (group_size * torch.softmax(a / temperature, dim=1)).flatten()


@dataclasses.dataclass
class RWOGroupOptions(RWOOptions):
    group_size: int = 4                  # candidates of each item per step (>= 2)
    temperature: float = 1.0             # of the softmax over a group's advantages
    shared_noise_level: bool = True      # a group's copies share the noise level and the dropout


@register
class RWOGroup(RWO):
    name = "rwo_group"
    Options = RWOGroupOptions

    @property
    def samples_per_item(self) -> int:
        return self.options.group_size

    @classmethod
    def check(cls, options: Any, cfg, source: str) -> None:
        super().check(options, cfg, source)
        if options.group_size < 2:
            raise ReviseInputError(f"{source}: rwo_group.group_size must be at least 2, not {options.group_size}")
        if not options.temperature > 0:
            raise ReviseInputError(f"{source}: rwo_group.temperature must be positive, not {options.temperature}")

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        out = super().fields(samples, g, latent_shape, device)
        if self.options.shared_noise_level:
            n = self.options.group_size
            for key in ("sigmas", "drop"):           # the first copy's, for the whole group
                out[key] = out[key].view(-1, n)[:, :1].expand(-1, n).flatten()
        return out

    def weights(self, reward: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        n = self.options.group_size
        group = batch["group"]
        expected = torch.arange(len(group), device=group.device) // n
        if not torch.equal(group, expected):
            raise ValueError("rwo_group needs each item's group_size copies next to each other")
        return group_weights(reward, n, self.options.temperature)
