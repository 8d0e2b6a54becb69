"""The internal critic: the unified model's own understanding VLM, asked whether an edit holds.

Shown the source clip, a candidate clip and the instruction, it is asked to judge four dimensions
(edit accuracy, preservation consistency, generation naturalness, generation realism) and to
answer Yes only if all four hold. Its score is P(Yes): the softmax over the Yes/No answer-token
logits at the answer position. A VLM with ``critic_change_clip`` (the mini preset's) is also shown
the change, (candidate - source) / 2, as a third clip.

Two uses:
- ``score``: no gradients, for evaluation, best-of-N and RWO weights. With ``reason=True`` the VLM
  first writes its reasoning (greedy) and the answer is read after it, as the paper describes.
- ``p_yes``: differentiable in the candidate's pixels, for USO; the answer follows the question
  directly (generated reasoning has no gradient).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .models.understanding import MEDIA_TOKEN, UnderstandingModel
from .vocab import CRITIC_DIMENSIONS as DIMENSIONS

QUESTION = (
    "The first video is the source and the second is an edit of it.\n"
    f"Source: {MEDIA_TOKEN}\nEdit: {MEDIA_TOKEN}\n"
    "{change}Instruction: {instruction}\n"
    "Reason about what the instruction implies for the scene, then judge the edit on four dimensions: "
    "edit accuracy (the inferred change happened), preservation consistency (nothing else changed), "
    "generation naturalness (smooth, coherent motion) and generation realism (it looks like the "
    "source's world). Answer Yes only if all four hold, otherwise No."
)
DIMENSION_QUESTIONS = {
    "edit_accuracy": "Did the inferred change the instruction asks for happen?",
    "preservation_consistency": "Did everything the instruction should not change stay the same?",
    "generation_naturalness": "Is the motion smooth and coherent, without flicker or jumps?",
    "generation_realism": "Does the edit look like the source's world?",
}
REASONING_SUFFIX = "\nSo the answer (Yes or No) is:"
# the third clip of a critic with ``critic_change_clip`` (a small VLM trained from scratch cannot
# compare two clips token by token at first; shown their difference it can: docs/results.md)
CHANGE_LINE = f"Change: {MEDIA_TOKEN}\n"
# short-answer questions about a source and an edit (understanding training, the "qa" objective)
QA_PROMPT = "Source: {media}\nEdit: {media}\nInstruction: {instruction}\n{question}"


class Critic:
    def __init__(self, understanding: UnderstandingModel):
        self.vlm = understanding

    def prompt(self, instruction: str, dimension: str | None = None) -> str:
        """The chat-templated question, ending where the answer starts. ``dimension`` asks one
        dimension alone (for critic training and per-dimension reports)."""
        text = QUESTION.format(instruction=instruction, change=CHANGE_LINE if self.vlm.critic_change_clip else "")
        if dimension is not None:
            if dimension not in DIMENSION_QUESTIONS:
                raise ValueError(f"unknown dimension {dimension!r}: one of {', '.join(DIMENSIONS)}")
            head = text.rsplit("Reason about", 1)[0]
            text = f"{head}{DIMENSION_QUESTIONS[dimension]} Answer Yes or No."
        return self.vlm.chat(text)

    def prompts(self, instructions: Sequence[str], dimension: str | None | Sequence[str | None] = None) -> list[str]:
        """One prompt per instruction; ``dimension`` is one for all, or a sequence with one per sample."""
        dims = [dimension] * len(instructions) if dimension is None or isinstance(dimension, str) else list(dimension)
        return [self.prompt(i, d) for i, d in zip(instructions, dims)]

    def p_yes(self, source: torch.Tensor, candidate: torch.Tensor, instructions: Sequence[str],
              dimension: str | None | Sequence[str | None] = None) -> torch.Tensor:
        """P(Yes) [B], differentiable in ``candidate`` ([B, 3, F, H, W] in [-1, 1])."""
        return self.logits(source, candidate, instructions, dimension).float().softmax(-1)[:, 0]

    def clips(self, source: torch.Tensor, candidate: torch.Tensor) -> list[list[torch.Tensor]]:
        """What the critic is shown per sample: the source and the candidate, and with
        ``critic_change_clip`` their difference (candidate - source) / 2, in [-1, 1]."""
        if self.vlm.critic_change_clip:
            return [[s, c, (c - s) / 2] for s, c in zip(source, candidate)]
        return [[s, c] for s, c in zip(source, candidate)]

    def logits(self, source: torch.Tensor, candidate: torch.Tensor, instructions: Sequence[str],
               dimension: str | None | Sequence[str | None] = None) -> torch.Tensor:
        """The [Yes, No] logits [B, 2], for training the critic with cross-entropy."""
        return self.vlm.answer_logits(self.prompts(instructions, dimension), self.clips(source, candidate))

    @torch.no_grad()
    def score(self, source: torch.Tensor, candidate: torch.Tensor, instructions: Sequence[str],
              dimension: str | None = None, reason: bool = False, max_reasoning_tokens: int = 64) -> torch.Tensor:
        """P(Yes) [B] without gradients; with ``reason`` the VLM writes its reasoning first."""
        if not reason:
            return self.p_yes(source, candidate, instructions, dimension)
        out = []
        for clips, instruction in zip(self.clips(source, candidate), instructions):
            prompt = self.prompt(instruction, dimension)
            thought = self.vlm.generate(prompt, clips, max_new_tokens=max_reasoning_tokens)
            logits = self.vlm.answer_logits([prompt + thought + REASONING_SUFFIX + " "], [clips])
            out.append(logits.float().softmax(-1)[0, 0])
        return torch.stack(out)
