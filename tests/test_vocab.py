"""The shared words (revise/vocab.py), and the names RVE-Synth re-exports from it."""

from revise import vocab
from revise.synth import critic_data, item, judge


def test_synth_spells_the_shared_words_the_same():
    assert (item.SUBSETS, item.CATEGORIES) == (vocab.SUBSETS, vocab.CATEGORIES)
    assert judge.DIMENSIONS == vocab.DIMENSIONS
    assert critic_data.JUDGE_DIMENSIONS == vocab.CRITIC_DIMENSION


def test_critic_dimensions_follow_the_judge_dimensions():
    assert list(vocab.CRITIC_DIMENSION) == list(vocab.DIMENSIONS)
    assert tuple(vocab.CRITIC_DIMENSION.values()) == vocab.CRITIC_DIMENSIONS
