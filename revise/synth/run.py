"""Running a model on RVE-Synth: generate a split's edits in batches (through the bench harness,
:mod:`revise.bench.run`), and measure the internal critic on critic data. Scores of generated clips
come from :mod:`revise.synth.evaluate`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ..critic import QA_PROMPT, Critic
from ..errors import ReviseInputError
from ..video import read_video, write_video
from .dataset import check_clip_format, split_items

if TYPE_CHECKING:
    from ..pipelines.sampling_options import SamplingOptions


def _records(json_path: str | Path) -> tuple[list[dict], Path]:
    path = Path(json_path)
    if not path.is_file():
        raise ReviseInputError(f"RVE-Synth split {path} does not exist")
    return json.loads(path.read_text()), path.parent


def generate_split(pipe, json_path: str | Path, out_dir: str | Path, batch_size: int = 32, seed: int = 0,
                   progress: bool = True, clip_format: str = "mp4", instructions: str = "own", **sampling) -> Path:
    """Edit every item's source clip by its instruction; write ``out_dir/{id}.mp4`` (``clip_format``
    ``"npy"``: ``{id}.npy`` arrays, no codec). Items whose output exists already are skipped, so a
    killed run resumes. Each item's noise is seeded by (``seed``, its position in the split), so the
    result depends on ``batch_size`` only by float rounding. ``instructions`` ``"neutral"`` or
    ``"other"`` edits with an instruction-blind floor's instructions instead (:mod:`revise.synth.floors`).
    ``sampling``: the pipeline's settings (``num_inference_steps``, ``guidance_scale`` ...), the rest
    the model's own. The bench harness's :class:`~revise.bench.run.ModelEditor` and
    :func:`~revise.bench.run.generate_folder` do the work (``revise synth generate``)."""
    from ..bench.run import ModelEditor, generate_folder

    check_clip_format(clip_format)
    items = split_items(json_path, instructions)
    editor = ModelEditor.of_pipeline(pipe, pipeline_options(pipe, seed, **sampling), batch_size=batch_size)
    return generate_folder(items, editor, out_dir, clip_format=clip_format, progress=progress)


def pipeline_options(pipe, seed: int = 0, *, num_frames: int | None = None, height: int | None = None,
                     width: int | None = None, num_inference_steps: int | None = None,
                     guidance_scale: float | None = None, shift: float | None = None,
                     solver: str | None = None) -> SamplingOptions:
    """The checked settings of ``pipe``'s edits from its call's keyword arguments (the rest: its model's)."""
    from ..pipelines.sampling_options import resolve_sampling

    return resolve_sampling(pipe.model.sampling_config, frames=num_frames, height=height, width=width,
                            steps=num_inference_steps, guidance=guidance_scale, shift=shift, solver=solver, seed=seed)


class X0Editor:
    """The clips RWO and USO show the critic during training, as a bench editor: each item's target
    latents noised to ``sigma`` (``(1 - sigma) z + sigma * noise``, the item's own noise,
    :func:`~revise.bench.run.item_noise`), the DiT's velocity given the item's conditional context,
    the one-step estimate ``x0 = x_t - sigma * v`` decoded."""

    def __init__(self, model, sigma: float, seed: int = 0, batch_size: int = 32):
        if not 0.0 < sigma < 1.0:
            raise ReviseInputError(f"the noise level of x0 estimates must be in (0, 1), not {sigma}")
        self.model, self.sigma, self.seed, self.batch_size = model, sigma, seed, batch_size
        self.spec = {"kind": "x0-estimate", "sigma": sigma, "seed": seed}
        self.default_method = f"x0-sigma-{sigma:g}"

    @torch.no_grad()
    def edit_batch(self, jobs) -> list:
        from ..bench.run import item_noise
        from ..train.objectives import add_noise, x0_estimate

        model, d = self.model, self.model.sampling_config
        f, h, w = d.num_frames, d.height, d.width
        clips = {k: torch.stack([read_video(getattr(job.item, f"{k}_video_path"), f, h, w) for job in jobs])
                 .to(model.device, model.dtype) for k in ("source", "target")}
        source_latents, z = model.encode_video(clips["source"]), model.encode_video(clips["target"]).float()
        context, _ = model.build_context(source_latents, clips["source"], [job.item.instruction for job in jobs])
        noise = torch.stack([item_noise(z.shape[1:], self.seed, job.position) for job in jobs]).to(z.device)
        sigmas = torch.full((len(jobs),), self.sigma, device=z.device)
        x_t = add_noise(z, noise, sigmas)
        dit = model.transformer
        v = dit(x_t.to(dit.dtype), sigmas * 1000, context, return_dict=False)[0].float()
        out = model.decode_latents(x0_estimate(x_t, v, sigmas).to(model.dtype)).float().cpu()
        for job, clip in zip(jobs, out):
            write_video(job.out, clip, fps=d.fps)
        return [None] * len(jobs)


def x0_estimate_split(model, json_path: str | Path, out_dir: str | Path, sigma: float, batch_size: int = 32,
                      seed: int = 0, progress: bool = True, clip_format: str = "npy") -> Path:
    """:class:`X0Editor`'s clips for every item of a split, written as ``out_dir/{id}.{clip_format}``
    (existing ones kept). Judged and labelled (``revise synth label``), they teach the critic the
    clips it must rate there."""
    from ..bench.run import generate_folder

    editor = X0Editor(model, sigma, seed, batch_size)
    check_clip_format(clip_format)
    return generate_folder(split_items(json_path), editor, out_dir, clip_format=clip_format, progress=progress,
                           desc=f"x0 estimates at sigma {sigma}")


@torch.no_grad()
def critic_report(model, json_path: str | Path, batch_size: int = 32, progress: bool = True) -> dict:
    """The critic's answers on critic data (``revise synth make --critic``): accuracy and balanced
    accuracy per question (overall and each dimension) and per candidate kind (on the overall and the
    edit-accuracy questions, with each kind's mean P(Yes)), and the rate at which
    the exact target gets a higher overall P(Yes) than each of its item's negatives."""
    records, root = _records(json_path)
    p_yes = _critic_p_yes(model, records, root, batch_size, progress)
    groups: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for r, p in zip(records, p_yes):
        yes = str(r["answer"]).lower() == "yes"
        groups[f"question/{r.get('dimension') or 'overall'}"].append((p, yes))
        if r.get("dimension") is None:
            groups[f"kind/{r.get('kind', '?')}"].append((p, yes))
        elif r["dimension"] == "edit_accuracy":   # does it tell a right edit from no edit or a wrong one?
            groups[f"edit_accuracy_kind/{r.get('kind', '?')}"].append((p, yes))
    report = {k: _accuracy(v) for k, v in sorted(groups.items())}
    # ranking: target above each negative of the same item, on the overall question
    by_item: dict[str, dict[str, float]] = defaultdict(dict)
    for r, p in zip(records, p_yes):
        if r.get("dimension") is None:
            by_item[r["id"]][r.get("kind", "?")] = p
    pairs = [(k["target"] > v) for k in by_item.values() if "target" in k for kind, v in k.items() if kind != "target"]
    report["target_ranked_above_negative"] = {"n": len(pairs), "rate": float(np.mean(pairs)) if pairs else float("nan")}
    return report


@torch.no_grad()
def _critic_p_yes(model, records: list[dict], root: Path, batch_size: int, progress: bool) -> list[float]:
    """The critic's P(Yes) of each critic record (its own question: overall or one dimension)."""
    critic = Critic(model.understanding)
    f, h, w = model.sampling_config.num_frames, model.sampling_config.height, model.sampling_config.width
    cache: dict[str, torch.Tensor] = {}

    def clip(rel: str) -> torch.Tensor:
        if rel not in cache:
            cache[rel] = read_video(root / rel, f, h, w)
        return cache[rel]

    p_yes: list[float] = []
    for start in tqdm(range(0, len(records), batch_size), desc="critic", unit="batch", disable=not progress):
        chunk = records[start:start + batch_size]
        src = torch.stack([clip(r["source_video_path"]) for r in chunk]).to(model.device, model.dtype)
        cand = torch.stack([clip(r["candidate_video_path"]) for r in chunk]).to(model.device, model.dtype)
        p_yes += critic.p_yes(src, cand, [r["instruction"] for r in chunk], [r.get("dimension") for r in chunk]).tolist()
        if len(cache) > 4096:
            cache.clear()
    return p_yes


def held_out_negatives(json_path: str | Path, dimension: str = "edit_accuracy", limit: int | None = None) -> list[dict]:
    """The fixed negatives of critic data: each item's non-target candidates labelled No on
    ``dimension``'s question (in file order; the first ``limit``)."""
    records, _ = _records(json_path)
    out = [r for r in records if r.get("dimension") == dimension and r.get("kind") != "target"
           and str(r.get("answer")).lower() == "no"]
    if not out:
        raise ReviseInputError(f"{json_path} has no negatives on the {dimension} question (critic data, "
                               "'revise synth make --critic')")
    return out[:limit] if limit else out


@torch.no_grad()
def critic_drift_report(model, json_path: str | Path, dimension: str = "edit_accuracy", limit: int | None = None,
                        batch_size: int = 32, progress: bool = True) -> dict:
    """The critic's mean P(Yes) on fixed held-out negatives (:func:`held_out_negatives`), overall and per
    candidate kind: printed before and after a run that trains beside the critic (USO with the LM head,
    or a critic retrained on-policy), it shows whether the critic drifted toward saying Yes."""
    records = held_out_negatives(json_path, dimension, limit)
    p_yes = _critic_p_yes(model, records, Path(json_path).parent, batch_size, progress)
    kinds: dict[str, list[float]] = defaultdict(list)
    for r, p in zip(records, p_yes):
        kinds[r.get("kind", "?")].append(p)
    return {"dimension": dimension, "n": len(p_yes), "mean_p_yes": float(np.mean(p_yes)),
            "kinds": {k: {"n": len(v), "mean_p_yes": float(np.mean(v))} for k, v in sorted(kinds.items())}}


@torch.no_grad()
def qa_report(model, json_path: str | Path, limit: int | None = None) -> dict:
    """Exact-match accuracy of the VLM's greedy short answers on ``SPLIT_qa.json``, per question kind."""
    from ..models.understanding import MEDIA_TOKEN

    records, root = _records(json_path)
    records = records[:limit] if limit else records
    vlm = model.understanding
    f, h, w = model.sampling_config.num_frames, model.sampling_config.height, model.sampling_config.width
    hits: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        clips = [read_video(root / r[k], f, h, w).to(model.device, model.dtype)
                 for k in ("source_video_path", "candidate_video_path")]
        prompt = vlm.chat(QA_PROMPT.format(media=MEDIA_TOKEN, instruction=r["instruction"], question=r["question"]))
        said = vlm.generate(prompt, clips, max_new_tokens=8).strip().lower()
        hits[r["kind"]].append(said == str(r["answer"]).strip().lower())
    return {k: {"n": len(v), "accuracy": float(np.mean(v))} for k, v in sorted(hits.items())}


def _accuracy(rows: list[tuple[float, bool]]) -> dict:
    p = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    pred = p > 0.5
    acc = float((pred == y).mean())
    per_class = [float((pred[y == c] == c).mean()) for c in (True, False) if (y == c).any()]
    return {"n": len(rows), "yes": int(y.sum()), "accuracy": acc, "balanced_accuracy": float(np.mean(per_class)),
            "mean_p_yes": float(p.mean())}
