"""Best-of-N editing: N candidates from N seeds, the one the internal critic rates highest kept.

The critic is the unified model's own understanding VLM (:class:`revise.critic.Critic`): it ranks
candidates by P(Yes) of its overall question (all four dimensions hold) and then reports, for the
kept candidate, P(Yes) of each dimension's own question too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch

from ..critic import DIMENSIONS, Critic
from ..vocab import OVERALL_QUESTION
from ..errors import ReviseInputError
from .edit import ReviseEditPipeline

#: The most candidates one call makes (each is a full edit).
MAX_BEST_OF = 16


@dataclasses.dataclass
class BestOfOutput:
    video: torch.Tensor            # the kept candidate [3, F, H, W] in [-1, 1]
    source: torch.Tensor           # the source as the model saw it, same shape
    seed: int                      # the kept candidate's seed
    scores: dict[str, float]       # the kept candidate's P(Yes): "overall" and one per dimension
    candidates: list[dict]         # every candidate: {"seed", "p_yes"} in the order made
    timings: dict[str, float]      # seconds per stage, summed over the candidates


def critic_scores(critic: Critic, source: torch.Tensor, candidate: torch.Tensor, instruction: str) -> dict[str, float]:
    """P(Yes) of the overall question and of each dimension's question for one [3, F, H, W] pair."""
    pair = source.unsqueeze(0), candidate.unsqueeze(0)
    scores = {OVERALL_QUESTION: float(critic.score(*pair, [instruction])[0])}
    for dim in DIMENSIONS:
        scores[dim] = float(critic.score(*pair, [instruction], dimension=dim)[0])
    return scores


def edit_best_of(pipe: ReviseEditPipeline, video: torch.Tensor | str | Path, instruction: str, n: int, *,
                 seed: int = 0, progress: Callable[[float, str], None] | None = None,
                 **sampling) -> BestOfOutput:
    """Edit ``video`` ``n`` times with seeds ``seed .. seed + n - 1`` and keep the candidate with the
    highest overall P(Yes) (the first on ties). ``sampling`` goes to the pipeline (num_frames,
    num_inference_steps, guidance_scale, ...). ``progress(fraction, stage)`` is told along the way."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BEST_OF:
        raise ReviseInputError(f"best-of must be a whole number from 1 to {MAX_BEST_OF}, not {n!r}")
    report = progress or (lambda fraction, stage: None)
    critic = Critic(pipe.model.understanding)
    best: tuple[float, int, torch.Tensor] | None = None
    candidates, timings, source = [], {}, video
    for k in range(n):
        label = f"candidate {k + 1} of {n}: " if n > 1 else ""

        def on_step(i: int, steps: int, k: int = k, label: str = label) -> None:
            report((k + i / steps) / n * 0.95, f"{label}denoising step {i} of {steps}")

        report(k / n * 0.95, f"{label}encoding the source and the instruction")
        out = pipe(source, instruction, seed=seed + k, callback=on_step, progress=False, **sampling)
        source = out.source                                  # decoded once, reused for the next seeds
        sampling["vlm_frames"] = out.vlm_frames              # and what the VLM saw of it
        for stage, seconds in out.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        if n == 1:
            best = (float("nan"), seed, out.video[0])
            break
        report((k + 1) / n * 0.95, f"{label}asking the critic")
        with pipe.stage("critic"):
            p = float(critic.score(out.source, out.video, [instruction])[0])
        candidates.append({"seed": seed + k, "p_yes": p})
        if best is None or p > best[0]:
            best = (p, seed + k, out.video[0])
    assert best is not None
    report(0.96, "scoring the edit on each dimension")
    with pipe.stage("critic"):
        scores = critic_scores(critic, source[0], best[2], instruction)
    if n == 1:
        candidates.append({"seed": seed, "p_yes": scores[OVERALL_QUESTION]})
    report(1.0, "done")
    return BestOfOutput(video=best[2], source=source[0], seed=best[1], scores=scores, candidates=candidates,
                        timings=timings)
