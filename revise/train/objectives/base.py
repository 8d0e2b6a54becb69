"""What a training objective is: its options (a config section), the batch fields it draws, its loss.

The trainer names no objective. Each step it loads ``batch_size`` items, repeats each one
``samples_per_item`` times (several candidates of one item, e.g. for weights normalised within a
group), and asks the objective for its batch fields (:meth:`Objective.fields`, drawn from the step's
seeded generator, so a resumed run repeats the uninterrupted one) and then for the loss
(:meth:`Objective.loss`, run inside the trainer's module so that DDP/FSDP see every parameter used).

Adding an objective is adding a file to this package:

1. a dataclass of its options, with defaults (the config section ``<name>: {...}``), unless it has
   none; a generator objective extends ``FlowMatchingOptions`` and ``FlowMatchingObjective``, whose
   :meth:`~.flow_matching.FlowMatchingObjective.flow_loss` gets the DiT's prediction;
2. a class decorated with :func:`register`, with ``name`` and ``Options``, that returns the loss
   and its metrics from :meth:`Objective.loss`, draws any randomness it needs in
   :meth:`Objective.fields`, and keeps whatever must survive a resume in :meth:`Objective.state_dict`;
3. a config naming it (``objective: <name>``) and a test.

An objective that compares several candidates of one item (e.g. weights normalised within a group)
sets ``samples_per_item``; its batch then holds each item's copies next to each other, each with its
own noise, and ``batch["group"]`` says which item a row is a copy of. RWO's per-sample weights come
from :meth:`~.rwo.RWO.weights`, which a subclass can replace.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import TripletData
    from ..trainer import Trainer, TrainStep


@dataclasses.dataclass
class NoOptions:
    """The section of an objective that has no options of its own."""


class Objective:
    """One training objective. Subclasses set ``name`` and (if they have options) ``Options``, a
    dataclass whose fields, with their defaults, are the YAML section named after the objective."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    # flat names of the options before they had a section, where not "<name>_<field>" or "<field>"
    former_names: ClassVar[dict[str, str]] = {}
    # the clips a step reads; with ``cache_features`` the ones still read (None: the feature cache,
    # VAE latents and frozen-VLM hidden states, does not serve this objective)
    clip_parts: ClassVar[tuple[str, ...]] = ("source", "target")
    cached_clip_parts: ClassVar[tuple[str, ...] | None] = None
    # metrics shown on the progress bar (all go to metrics.jsonl)
    shown: ClassVar[tuple[str, ...]] = ("loss",)

    def __init__(self, options: Any, cfg: "TrainConfig"):
        self.options, self.cfg = options, cfg

    @property
    def samples_per_item(self) -> int:
        """Rows per loaded item in a step's batch (its copies stay next to each other)."""
        return 1

    @classmethod
    def check(cls, options: Any, cfg: "TrainConfig", source: str) -> None:
        """Raise ReviseInputError for options that cannot work (field types are checked already)."""

    @classmethod
    def reads_critic(cls, options: Any) -> bool:
        """Whether these options score the generator's samples with the critic (so that a separate
        frozen critic, the config's ``critic_model``, can stand in for the model's own)."""
        return False

    def setup(self, data: "TripletData") -> None:
        """Called once the training data is open (e.g. to count its answers)."""

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        """This objective's batch fields for the step's samples (clips and instructions are given)."""
        return {}

    def loss(self, step: "TrainStep", batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def after_step(self, metrics: dict[str, float]) -> None:
        """Called with each finished step's metrics (e.g. to update a running mean)."""

    def state_dict(self) -> dict[str, Any]:
        """State that a checkpoint keeps (JSON-serialisable)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def finish(self, trainer: "Trainer") -> None:
        """Called when training ends (e.g. to measure what the trained module needs at inference)."""


REGISTRY: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: the objective becomes selectable as ``objective: <cls.name>``."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two objectives are named {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls
