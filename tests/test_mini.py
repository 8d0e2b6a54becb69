"""The mini preset's pieces: RVE-Synth's word vocabulary and tokenizers, the source position code,
critic data writing, and the batched synth runner with the critic report."""

import json

import numpy as np
import pytest
import torch

from revise.config import load_preset
from revise.models.connectors import VisualContextAdapter, sincos_3d
from revise.models.dit_position import PositionalPatchEmbedding, add_position_code
from revise.models.revise_model import ReviseModel
from revise.models.tokenizers import build_tokenizer
from revise.synth.dataset import make_dataset
from revise.synth.tasks import FAMILIES, generate_checked
from revise.synth.vocabulary import split_words
from revise.video import read_video


def test_shipped_vocabulary_covers_every_family_and_split():
    preset = load_preset("mini")
    tok = build_tokenizer("t5", preset["tokenizer"])
    rng = np.random.default_rng(123)
    for name, fam in FAMILIES.items():
        for split in ("train", "val", "test"):
            for subset in fam.subsets:
                item = generate_checked(rng, name, split, subset)[0]
                ids = tok(item.instruction).input_ids
                assert tok.unk_token_id not in ids, (name, item.instruction)
                assert len(ids) == len(split_words(item.instruction)) + 1      # + </s>


def test_word_tokenizers_round_trip_and_chat_template():
    preset = load_preset("mini")
    chat = build_tokenizer("chat", preset["understanding"]["tokenizer"])
    text = chat.apply_chat_template([{"role": "user", "content": "Show the red circle later?"}], tokenize=False,
                                    add_generation_prompt=True)
    toks = chat.tokenize(text)
    assert "<unk>" not in toks and toks[:2] == ["<|begin_of_text|>", "<|start_header_id|>"]
    assert chat.decode(chat("show the red circle").input_ids) == "show the red circle"
    yes, no = chat("Yes", add_special_tokens=False).input_ids, chat("No", add_special_tokens=False).input_ids
    assert len(yes) == len(no) == 1 and yes != no
    assert chat.tokenize("zebra") == ["<unk>"]


def test_sincos_code_tells_every_source_token_apart():
    code = sincos_3d((5, 4, 4), 96)
    assert code.shape == (80, 96)
    d = torch.cdist(code, code) + torch.eye(80) * 10
    assert float(d.min()) > 0.1
    vca = VisualContextAdapter(in_channels=16, hidden_dim=96, out_dim=32, patch_size=(1, 2, 2),
                               position_embedding="sincos")
    plain = VisualContextAdapter(in_channels=16, hidden_dim=96, out_dim=32, patch_size=(1, 2, 2))
    plain.load_state_dict(vca.state_dict())                 # same weights: only the code differs
    flat = torch.zeros(1, 16, 5, 8, 8)                     # identical latents everywhere
    with torch.no_grad():
        assert float(plain(flat).std(1).max()) < 1e-4       # without the code the tokens are equal
        assert float(vca(flat).std(1).min()) > 1e-3
    with pytest.raises(ValueError):
        VisualContextAdapter(position_embedding="learned")


def test_dit_position_code_keeps_the_weights_and_round_trips(tmp_path):
    preset = load_preset("tiny")
    plain = ReviseModel.from_preset(preset, seed=0)
    coded = ReviseModel.from_preset({**preset, "dit_position_embedding": "sincos"}, seed=0)
    assert isinstance(coded.transformer.patch_embedding, PositionalPatchEmbedding)
    a, b = plain.transformer.state_dict(), coded.transformer.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)    # same weights, same names
    x = torch.zeros(1, 16, 2, 4, 4)                     # identical latents everywhere
    with torch.no_grad():
        tokens = coded.transformer.patch_embedding(x).flatten(2)[0].T             # [positions, D]
        assert float(torch.cdist(tokens, tokens).add(torch.eye(len(tokens)) * 10).min()) > 1e-3
        assert float(plain.transformer.patch_embedding(x).flatten(2).std(2).max()) < 1e-6
    coded.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "revise_config.json").read_text())["dit_position_embedding"] == "sincos"
    assert "dit_position_embedding" not in json.loads(
        (plain.save_pretrained(tmp_path / "p") / "revise_config.json").read_text())
    back = ReviseModel.from_pretrained(tmp_path / "m")
    assert isinstance(back.transformer.patch_embedding, PositionalPatchEmbedding)
    lat, ctx = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 8, coded.transformer.config.text_dim)
    t = torch.tensor([500.0])
    with torch.no_grad():
        out = coded.transformer(lat, t, ctx, return_dict=False)[0]
        assert torch.allclose(back.transformer(lat, t, ctx, return_dict=False)[0], out, atol=1e-5)
        assert not torch.allclose(plain.transformer(lat, t, ctx, return_dict=False)[0], out, atol=1e-3)
    with pytest.raises(ValueError):
        add_position_code(plain.transformer, "learned")


def test_critic_data_records_every_question(tmp_path):
    make_dataset(4, "train", 3, tmp_path, progress=False, workers=1, critic=True)
    recs = json.loads((tmp_path / "train_critic.json").read_text())
    kinds = {r["kind"] for r in recs}
    assert {"target", "source"} <= kinds and len(kinds) >= 3
    for r in recs:
        assert (tmp_path / r["candidate_video_path"]).is_file() and (tmp_path / r["source_video_path"]).is_file()
        assert r["answer"] in ("Yes", "No")
    overall = [r for r in recs if r["dimension"] is None]
    assert all(r["answer"] == "Yes" for r in overall if r["kind"] == "target")
    assert all(r["answer"] == "No" for r in overall if r["kind"] != "target")
    assert len(recs) == 5 * len(overall)                    # overall + four dimensions per candidate


def test_generate_and_critic_report_on_a_tiny_split(tmp_path, tiny_model):
    from revise.pipelines.edit import ReviseEditPipeline
    from revise.stats import bootstrap_interval
    from revise.synth.run import critic_report, generate_split

    make_dataset(3, "test", 0, tmp_path / "d", progress=False, workers=1, critic=True)
    pipe = ReviseEditPipeline(tiny_model)
    data = tmp_path / "d" / "test.json"
    a = generate_split(pipe, data, tmp_path / "a", batch_size=2, progress=False, num_inference_steps=2)
    b = generate_split(pipe, data, tmp_path / "b", batch_size=3, progress=False, num_inference_steps=2)
    names = sorted(p.name for p in a.glob("*.mp4"))
    assert names == sorted(f"{r['id']}.mp4" for r in json.loads(data.read_text()))
    for n in names:                          # batching changes the result by float rounding only
        va, vb = read_video(a / n, 17, 64, 64), read_video(b / n, 17, 64, 64)
        assert float((va - vb).abs().mean()) < 0.01
    stamp = (a / names[0]).stat().st_mtime_ns
    generate_split(pipe, data, a, progress=False, num_inference_steps=2)
    assert (a / names[0]).stat().st_mtime_ns == stamp      # finished items are skipped
    report = critic_report(tiny_model, tmp_path / "d" / "test_critic.json", batch_size=8, progress=False)
    assert report["question/overall"]["n"] > 0 and 0 <= report["question/overall"]["accuracy"] <= 1
    assert 0 <= report["target_ranked_above_negative"]["rate"] <= 1
    # the edit-accuracy question, per candidate kind: the target's and the unedited source's P(Yes)
    assert report["edit_accuracy_kind/target"]["yes"] == report["edit_accuracy_kind/target"]["n"] > 0
    assert report["edit_accuracy_kind/source"]["yes"] == 0 < report["edit_accuracy_kind/source"]["n"]
    assert 0 <= report["edit_accuracy_kind/source"]["mean_p_yes"] <= 1
    lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= lo < 2.5 < hi <= 4.0


def test_generate_npy_clips_and_score_them(tmp_path, tiny_model):
    from revise.errors import ReviseInputError
    from revise.pipelines.edit import ReviseEditPipeline
    from revise.synth.evaluate import score_split
    from revise.synth.run import generate_split

    make_dataset(2, "test", 0, tmp_path / "d", progress=False, workers=1, clip_format="npy")
    data, pipe = tmp_path / "d" / "test.json", ReviseEditPipeline(tiny_model)
    out = generate_split(pipe, data, tmp_path / "g", progress=False, clip_format="npy", num_inference_steps=1)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{r['id']}.npy" for r in json.loads(data.read_text()))
    summary = score_split(data, out, progress=False)["summary"]["all"]
    assert summary["n"] == 2 and summary["missing"] == 0
    with pytest.raises(ReviseInputError, match="clip format must be one of mp4, npy"):
        generate_split(pipe, data, tmp_path / "g", progress=False, clip_format="avi")
    with pytest.raises(ValueError, match="clip format must be one of mp4, npy"):
        make_dataset(1, "test", 0, tmp_path / "e", progress=False, clip_format="avi")


def test_short_answer_records_and_report(tmp_path, tiny_model):
    from revise.synth.run import qa_report

    make_dataset(4, "test", 1, tmp_path, progress=False, workers=1, critic=True)
    qa = json.loads((tmp_path / "test_qa.json").read_text())
    assert {r["kind"] for r in qa} >= {"light"} and all(r["answer"] for r in qa)
    items = {r["id"]: r for r in json.loads((tmp_path / "test.json").read_text())}
    for r in qa:
        if r["kind"] == "light":
            assert r["answer"] == ("day" if items[r["id"]]["target"]["light"] >= 0.7 else "night")
    report = qa_report(tiny_model, tmp_path / "test_qa.json", limit=2)
    assert sum(v["n"] for v in report.values()) == 2 and all(0 <= v["accuracy"] <= 1 for v in report.values())


def test_critic_drift_report_reads_the_fixed_negatives(tmp_path):
    """The critic's mean P(Yes) on held-out negatives (non-target candidates labelled No on the
    edit-accuracy question): the same numbers critic_report gives them, and it follows the LM head."""
    from revise.errors import ReviseInputError
    from revise.synth.run import critic_drift_report, critic_report, held_out_negatives

    make_dataset(2, "test", 0, tmp_path / "d", progress=False, workers=1, critic=True, clip_format="npy")
    data = tmp_path / "d" / "test_critic.json"
    negatives = held_out_negatives(data)
    assert negatives and all(r["kind"] != "target" and r["answer"] == "No" and r["dimension"] == "edit_accuracy"
                             for r in negatives)
    model = ReviseModel.from_preset("tiny", seed=0)
    before = critic_drift_report(model, data, batch_size=8, progress=False)
    assert before["n"] == len(negatives) and 0 < before["mean_p_yes"] < 1
    assert sum(k["n"] for k in before["kinds"].values()) == before["n"]
    full = critic_report(model, data, batch_size=8, progress=False)
    source = full["edit_accuracy_kind/source"]
    assert before["kinds"]["source"]["mean_p_yes"] == pytest.approx(source["mean_p_yes"], abs=1e-5)
    head = model.understanding.llm.get_output_embeddings().weight
    yes, no = model.understanding.answer_token_ids(("Yes", "No"))
    with torch.no_grad():
        head[yes] = head[no]                      # a critic that cannot tell: P(Yes) = 1/2 everywhere
    after = critic_drift_report(model, data, batch_size=8, progress=False)
    assert after["mean_p_yes"] == pytest.approx(0.5, abs=1e-4) != before["mean_p_yes"]
    with pytest.raises(ReviseInputError, match="no negatives"):
        critic_drift_report(model, tmp_path / "d" / "test_qa.json", progress=False)
