"""Preference pairs for the critic: ``judged_pairs`` and ``revise synth pairs`` make them from judged
edits, the ``critic_pairwise`` objective trains on them beside Yes/No records, and RWO can ask the
critic the edit-accuracy question."""

import json

import numpy as np
import pytest
import torch

from revise.cli import main
from revise.errors import ReviseInputError
from revise.synth.critic_data import judged_pairs
from revise.train.data import TripletData
from revise.train.objectives.critic_pairwise import pairwise_loss
from revise.train.trainer import Trainer
from revise.video import write_video
from test_trainer import config, data  # noqa: F401  (data: the trainer tests' fixture)


def test_pairwise_loss_prefers_the_better_margin():
    better = torch.tensor([2.0, 0.0], requires_grad=True)
    rival = torch.tensor([0.0, 2.0], requires_grad=True)
    loss = pairwise_loss(better, rival)
    loss.backward()
    assert torch.isclose(loss, (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(2.0)))) / 2)
    assert (better.grad < 0).all() and (rival.grad > 0).all()      # descent raises the better, lowers the rival
    assert pairwise_loss(torch.tensor([5.0]), torch.tensor([0.0])) < pairwise_loss(torch.tensor([0.0]), torch.tensor([5.0]))


def test_judged_pairs_order_each_question_by_its_metric():
    rec = {"id": "a", "source_video_path": "s.npy", "instruction": "push it", "category": "causal",
           "subset": "RAVE", "family": "push"}
    row = lambda ea, overall: {"id": "a", "EA": ea, "PC": 9.0, "GN": 9.0, "GR": 9.0, "overall": overall}
    sets = [[row(9.0, 6.0)], [row(3.0, 6.5)], [row(8.5, 9.0)], [{"id": "a", "missing": True}]]
    paths = [{"a": "e0.npy"}, {"a": "e1.npy"}, {"a": "e2.npy"}, {"a": "e3.npy"}]
    pairs = judged_pairs([rec], sets, paths, min_gap=1.0)
    got = {(p["dimension"], p["candidate_video_path"], p["rival_video_path"]) for p in pairs}
    # EA: 9 > 3 and 8.5 > 3 (9 vs 8.5 is within the gap); overall: 9 > 6 and 9 > 6.5 (6 vs 6.5 within it)
    assert got == {("edit_accuracy", "e0.npy", "e1.npy"), ("edit_accuracy", "e2.npy", "e1.npy"),
                   (None, "e2.npy", "e0.npy"), (None, "e2.npy", "e1.npy")}
    assert all(p["kind"] == "generated_pair" and p["gap"] >= 1 for p in pairs)
    assert judged_pairs([rec], sets, paths, min_gap=7.0) == []
    with pytest.raises(ValueError):
        judged_pairs([rec], sets, paths[:2])


def test_synth_pairs_from_two_judged_edit_sets(tmp_path, capsys):
    """The exact targets as one set of edits and the unedited sources as the other: every item's pair
    on the edit-accuracy question puts the target first, and the file loads as training data."""
    out = tmp_path / "synth"
    assert main(["synth", "make", "--n", "4", "--split", "train", "--seed", "5", "--out", str(out), "--format", "npy",
                 "--critic"]) == 0
    records = json.loads((out / "train.json").read_text())
    folders, scores = [], []
    for kind in ("target", "source"):
        videos = tmp_path / kind
        videos.mkdir()
        for r in records:
            (videos / f"{r['id']}.npy").write_bytes((out / r[f"{kind}_video_path"]).read_bytes())
        assert main(["synth", "score", "--data", str(out / "train.json"), "--videos", str(videos),
                     "--out", str(tmp_path / f"{kind}.json")]) == 0
        folders.append(str(videos))
        scores.append(str(tmp_path / f"{kind}.json"))
    capsys.readouterr()
    pairs_json = tmp_path / "elsewhere" / "pairs.json"
    pairs_json.parent.mkdir()
    assert main(["synth", "pairs", "--data", str(out / "train.json"), "--videos", *folders, "--scores", *scores,
                 "--merge", str(out / "train_critic.json"), "--out", str(pairs_json)]) == 0
    assert "preference pairs from 2 edits of each item" in capsys.readouterr().out
    made = json.loads((out / "train_critic.json").read_text())
    got = json.loads(pairs_json.read_text())
    pairs = [r for r in got[len(made):] if r["dimension"] == "edit_accuracy"]
    assert len(pairs) == len(records)
    assert all(p["candidate_video_path"].startswith("../target/") and p["rival_video_path"].startswith("../source/")
               for p in pairs)
    data = TripletData(pairs_json, 17, 64, 64)
    pair = data.load(len(made), ("source", "target", "rival"))
    assert pair["pair"] and not torch.equal(pair["target"], pair["rival"])
    plain = data.load(0, ("source", "target", "rival"))           # a Yes/No record: the rival is the candidate
    assert "pair" not in plain and torch.equal(plain["target"], plain["rival"])

    capsys.readouterr()
    args = ["synth", "pairs", "--data", str(out / "train.json"), "--out", str(tmp_path / "o.json")]
    assert main(args + ["--videos", folders[0], "--scores", scores[0]]) == 2
    assert main(args + ["--videos", *folders, "--scores", *scores, "--min-gap", "0"]) == 2
    assert main(args + ["--videos", *folders, "--scores", scores[0], str(out / "train.json")]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 3 and all(l.startswith("revise: error:") for l in err)
    assert not (tmp_path / "o.json").exists()


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(1)
    records = []
    for i in range(4):
        src = rng.integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
        good = np.clip(src.astype(int) + 60, 0, 255).astype(np.uint8)
        for name, clip in (("s", src), ("g", good)):
            write_video(root / f"{name}{i}.mp4", clip)
        base = {"source_video_path": f"s{i}.mp4", "instruction": f"brighten it {i}", "type": "commonsense"}
        records.append({**base, "candidate_video_path": f"g{i}.mp4", "rival_video_path": f"s{i}.mp4",
                        "dimension": "edit_accuracy"})
        records.append({**base, "candidate_video_path": f"g{i}.mp4", "answer": "Yes", "dimension": None})
        records.append({**base, "candidate_video_path": f"s{i}.mp4", "answer": "No", "dimension": None})
    (root / "pairs.json").write_text(json.dumps(records))
    return root


def test_critic_pairwise_trains_the_order_of_its_pairs(pair_data, tmp_path):
    t = Trainer(config(pair_data / "pairs.json", tmp_path, objective="critic_pairwise", train_modules=["lm_head"],
                       lm_head_lr=3e-2, batch_size=6, steps=12, critic_pairwise={"pair_weight": 2.0}))
    dit0 = {k: v.clone() for k, v in t.model.transformer.state_dict().items()}
    critic = t.step_module.critic
    items = [t.data.load(i, ("source", "target", "rival")) for i in range(len(t.data)) if "rival_video_path" in t.data.items[i]]
    src, good, bad = (torch.stack([s[k] for s in items]) for k in ("source", "target", "rival"))

    def pairs_loss() -> float:               # the pairs' loss on every pair of the data
        with torch.no_grad():
            m = [critic.logits(src, c, [s["instruction"] for s in items], "edit_accuracy").float() for c in (good, bad)]
            return pairwise_loss(m[0][:, 0] - m[0][:, 1], m[1][:, 0] - m[1][:, 1]).item()

    before = pairs_loss()
    out = t.train()
    assert np.isfinite(out["loss"]) and "pair_loss" in out
    assert pairs_loss() < before
    assert all(torch.equal(v, t.model.transformer.state_dict()[k]) for k, v in dit0.items())


def test_critic_pairwise_needs_pairs_and_yes_no_records(pair_data, tmp_path):
    records = json.loads((pair_data / "pairs.json").read_text())
    (pair_data / "plain.json").write_text(json.dumps([r for r in records if "rival_video_path" not in r]))
    with pytest.raises(ReviseInputError, match="no preference pairs"):
        Trainer(config(pair_data / "plain.json", tmp_path, objective="critic_pairwise", train_modules=["lm_head"]))
    loose = records + [{"source_video_path": "s0.mp4", "target_video_path": "g0.mp4", "instruction": "x"}]
    (pair_data / "loose.json").write_text(json.dumps(loose))
    with pytest.raises(ReviseInputError, match="neither a pair nor a Yes/No record"):
        Trainer(config(pair_data / "loose.json", tmp_path, objective="critic_pairwise", train_modules=["lm_head"]))
    with pytest.raises(ReviseInputError, match="pair_weight"):
        config(pair_data / "pairs.json", tmp_path, objective="critic_pairwise", critic_pairwise={"pair_weight": -1})


def test_rwo_asks_the_critic_the_question_it_is_told(data, tmp_path, monkeypatch):
    from revise.critic import Critic

    with pytest.raises(ReviseInputError, match="question must be one of"):
        config(data, tmp_path, objective="rwo_group", rwo_group={"question": "beauty"})
    asked = []
    real = Critic.p_yes

    def spy(self, source, candidate, instructions, dimension=None):
        asked.append(dimension)
        return real(self, source, candidate, instructions, dimension)

    monkeypatch.setattr(Critic, "p_yes", spy)
    for question in ("overall", "edit_accuracy"):
        t = Trainer(config(data, tmp_path / question, objective="rwo_group", batch_size=1, steps=1,
                           rwo_group={"question": question, "group_size": 2}))
        t.train()
    assert asked == [None, "edit_accuracy"]
