"""Training objectives, one module each, found by name (``objective: <name>`` in a training config).

Every module of this package that defines a class decorated with :func:`~.base.register` is an
objective: adding one is adding a file (see :mod:`.base` for what a class provides). The loss
functions are pure functions over tensors, importable from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from .base import REGISTRY, Objective, register
from .flow_matching import add_noise, flow_matching_per_sample, sample_sigmas, x0_estimate
from .rwo import rwo_loss, rwo_weights
from .sft import sft_loss
from .uso import semantic_loss, uso_loss
from .vae import focus_l1

if TYPE_CHECKING:
    from ..config import TrainConfig

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def create(cfg: "TrainConfig") -> Objective:
    """The objective ``cfg`` names, with its options section."""
    return REGISTRY[cfg.objective](cfg.options, cfg)


__all__ = ["REGISTRY", "Objective", "register", "create", "add_noise", "flow_matching_per_sample",
           "sample_sigmas", "x0_estimate", "rwo_loss", "rwo_weights", "sft_loss", "semantic_loss", "uso_loss",
           "focus_l1"]
