"""Short answers: teacher-forced cross-entropy of a few-word answer to a question about the source
and the candidate (e.g. "After the edit, is it day or night?" -> "night")."""

from __future__ import annotations

from typing import Any

import torch

from ...critic import QA_PROMPT
from ...models.understanding import MEDIA_TOKEN
from .base import Objective, register


@register
class QA(Objective):
    name = "qa"

    def fields(self, samples: list[dict[str, Any]], g: torch.Generator, latent_shape: tuple[int, ...],
               device: torch.device) -> dict[str, Any]:
        return {"questions": [s.get("question") for s in samples],
                "answer_texts": [s.get("answer_text") for s in samples]}

    def loss(self, step, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        vlm = step.model.understanding
        prompts = [vlm.chat(QA_PROMPT.format(media=MEDIA_TOKEN, instruction=i, question=q))
                   for i, q in zip(batch["instructions"], batch["questions"])]
        clips = [[s, c] for s, c in zip(batch["source"], batch["target"])]
        return vlm.answer_loss(prompts, clips, batch["answer_texts"]), {}
