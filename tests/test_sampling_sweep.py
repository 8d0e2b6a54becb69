"""benchmarks/sampling_sweep.py's bookkeeping: which candidate best-of-n keeps, and how often a critic
orders two candidates as the judge does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location(
    "sampling_sweep", Path(__file__).resolve().parents[1] / "benchmarks" / "sampling_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def test_pick_keeps_each_items_highest_key_and_the_first_on_ties():
    values = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)     # [items, seeds, metrics]
    key = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.7]])
    kept = sweep.pick(values, key)
    assert kept.tolist() == [values[0, 1].tolist(), values[1, 0].tolist()]


def test_pair_agreement_counts_only_pairs_the_judge_separates():
    ea = np.array([[2.0, 5.0, 5.5]])          # pairs (0,1) and (0,2) differ by >= 1; (1,2) does not
    agree = sweep.pair_agreement(np.array([[0.1, 0.8, 0.05]]), ea)
    assert agree == (2, 0.5)                  # (0,1) ordered alike, (0,2) the other way round
    assert sweep.pair_agreement(np.array([[0.3, 0.3]]), np.array([[1.0, 9.0]])) == (1, 0.0)   # a tie is no hit


def test_group_rows_average_all_subsets_and_categories():
    records = [{"subset": "RAVE", "category": "causal"}, {"subset": "RAVE", "category": "spatial"},
               {"subset": "ICVG", "category": "causal"}]
    kept = np.array([[1.0, 2, 3, 4, 5], [3.0, 2, 3, 4, 5], [5.0, 2, 3, 4, 5]])
    rows = sweep.group_rows(records, kept)
    assert list(rows) == ["all", "ICVG", "ICVG/causal", "RAVE", "RAVE/causal", "RAVE/spatial"]
    assert rows["all"]["n"] == 3 and rows["all"]["EA"] == 3.0
    assert rows["RAVE"]["EA"] == 2.0 and rows["ICVG/causal"]["EA"] == 5.0


def test_critic_agreement_ranks_a_generators_candidates_with_each_critic(tmp_path, tiny_model):
    """benchmarks/critic_agreement.py on the tiny preset: two candidates per item, judged, ranked by
    the critic; the agreement is the sampling sweep's pair count on the judge's EA."""
    import json

    from revise.synth.dataset import make_dataset

    spec = importlib.util.spec_from_file_location(
        "critic_agreement", Path(__file__).resolve().parents[1] / "benchmarks" / "critic_agreement.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    make_dataset(3, "test", 0, tmp_path / "d", progress=False, workers=1, critic=True, clip_format="npy")
    data = tmp_path / "d" / "test.json"
    folders, ea = bench.candidates(tiny_model, data, 2, tmp_path / "work", 4, 1, num_inference_steps=2)
    assert ea.shape == (3, 2) and np.all((ea >= 1) & (ea <= 10))
    records = json.loads(data.read_text())
    out = bench.measure(tiny_model, records, data.parent, folders, ea, 4, tmp_path / "d" / "test_critic.json")
    p = np.stack([sweep.critic_p_yes(tiny_model, records, data.parent, f, 4) for f in folders], 1)
    assert out["pair_agreement"]["critic, EA"]["pairs"] == sweep.pair_agreement(p[:, :, 1], ea)[0]
    assert out["gate"] == (out["pair_agreement"]["critic, EA"]["rate"] >= 0.75)
    assert 0 < out["negatives"]["mean_p_yes"] < 1
