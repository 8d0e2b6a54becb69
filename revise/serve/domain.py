"""Honest feedback for the web page: what lies outside what the model knows, and what its critic's
scores are.

* **Words.** :func:`unknown_words` tokenizes each word of an instruction with the model's own
  tokenizer and reports those that become the unknown token. A word-level tokenizer (RVE-Synth's
  vocabulary: the bundled model, the ``mini`` preset) knows 340 words; a byte tokenizer
  (``tiny``) or a real T5 tokenizer knows them all, so it reports none.
* **Clips.** :func:`clip_domain` measures how much a clip looks like RVE-Synth, the world the bundled
  model was trained on: flat backgrounds and flat-coloured shapes, so almost every pixel has the same
  colour as its right-hand neighbour. Its number is the *flat share*: the share of horizontally
  neighbouring pixel pairs, at the model's resolution, that differ by at most 3 levels (of 255) in
  every channel. The threshold :data:`FLAT_SHARE_MIN` was chosen on measurements at 64x64: 100
  RVE-Synth test items 0.959 or more (20 of them 0.935 or more after an H.264 round trip, as an
  upload goes), the bundled examples 0.966-0.982; natural-looking clips far below: a photograph
  panned (Grace Hopper, matplotlib's sample) 0.17, the same darkened 6x 0.67, blurred 0.24, smooth
  random "clouds" 0.27, a smooth horizontal gradient 0.72, noise 0.003. It is a cheap look at the pixels, no more: it does
  not know whether the *content* is one the model has seen.
* **The critic.** The P(Yes) shown is the model's own critic grading its own edit, not a quality
  measure: :data:`CRITIC_NOTE` says how well it ranks (docs/results.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.tokenizers import WORD_REGEX

FLAT_LEVELS = 3            # neighbours at most this far apart (0-255, every channel) count as flat
FLAT_SHARE_MIN = 0.85      # below this a clip does not look like RVE-Synth (see the module's docstring)
CRITIC_NOTE = ("These are the model's own critic's self-assessment, not a measure of quality: it orders the "
               "generator's own candidates as the exact judge does in only 0.53-0.60 of pairs (docs/results.md), "
               "and an edit of a clip unlike its training world can still score high.")


def load_tokenizer(model: str | Path):
    """The T5 tokenizer of a model folder or preset, without loading any weights."""
    from transformers import AutoTokenizer

    from ..config import load_preset
    from ..models.revise_model import component_dirs
    from ..models.tokenizers import build_tokenizer

    if Path(model).is_dir():
        return AutoTokenizer.from_pretrained(component_dirs(Path(model))["tokenizer"])
    return build_tokenizer("t5", load_preset(model)["tokenizer"])


def knows_only_rve_synth(tokenizer) -> bool:
    """Whether a model's tokenizer is a word-level one (RVE-Synth's vocabulary): such a model was made
    for RVE-Synth alone, so clips unlike RVE-Synth are worth a warning."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.model).__name__ == "WordLevel"


def unknown_words(tokenizer, text: str) -> list[str]:
    """The words of ``text`` (lower-cased, each once, in order) that ``tokenizer`` turns into its
    unknown token; punctuation is not reported. (To become ``revise.models.tokenizers.unknown_words``
    once that shared helper lands.)"""
    unk = tokenizer.unk_token_id
    if unk is None:
        return []
    found: list[str] = []
    for word in re.findall(WORD_REGEX, text.lower()):
        if re.fullmatch(r"\w+", word) and word not in found and \
                unk in tokenizer(word, add_special_tokens=False)["input_ids"]:
            found.append(word)
    return found


def vocabulary_warnings(words: list[str]) -> list[str]:
    if not words:
        return []
    shown = ", ".join(f"'{w}'" for w in words[:8]) + (f" and {len(words) - 8} more" if len(words) > 8 else "")
    return [f"the model's vocabulary does not have {shown}: it reads {'them' if len(words) > 1 else 'it'} as an "
            "unknown word, so the edit will not follow that part of the instruction"]


def clip_domain(clip: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """The flat share of a clip (float ``[3, F, H, W]`` in [-1, 1] as the model reads it, or uint8
    ``[F, H, W, 3]``) and whether it reaches :data:`FLAT_SHARE_MIN`."""
    if isinstance(clip, torch.Tensor):
        levels = ((clip.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 3, 0).numpy()
    else:
        levels = np.asarray(clip, np.float32)
    step = np.abs(np.diff(levels, axis=2)).max(axis=-1)          # [F, H, W-1]: the largest channel change
    share = float((step <= FLAT_LEVELS).mean()) if step.size else 1.0
    return {"flat_share": round(share, 4), "threshold": FLAT_SHARE_MIN, "in_domain": share >= FLAT_SHARE_MIN}


def clip_warning(domain: dict[str, Any]) -> str | None:
    if domain["in_domain"]:
        return None
    return (f"this clip does not look like the model's training world (RVE-Synth: flat backgrounds, a few flat "
            f"colours): {domain['flat_share']:.0%} of neighbouring pixels are flat, RVE-Synth clips have "
            f"{FLAT_SHARE_MIN:.0%} or more. Expect the edit to redraw a synthetic scene whatever the instruction, "
            "and the critic's scores to mean nothing here")
