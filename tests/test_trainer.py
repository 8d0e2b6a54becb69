"""The trainer on the tiny preset (CPU): each objective steps, USO trains the DiT but not the frozen
critic, resume repeats the uninterrupted run exactly, corrupt samples are skipped by path."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from revise.errors import ReviseInputError
from revise.train.config import TrainConfig
from revise.train.objectives import REGISTRY, create
from revise.train.trainer import Trainer
from revise.video import write_video


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    items = []
    for i in range(3):
        src = np.full((5, 32, 32, 3), 60 + 30 * i, np.uint8)
        src[:, 8:16, 4:12] = (220, 40, 40)
        tgt = src.copy()
        tgt[:, 8:16, 4:12] = src[0, 0, 0]
        tgt[:, 8:16, 20:28] = (220, 40, 40)
        src = (src + rng.integers(0, 4, src.shape)).astype(np.uint8)
        write_video(root / f"s{i}.mp4", src)
        write_video(root / f"t{i}.mp4", tgt)
        items.append({"source_video_path": f"s{i}.mp4", "target_video_path": f"t{i}.mp4",
                      "instruction": f"move the red square right {i}", "type": "spatial"})
    (root / "train.json").write_text(json.dumps(items))
    return root / "train.json"


def config(data: Path, out: Path, **kw) -> TrainConfig:
    """``kw``: top-level fields, and the objective's section (e.g. ``uso={"semantic_weight": 1.0}``);
    the generator objectives drop the condition of half the samples unless the section says otherwise."""
    base = dict(model="tiny", data=str(data), out=str(out), steps=3, num_frames=5, height=32, width=32,
                lr=1e-3, warmup_steps=1, save_every=100)
    objective = kw.get("objective", "sft")
    if "cond_dropout" in {f.name for f in dataclasses.fields(REGISTRY[objective].Options)}:
        kw[objective] = {"cond_dropout": 0.5, **kw.get(objective, {})}
    return TrainConfig.from_dict({**base, **kw})


def weights(trainer: Trainer, name: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in getattr(trainer.model, name).state_dict().items()}


def changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("objective", ["sft", "rwo", "uso"])
def test_each_objective_trains_the_dit_only(objective, data, tmp_path):
    t = Trainer(config(data, tmp_path, objective=objective, steps=2))
    dit0, llm0, head0 = weights(t, "transformer"), weights(t, "understanding"), weights(t, "vision_head")
    out = t.train()
    assert np.isfinite(out["loss"])
    assert changed(dit0, weights(t, "transformer")), "the DiT moved"
    assert not changed(llm0, weights(t, "understanding")), "the frozen critic did not"
    assert not changed(head0, weights(t, "vision_head"))
    if objective != "sft":
        assert 0 < out["p_yes"] < 1


def test_uso_gradient_reaches_the_dit_through_the_critic(data, tmp_path):
    """Same noise and noise level: USO's DiT gradient differs from SFT's by the semantic term's."""
    t = Trainer(config(data, tmp_path, objective="uso", uso={"semantic_weight": 1.0}))
    batch = t.next_batch()
    src = torch.stack([b["source"] for b in batch])
    tgt = torch.stack([b["target"] for b in batch])
    noise = torch.randn(1, 16, 2, 4, 4)
    sigmas = torch.tensor([0.5])
    step = {"source": src, "target": tgt, "instructions": [b["instruction"] for b in batch], "noise": noise,
            "sigmas": sigmas, "drop": torch.tensor([False])}
    loss, metrics = t.step_module(step)
    loss.backward()
    g_uso = torch.cat([p.grad.flatten() for p in t.model.transformer.parameters() if p.grad is not None])
    t.optimizer.zero_grad()
    t.step_module.objective = create(config(data, tmp_path, objective="sft"))
    loss_sft, _ = t.step_module(step)
    loss_sft.backward()
    g_sft = torch.cat([p.grad.flatten() for p in t.model.transformer.parameters() if p.grad is not None])
    assert not torch.allclose(g_uso, g_sft), "the semantic term adds a gradient of its own to the DiT"


def test_critic_training_moves_only_the_lm_head(data, tmp_path):
    items = json.loads(data.read_text())
    critic_items = [{"source_video_path": it["source_video_path"], "candidate_video_path": c,
                     "instruction": it["instruction"], "answer": a}
                    for it in items for c, a in ((it["target_video_path"], "Yes"), (it["source_video_path"], "No"))]
    critic_json = data.parent / "critic.json"
    critic_json.write_text(json.dumps(critic_items))
    t = Trainer(config(critic_json, tmp_path, objective="critic", train_modules=["lm_head"], lm_head_lr=1e-2))
    head0 = {k: v.clone() for k, v in t.model.understanding.llm.get_output_embeddings().state_dict().items()}
    dit0 = weights(t, "transformer")
    out = t.train()
    head1 = t.model.understanding.llm.get_output_embeddings().state_dict()
    assert any(not torch.equal(head0[k], head1[k]) for k in head0)
    assert not changed(dit0, weights(t, "transformer"))
    assert 0 <= out["accuracy"] <= 1


def test_resume_repeats_the_uninterrupted_run_exactly(data, tmp_path):
    full = Trainer(config(data, tmp_path / "full", steps=4, objective="rwo"))
    full.train()
    part = Trainer(config(data, tmp_path / "part", steps=4, objective="rwo", save_every=2))
    part.train(stop_after=2)                      # "interrupted" after the checkpoint at step 2
    assert [p.name for p in part.checkpoints()] == ["checkpoint-2"]
    resumed = Trainer(config(data, tmp_path / "part", steps=4, objective="rwo", save_every=2))
    assert resumed.resume() and resumed.step == 2
    resumed.train()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_half_written_checkpoint_is_ignored(data, tmp_path):
    t = Trainer(config(data, tmp_path, steps=2, save_every=1))
    t.train()
    (tmp_path / "checkpoints" / ".tmp-checkpoint-3").mkdir()      # a save killed midway
    (tmp_path / "checkpoints" / "checkpoint-9").mkdir()           # no trainer_state.json: incomplete
    fresh = Trainer(config(data, tmp_path, steps=2, save_every=1))
    assert fresh.resume() and fresh.step == 2


def test_corrupt_sample_is_reported_and_skipped(data, tmp_path, caplog):
    items = json.loads(data.read_text())
    bad = data.parent / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    items.append({"source_video_path": "broken.mp4", "target_video_path": "t0.mp4", "instruction": "x"})
    (data.parent / "with_bad.json").write_text(json.dumps(items))
    t = Trainer(config(data.parent / "with_bad.json", tmp_path, steps=6))
    with caplog.at_level("WARNING"):
        t.train()
    assert t.step == 6
    assert t.data.skipped and "broken.mp4" in t.data.skipped[0]
    assert any("broken.mp4" in r.getMessage() for r in caplog.records)


def test_nonfinite_loss_is_skipped_and_counted(data, tmp_path, monkeypatch):
    t = Trainer(config(data, tmp_path, steps=2))
    dit0 = weights(t, "transformer")
    real = t.step_module.forward

    def poisoned(*a, **k):
        loss, m = real(*a, **k)
        return loss * float("nan"), m
    monkeypatch.setattr(t.step_module, "forward", poisoned)
    t.train()
    assert t.nonfinite_steps == 2
    assert not changed(dit0, weights(t, "transformer"))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["nonfinite_steps"] == 2
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*")), "TensorBoard logs"


def test_cli_train_and_bad_configs(data, tmp_path, capsys):
    import yaml

    from revise.cli import main
    from revise.models.revise_model import ReviseModel

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config(data, tmp_path / "run", steps=2).to_dict()))
    assert main(["train", "--config", str(cfg)]) == 0
    assert "trained sft to step 2" in capsys.readouterr().out
    ReviseModel.from_pretrained(tmp_path / "run" / "model")
    assert main(["train", "--config", str(cfg), "--steps", "3"]) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    for text, message in [("objective: magic\ndata: x.json\n", "objective must be one of"),
                          ("learning_rate: 1\ndata: x.json\n", "unknown field(s) learning_rate"),
                          ("data: missing.json\n", "missing.json does not exist")]:
        bad.write_text(text)
        assert main(["train", "--config", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_text_cache_gives_the_same_training(data, tmp_path):
    a = Trainer(config(data, tmp_path / "a", steps=2))
    a.train()
    b = Trainer(config(data, tmp_path / "b", steps=2, cache_text=True))
    b.train()
    assert (tmp_path / "b" / "cache" / "text_features.safetensors").is_file()
    sa, sb = a.model.transformer.state_dict(), b.model.transformer.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = Trainer(config(data, tmp_path / "b", steps=2, cache_text=True))   # reads the cache back
    assert set(c.step_module.text_cache) == {json.loads(data.read_text())[i]["instruction"] for i in range(3)}


def test_checkpointed_run_equals_the_plain_one(data, tmp_path):
    a = Trainer(config(data, tmp_path / "a", steps=2, objective="uso"))
    a.train()
    b = Trainer(config(data, tmp_path / "b", steps=2, objective="uso", gradient_checkpointing=True))
    b.train()
    sa, sb = a.model.transformer.state_dict(), b.model.transformer.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6)


def test_vae_training_moves_only_the_vae_and_sets_latent_stats(data, tmp_path):
    t = Trainer(config(data, tmp_path, objective="vae", train_modules=["vae"], steps=2, preload=True))
    vae0, dit0 = weights(t, "vae"), weights(t, "transformer")
    out = t.train()
    assert np.isfinite(out["loss"]) and out["l1"] > 0
    assert changed(vae0, weights(t, "vae")) and not changed(dit0, weights(t, "transformer"))
    mean, std = t.model.vae.config.latents_mean, t.model.vae.config.latents_std
    assert len(mean) == len(std) == 16 and all(s > 0 for s in std)
    x = torch.stack([t.data.load(i)["target"] for i in range(3)])
    with torch.no_grad():
        z = t.model.encode_video(x)        # normalised with the new statistics
    assert abs(float(z.mean())) < 0.5 and 0.3 < float(z.std()) < 3


def test_vae_decoder_training_keeps_the_latent_space(data, tmp_path):
    """``vae_decoder``: the decoder learns, the encoder and the latent statistics stay, so the latents
    a trained DiT knows are the same; the saved folder holds the new decoder."""
    from revise.models.revise_model import ReviseModel

    t = Trainer(config(data, tmp_path, objective="vae", train_modules=["vae_decoder"], steps=2, preload=True))
    enc0 = {k: v.clone() for k, v in t.model.vae.encoder.state_dict().items()}
    dec0 = {k: v.clone() for k, v in t.model.vae.decoder.state_dict().items()}
    stats0 = (t.model.vae.config.latents_mean, t.model.vae.config.latents_std)
    x = torch.stack([t.data.load(i)["target"] for i in range(3)])
    with torch.no_grad():
        z0 = t.model.encode_video(x)
    t.train()
    assert not changed(enc0, t.model.vae.encoder.state_dict()) and changed(dec0, t.model.vae.decoder.state_dict())
    assert (t.model.vae.config.latents_mean, t.model.vae.config.latents_std) == stats0
    with torch.no_grad():
        assert torch.equal(z0, t.model.encode_video(x))
    saved = ReviseModel.from_pretrained(t.save_model(tmp_path / "model"))
    assert not changed({k: v.float() for k, v in t.model.vae.decoder.state_dict().items()},
                       {k: v.float() for k, v in saved.vae.decoder.state_dict().items()})


def test_critic_questions_per_dimension_with_balanced_classes(data, tmp_path):
    items = json.loads(data.read_text())
    critic_items = [{"source_video_path": it["source_video_path"], "candidate_video_path": c,
                     "instruction": it["instruction"], "answer": a, "dimension": d}
                    for it in items for c, a, d in ((it["target_video_path"], "Yes", None),
                                                    (it["source_video_path"], "No", None),
                                                    (it["source_video_path"], "No", "edit_accuracy"),
                                                    (it["source_video_path"], "Yes", "generation_realism"),
                                                    (it["source_video_path"], "No", "generation_naturalness"))]
    critic_json = data.parent / "critic_dims.json"
    critic_json.write_text(json.dumps(critic_items))
    t = Trainer(config(critic_json, tmp_path, objective="critic", train_modules=["lm_head"], batch_size=5))
    assert t.objective.class_weights == pytest.approx((0.5 / 0.4, 0.5 / 0.6))
    seen = []
    real = t.step_module.critic.prompts
    t.step_module.critic.prompts = lambda ins, dim=None: seen.append(list(dim)) or real(ins, dim)
    t.train()
    assert any(d is not None for dims in seen for d in dims) and any(d is None for dims in seen for d in dims)


def test_cached_features_give_the_same_loss_as_the_clips(data, tmp_path):
    plain = Trainer(config(data, tmp_path / "a", steps=1, sft={"cond_dropout": 0.0}))
    cached = Trainer(config(data, tmp_path / "b", steps=1, sft={"cond_dropout": 0.0}, cache_features=True))
    assert (tmp_path / "b" / "cache" / "features.safetensors").is_file()
    assert set(cached.features) >= {"source_latents", "target_latents", "vlm_hidden", "vlm_mask"}
    a, b = plain.train_step(), cached.train_step()
    assert b["loss"] == pytest.approx(a["loss"], rel=0.05)     # bf16 storage of the cached features
    again = Trainer(config(data, tmp_path / "b", steps=1, sft={"cond_dropout": 0.0}, cache_features=True))
    assert all(torch.equal(again.features[k], cached.features[k]) for k in cached.features)
    # with the cache an SFT step reads no clip at all (none is even preloaded once the cache exists),
    # and RWO reads the source alone, for its critic
    assert again.clip_parts == () and not again.data.preloaded
    rwo = Trainer(config(data, tmp_path / "b", steps=1, objective="rwo", cache_features=True))
    assert rwo.clip_parts == ("source",)
    assert np.isfinite(rwo.train_step()["loss"])
    assert rwo.data.preloaded and all("_t" not in k and not k.startswith("t") for k in rwo.data._clips)


def test_large_feature_caches_stay_in_host_memory(data, tmp_path, monkeypatch):
    import revise.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "FEATURES_ON_DEVICE_BYTES", 0)
    t = Trainer(config(data, tmp_path, steps=1, cache_features=True))
    assert np.isfinite(t.train_step()["loss"])


def test_vae_focus_term_is_reported_and_trains(data, tmp_path):
    t = Trainer(config(data, tmp_path, objective="vae", train_modules=["vae"], steps=1, preload=True, vae={"focus": 0.05}))
    out = t.train()
    assert out["focus_l1"] > out["l1"] > 0
    # vae_sample: false reconstructs from the posterior mean: the posterior noise drawn no longer matters
    mean = Trainer(config(data, tmp_path / "m", objective="vae", train_modules=["vae"], preload=True, vae={"sample": False}))
    batch = {"source": torch.zeros(1, 3, 5, 32, 32), "target": torch.zeros(1, 3, 5, 32, 32)}
    with torch.no_grad():
        losses = [float(mean.step_module({**batch, "vae_noise": torch.randn(2, 16, 2, 4, 4) * k})[0]) for k in (0.0, 5.0)]
    assert losses[0] == losses[1]
    with pytest.raises(Exception, match=r"vae\.focus"):
        config(data, tmp_path, objective="vae", train_modules=["vae"], vae={"focus": 1.5})


def test_time_limit_stops_and_saves(data, tmp_path):
    t = Trainer(config(data, tmp_path, steps=50, time_limit_s=1e-9))
    t.train()
    assert t.stopped_early and t.step < 50 and t.checkpoints()


def test_short_answer_training_lowers_the_answer_loss(data, tmp_path):
    items = json.loads(data.read_text())
    qa = [{"source_video_path": it["source_video_path"], "candidate_video_path": it["target_video_path"],
           "instruction": it["instruction"], "question": "After the edit, is it day or night?",
           "answer": "night" if i % 2 else "day", "kind": "light"} for i, it in enumerate(items)]
    qa_json = data.parent / "qa.json"
    qa_json.write_text(json.dumps(qa))
    t = Trainer(config(qa_json, tmp_path, objective="qa", train_modules=["understanding"], batch_size=3,
                       steps=8, lr=3e-3))
    dit0 = weights(t, "transformer")
    first = t.train_step()["loss"]
    t.step += 1
    last = t.train()["loss"]
    assert np.isfinite(first) and last < first, (first, last)
    assert not changed(dit0, weights(t, "transformer"))


def test_frozen_parts_are_copied_unrounded_into_the_saved_model(data, tmp_path, tiny_model):
    start = tiny_model.save_pretrained(tmp_path / "start")
    t = Trainer(config(data, tmp_path / "run", model=str(start), steps=1))
    t.train()
    t.model.vae.to(torch.bfloat16)         # as frozen modules run under mixed precision: a re-save would round
    t.model.understanding.to(torch.bfloat16)
    out = t.save_model(tmp_path / "run" / "model")
    for part in ("vae/diffusion_pytorch_model.safetensors", "understanding/llm/model.safetensors",
                 "text_encoder/model.safetensors"):
        assert (out / part).read_bytes() == (start / part).read_bytes(), part
    assert (out / "transformer/diffusion_pytorch_model.safetensors").read_bytes() != \
        (start / "transformer/diffusion_pytorch_model.safetensors").read_bytes()
    from revise import ReviseModel
    ReviseModel.from_pretrained(out)


def test_sft_can_train_the_text_encoder_and_saves_it(data, tmp_path, tiny_model):
    """train_modules: [..., text_encoder] (no cache_text): the generator's loss reaches the T5 encoder,
    which the saved folder then holds (and a frozen one is copied byte for byte, test above)."""
    with pytest.raises(ReviseInputError, match="cache_text"):
        config(data, tmp_path, train_modules=["transformer", "text_encoder"], cache_text=True)
    start = tiny_model.save_pretrained(tmp_path / "start")
    t = Trainer(config(data, tmp_path / "run", model=str(start), steps=2, sft={"cond_dropout": 0.0},
                       train_modules=["transformer", "text_encoder"]))
    t5_0, vlm0 = weights(t, "text_encoder"), weights(t, "understanding")
    t.train()
    assert changed(t5_0, weights(t, "text_encoder"))
    assert not changed(vlm0, weights(t, "understanding"))
    out = t.save_model(tmp_path / "run" / "model")
    assert (out / "text_encoder/model.safetensors").read_bytes() != (start / "text_encoder/model.safetensors").read_bytes()
    from revise import ReviseModel
    saved = ReviseModel.from_pretrained(out).text_encoder.state_dict()
    trained = t.model.text_encoder.state_dict()
    assert all(torch.equal(saved[k].float(), trained[k].float()) for k in saved)


def test_an_objective_can_train_several_candidates_per_item(data, tmp_path, monkeypatch):
    """What a group-relative objective needs: each item repeated ``samples_per_item`` times, the copies
    told apart by their own noise and joined by ``batch["group"]``, the weights the objective's own."""
    from revise.train.objectives.rwo import RWO

    seen = {}

    class Grouped(RWO):
        name = "grouped_for_test"
        samples_per_item = 3

        def weights(self, p_yes, batch):
            seen["group"], seen["noise"] = batch["group"].tolist(), batch["noise"]
            return torch.ones_like(p_yes)

    monkeypatch.setitem(REGISTRY, Grouped.name, Grouped)
    t = Trainer(config(data, tmp_path, objective=Grouped.name, batch_size=2, steps=1))
    t.train()
    assert seen["group"] == [0, 0, 0, 1, 1, 1]
    assert not torch.equal(seen["noise"][0], seen["noise"][1]), "each candidate draws its own noise"


def test_shipped_configs_load_and_flat_options_say_where_they_went(tmp_path):
    root = Path(__file__).parent.parent / "configs"
    for path in [*root.glob("*.yaml"), *root.glob("mini/*.yaml")]:
        cfg = TrainConfig.load(path)
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg, path
    uso = TrainConfig.load(root / "mini" / "3_uso.yaml").options
    assert (uso.semantic_weight, uso.max_sigma) == (0.01, 0.5)
    with pytest.raises(ReviseInputError, match=r"uso_lambda is now uso: \{semantic_weight: \.\.\.\}") as err:
        TrainConfig.from_dict({"data": "x.json", "objective": "uso", "uso_lambda": 0.1, "flow_shift": 5.0})
    assert "flow_shift is now uso: {flow_shift: ...}" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ReviseInputError, match="the vae section configures objective vae, not sft"):
        TrainConfig.from_dict({"data": "x.json", "vae": {"focus": 0.1}})
    with pytest.raises(ReviseInputError, match=r"unknown field\(s\) rwo.momentum"):
        TrainConfig.from_dict({"data": "x.json", "objective": "rwo", "rwo": {"momentum": 0.5}})
    with pytest.raises(ReviseInputError, match="USOOptions are not the rwo objective's"):
        dataclasses.replace(TrainConfig.load(root / "mini" / "3_uso.yaml"), objective="rwo").validate()


def test_rwo_group_trains_several_candidates_with_weights_normalised_per_item(data, tmp_path):
    t = Trainer(config(data, tmp_path, objective="rwo_group", batch_size=2, steps=2,
                       rwo_group={"group_size": 3, "cond_dropout": 0.5}))
    assert t.objective.samples_per_item == 3
    seen = {}
    real = t.objective.weights

    def spy(reward, batch):
        w = real(reward, batch)
        seen.update(reward=reward, w=w, sigmas=batch["sigmas"], drop=batch["drop"], noise=batch["noise"])
        return w
    t.objective.weights = spy
    dit0 = weights(t, "transformer")
    out = t.train()
    assert np.isfinite(out["loss"]) and 0 < out["p_yes"] < 1 and changed(dit0, weights(t, "transformer"))
    assert seen["w"].shape == (6,)
    torch.testing.assert_close(seen["w"].view(2, 3).mean(1), torch.ones(2))
    # a group's copies share the noise level and the dropout, and differ by their noise
    assert all(len(set(row)) == 1 for row in seen["sigmas"].view(2, 3).tolist())
    assert all(len(set(row)) == 1 for row in seen["drop"].view(2, 3).tolist())
    assert not torch.equal(seen["noise"][0], seen["noise"][1])
    with pytest.raises(ReviseInputError, match="group_size must be at least 2"):
        config(data, tmp_path, objective="rwo_group", rwo_group={"group_size": 1})


def test_a_separate_frozen_critic_scores_rwo_samples(data, tmp_path):
    """critic_model: another model folder's VLM, frozen, gives RWO's rewards instead of the model's own."""
    from revise.models.revise_model import ReviseModel

    folder = tmp_path / "critic"
    ReviseModel.load("tiny", seed=7).save_pretrained(folder)
    t = Trainer(config(data, tmp_path / "run", objective="rwo_group", batch_size=1, steps=1, critic_model=str(folder),
                       rwo_group={"group_size": 2}))
    critic = t.step_module.critic.vlm
    assert critic is not t.model.understanding and not any(p.requires_grad for p in critic.parameters())
    theirs = ReviseModel.load(str(folder)).understanding.state_dict()
    assert all(torch.equal(v.float(), theirs[k].float()) for k, v in critic.state_dict().items())
    assert any(not torch.equal(v, theirs[k]) for k, v in t.model.understanding.state_dict().items())
    before = weights(t, "understanding")
    out = t.train()
    assert 0 < out["p_yes"] < 1 and not changed(before, weights(t, "understanding"))
    with pytest.raises(ReviseInputError, match="reads no critic"):
        config(data, tmp_path, objective="sft", critic_model=str(folder))
    with pytest.raises(ReviseInputError, match="reads no critic"):
        config(data, tmp_path, objective="rwo", critic_model=str(folder), rwo={"reward": "judge"})
    with pytest.raises(ReviseInputError, match="frozen critic"):
        config(data, tmp_path, objective="uso", critic_model=str(folder), train_modules=["transformer", "lm_head"],
               uso={"critic_data": "c.json"})


@pytest.fixture(scope="module")
def synth_split(tmp_path_factory) -> Path:
    """A tiny RVE-Synth split (5 frames, 32x32, npy clips) whose records carry their items."""
    from revise.synth.dataset import make_dataset

    root = tmp_path_factory.mktemp("synth")
    make_dataset(4, "train", 0, root, height=32, width=32, frames=5, progress=False, workers=1, clip_format="npy",
                 critic=True)
    return root / "train.json"


def test_judge_reward_ranks_the_exact_target_above_the_source(synth_split):
    from revise.synth.item import SynthItem
    from revise.synth.reward import JudgeReward
    from revise.train.objectives.rwo import judge_clips

    records = json.loads(synth_split.read_text())
    judge = JudgeReward(records)
    items = [SynthItem.from_dict(r) for r in records]
    # through the float [-1, 1] layout the decoder gives, as the objective hands it over
    as_float = lambda clips: torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # noqa: E731
    target = judge(range(4), judge_clips(as_float([it.target_clip(32, 32) for it in items])))
    source = judge(range(4), judge_clips(as_float([it.source_clip(32, 32) for it in items])))
    assert np.all(target > source), (target, source)
    assert np.allclose(target, 1.0, atol=0.05) and np.all(source >= 0.1)
    # scored in worker processes: the same rewards
    pooled = JudgeReward(records, workers=2)
    try:
        assert np.allclose(pooled(range(4), judge_clips(as_float([it.source_clip(32, 32) for it in items]))), source)
    finally:
        pooled.close()


def test_rwo_can_take_its_reward_from_the_exact_judge(synth_split, data, tmp_path):
    for objective in ("rwo", "rwo_group"):
        t = Trainer(config(synth_split, tmp_path / objective, objective=objective, batch_size=2, steps=1,
                           **{objective: {"reward": "judge"}}))
        out = t.train()
        assert np.isfinite(out["loss"]) and 0.1 <= out["reward"] <= 1 and "p_yes" not in out
    with pytest.raises(ReviseInputError, match="needs RVE-Synth records"):
        Trainer(config(data, tmp_path / "plain", objective="rwo", rwo={"reward": "judge"}))
    with pytest.raises(ReviseInputError, match="reward must be one of critic, judge"):
        config(data, tmp_path, objective="rwo", rwo={"reward": "oracle"})


def test_pair_agreement_counts_the_pairs_of_one_group_the_reference_separates():
    from revise.stats import pair_agreement

    ref, groups = [1.0, 5.0, 5.5, 9.0, 2.0, 8.0], [0, 0, 0, 0, 1, 1]
    # group 0: every pair but (5.0, 5.5), under the 1-point gap; group 1: one pair; none across groups
    assert pair_agreement(ref, ref, groups) == (6, 6)
    assert pair_agreement([-x for x in ref], ref, groups) == (6, 0)
    assert pair_agreement([0.5] * 6, ref, groups) == (6, 0)            # a tie does not agree
    assert pair_agreement(ref, ref, range(6)) == (0, 0)
    assert pair_agreement([0.1, 0.3, 0.2, 0.9, 0.5, 0.4], ref, groups) == (6, 5)
    assert pair_agreement(ref, ref, groups, min_gap=4.0) == (5, 5)      # 5.5 and 9 fall out


class _SpreadJudge:
    """A stand-in exact judge: the rows of a call get EA 1, 2.3, 3.6, ... (a point and more apart)."""

    def __call__(self, indices, clips):
        return np.linspace(0.1, 1.0, len(clips)).astype(np.float32)

    def close(self):
        pass


def test_a_blurred_judge_and_a_critic_log_their_agreement_with_the_exact_judge(synth_split, tmp_path):
    """#22's curve: a judge reward blurred by reward_noise is a critic of known quality, and a critic
    reward run with agreement_every logs how often it orders a group's candidates as the judge does."""
    def run(name, steps, **options):
        t = Trainer(config(synth_split, tmp_path / name, objective="rwo_group", batch_size=2, steps=steps,
                           rwo_group={"group_size": 4, **options}))
        t.objective.judge = _SpreadJudge()
        t.train()
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    exact = run("exact", 1, reward="judge")[0]                    # 2 groups of 4: 12 pairs, all a point apart
    assert exact["agree_pairs"] == 12 and exact["agree_hits"] == 12
    assert exact["reward"] == pytest.approx(0.55) and exact["judge_ea"] == pytest.approx(5.5)
    blurred = run("blurred", 1, reward="judge", reward_noise=30.0)[0]
    assert blurred["agree_pairs"] == 12 and blurred["agree_hits"] < 12
    assert 0 <= blurred["reward"] <= 1 and blurred["reward"] != pytest.approx(0.55)
    critic = run("critic", 2, reward="critic", agreement_every=2)
    assert "agree_pairs" not in critic[0] and 0 < critic[0]["p_yes"] < 1      # the judge skipped this step
    assert critic[1]["agree_pairs"] == 12 and 0 <= critic[1]["agree_hits"] <= 12
    with pytest.raises(ReviseInputError, match="reward_noise blurs the judge"):
        config(synth_split, tmp_path, objective="rwo", rwo={"reward_noise": 1.0})
    with pytest.raises(ReviseInputError, match="agreement_every must be 0 or more"):
        config(synth_split, tmp_path, objective="rwo", rwo={"agreement_every": -1})


def test_a_critic_that_trains_under_uso_is_anchored_by_labelled_data(synth_split, data, tmp_path):
    """The released config trains the LM head beside the DiT: -log P(Yes) alone would teach it to say
    Yes, so such a config must name critic data, whose Yes/No cross-entropy then reaches the head."""
    with pytest.raises(ReviseInputError, match="only by -log P\\(Yes\\)"):
        config(data, tmp_path, objective="uso", train_modules=["transformer", "lm_head"])
    with pytest.raises(ReviseInputError, match="anchors a critic that trains"):
        config(data, tmp_path, objective="uso", uso={"critic_data": "c.json"})
    released = TrainConfig.load(Path(__file__).parent.parent / "configs" / "train_released.yaml").options
    assert released.critic_data and released.critic_weight == 1.0

    critic_json = str(synth_split.parent / "train_critic.json")

    def head_grad(semantic: float, anchor: float) -> tuple[torch.Tensor, dict]:
        t = Trainer(config(synth_split, tmp_path / f"{semantic}-{anchor}", objective="uso", batch_size=2,
                           train_modules=["transformer", "lm_head"],
                           uso={"semantic_weight": semantic, "critic_data": critic_json, "critic_weight": anchor,
                                "critic_batch_size": 4}))
        samples = t.next_batch()
        batch = {"source": torch.stack([s["source"] for s in samples]).float() / 127.5 - 1,
                 "target": torch.stack([s["target"] for s in samples]).float() / 127.5 - 1,
                 "instructions": [s["instruction"] for s in samples],
                 **t.objective.fields(samples, torch.Generator().manual_seed(0), (16, 2, 4, 4), torch.device("cpu"))}
        loss, metrics = t.step_module(batch)
        loss.backward()
        head = t.model.understanding.llm.get_output_embeddings().weight
        return head.grad.clone(), metrics

    anchor_only, m = head_grad(0.0, 1.0)
    assert anchor_only.abs().sum() > 0, "the labelled cross-entropy reaches the critic's head"
    assert np.isfinite(m["critic_ce"].item()) and 0 <= m["critic_accuracy"].item() <= 1
    both, _ = head_grad(1.0, 1.0)
    semantic_only = both - anchor_only          # same seeds: the two gradients add up
    assert not torch.allclose(both, anchor_only) and semantic_only.abs().sum() > 0


def test_a_float16_model_folder_trains_in_float32_without_mixed_precision(data, tmp_path, tiny_model):
    """A shipped copy is saved in float16; without mixed precision its frozen parts run in float32
    beside the float32 master weights (they stayed float16 and the first matmul across them failed)."""
    from revise import ReviseModel

    start = ReviseModel.from_pretrained(tiny_model.save_pretrained(tmp_path / "fp32"), dtype=torch.float16)
    start = start.save_pretrained(tmp_path / "fp16")
    t = Trainer(config(data, tmp_path / "run", model=str(start), steps=1, cache_features=True,
                       cache_dir=str(tmp_path / "cache")))
    assert {p.dtype for p in t.model.vae.parameters()} == {torch.float32}
    assert {p.dtype for p in t.model.understanding.parameters()} == {torch.float32}
    t.train()
    assert t.step == 1
