"""The words of RVE-Synth: every word its instructions, the critic's questions and the conditioning
prompt can hold, so a word-level tokenizer built from them never meets an unknown word on this world.

Instructions are made by formatting each family's phrasings with the names of the scene's objects;
:func:`synth_words` formats every phrasing of every family and subset with items drawn from every
colour/shape combination (all splits: the vocabulary is the world's, not the training split's).
"""

from __future__ import annotations

import re

import numpy as np

WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks, as the word tokenizer's pre-tokenizer splits."""
    return WORD_PATTERN.findall(text.lower())


def synth_words(draws_per_phrasing: int = 6, seed: int = 0) -> list[str]:
    """Sorted words of RVE-Synth's instructions and of the prompts the model asks itself."""
    from ..critic import CHANGE_LINE, DIMENSION_QUESTIONS, QUESTION, REASONING_SUFFIX
    from ..models.understanding import GENERATION_ANSWER
    from .dataset import QA_QUESTIONS
    from .tasks import FAMILIES, SHAPES, Retry
    from .world import PALETTE

    words: set[str] = set()
    texts = [QUESTION, CHANGE_LINE, REASONING_SUFFIX, GENERATION_ANSWER, "Yes", "No", *DIMENSION_QUESTIONS.values(),
             " ".join(PALETTE), " ".join(SHAPES), "ice water", "system user assistant",  # + chat roles
             *QA_QUESTIONS.values(), "day night the Source Edit Instruction"]
    rng = np.random.default_rng(seed)
    combos = [(c, s) for c in PALETTE for s in SHAPES]
    for family in FAMILIES.values():
        for subset, phrasings in family.phrasings.items():
            texts += [re.sub(r"\{[^}]*\}", " ", t) for t in phrasings]      # the words around the blanks
            for p in range(len(phrasings)):
                for k in range(draws_per_phrasing):
                    combo = combos[int(rng.integers(len(combos)))]
                    try:
                        texts.append(family.generate(rng, p, combo, subset).instruction)
                    except Retry:
                        continue
    for text in texts:
        words.update(split_words(re.sub(r"\{\w+\}", " ", text)))      # prompt templates' blanks
    return sorted(words)
