"""LoRA fine-tuning of the DiT (peft) on the tiny preset: only the adapter trains, it is saved in
diffusers' LoRA format next to the (merged) model folder, and a fresh pipeline that loads it edits as
the trained model does; ``revise edit --lora`` uses it."""

import json

import pytest
import torch
from safetensors import safe_open

from revise import ReviseEditPipeline, ReviseInputError, ReviseModel
from revise.cli import main
from revise.models.lora import DEFAULT_TARGET_MODULES, is_lora_parameter
from revise.train.trainer import Trainer
from revise.video import write_video
from test_trainer import config, data  # noqa: F401  (the tiny RVE-Synth-like split)

EDIT = dict(num_frames=5, height=32, width=32, num_inference_steps=3, seed=2, progress=False)
LORA = {"rank": 4, "alpha": 8}


def clip() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 5, 32, 32, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):  # noqa: F811
    """A LoRA run of 3 steps (the transformer only), its model folder and its adapter file."""
    out = tmp_path_factory.mktemp("lora_run")
    t = Trainer(config(data, out, lora=LORA, train_modules=["transformer"], sft={"cond_dropout": 0.0}))
    base = {k: v.clone() for k, v in t.model.transformer.state_dict().items() if not is_lora_parameter(k)}
    t.train()
    return t, base, t.save_model(out / "model"), t.save_lora(out / "lora")


def test_only_the_lora_parameters_train(trained):
    t, base, _, _ = trained
    trainable = [n for n, p in t.model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("transformer.") and is_lora_parameter(n) for n in trainable)
    targets = {n.split(".lora_")[0].split(".", 3)[3] for n in trainable}       # attn1.to_q, ...
    assert {f"attn{i}.{m}" for i in (1, 2) for m in DEFAULT_TARGET_MODULES} == targets
    now = t.model.transformer.state_dict()
    assert all(torch.equal(base[k], now[k]) for k in base), "the DiT's own weights stayed frozen"
    assert any(now[k].abs().sum() > 0 for k in now if ".lora_B." in k), "the adapter moved (B starts at zero)"


def test_the_adapter_is_saved_in_diffusers_lora_format(trained):
    _, _, _, file = trained
    assert file.name == "pytorch_lora_weights.safetensors"
    with safe_open(str(file), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert keys and all(k.startswith("transformer.blocks.") and (".lora_A.weight" in k or ".lora_B.weight" in k)
                        for k in keys)
    config_ = json.loads(meta["lora_adapter_metadata"])
    assert (config_["transformer.r"], config_["transformer.lora_alpha"]) == (4, 8)     # diffusers prefixes them


def test_a_fresh_pipeline_with_the_adapter_edits_as_the_trained_model(trained):
    t, _, folder, file = trained
    want = ReviseEditPipeline(t.model)(clip(), "move the red square right 0", **EDIT).video
    base = ReviseEditPipeline.from_pretrained("tiny")(clip(), "move the red square right 0", **EDIT).video
    assert not torch.allclose(want, base, atol=1e-4), "the adapter changes the edit"

    pipe = ReviseEditPipeline.from_pretrained("tiny").load_lora_weights(file.parent, adapter_name="mine")
    torch.testing.assert_close(pipe(clip(), "move the red square right 0", **EDIT).video, want, atol=1e-5, rtol=1e-4)
    off = ReviseEditPipeline.from_pretrained("tiny").load_lora_weights(file, scale=0.0)
    assert torch.equal(off(clip(), "move the red square right 0", **EDIT).video, base)

    merged = ReviseEditPipeline(ReviseModel.from_pretrained(folder))          # the model folder: adapter merged in
    assert not any(is_lora_parameter(k) or "base_layer" in k for k in merged.model.transformer.state_dict())
    torch.testing.assert_close(merged(clip(), "move the red square right 0", **EDIT).video, want, atol=1e-5, rtol=1e-4)


def test_bad_lora_loads(trained, tmp_path):
    _, _, _, file = trained
    pipe = ReviseEditPipeline.from_pretrained("tiny")
    with pytest.raises(ReviseInputError, match="do not exist"):
        pipe.load_lora_weights(tmp_path / "nothing")
    with pytest.raises(ReviseInputError, match="finite number"):
        pipe.load_lora_weights(file, scale=float("nan"))
    pipe.load_lora_weights(file, adapter_name="a")
    with pytest.raises(ReviseInputError, match="already loaded"):
        pipe.load_lora_weights(file, adapter_name="a")
    (tmp_path / "x.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ReviseInputError, match="cannot load LoRA weights"):
        pipe.load_lora_weights(tmp_path / "x.safetensors")


def test_lora_config_is_checked(data, tmp_path):  # noqa: F811
    with pytest.raises(ReviseInputError, match="list transformer in train_modules"):
        config(data, tmp_path, lora=LORA, train_modules=["visual_context_adapter"])
    with pytest.raises(ReviseInputError, match="lora.rank must be a whole number"):
        config(data, tmp_path, lora={"rank": 0})
    with pytest.raises(ReviseInputError, match=r"unknown field\(s\) lora.r "):
        config(data, tmp_path, lora={"r": 4})
    with pytest.raises(ReviseInputError, match="lora.target_modules"):
        config(data, tmp_path, lora={"target_modules": "to_q"})
    cfg = config(data, tmp_path, lora={"rank": 2})
    assert cfg.lora.target_modules == list(DEFAULT_TARGET_MODULES) and cfg.lora.alpha == 16
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


def test_lora_with_other_trained_modules(data, tmp_path):  # noqa: F811
    """The rest of train_modules trains in full, as configured."""
    t = Trainer(config(data, tmp_path, lora=LORA, steps=1, train_modules=["transformer", "visual_context_adapter"]))
    names = [n for n, p in t.model.named_parameters() if p.requires_grad]
    assert any(n.startswith("visual_context_adapter.") for n in names)
    assert all(is_lora_parameter(n) for n in names if n.startswith("transformer."))


def test_edit_cli_takes_a_lora(trained, tmp_path, capsys):
    _, _, _, file = trained
    import numpy as np
    frames = np.zeros((9, 32, 32, 3), np.uint8)
    frames[:, 8:20, 4:14] = (230, 30, 30)
    source = write_video(tmp_path / "source.mp4", frames, fps=8)
    args = ["edit", "--model", "tiny", "--video", str(source), "--instruction", "make it night",
            "--frames", "5", "--size", "32x32", "--steps", "1"]
    assert main([*args, "--out", str(tmp_path / "a.mp4"), "--lora", str(file.parent), "--lora-scale", "0.5"]) == 0
    from revise.pipelines.edit_file import read_edit_metadata
    assert read_edit_metadata(tmp_path / "a.mp4")["lora"] == {"default_0": {"path": str(file), "scale": 0.5}}
    assert main([*args, "--out", str(tmp_path / "b.mp4"), "--lora", str(tmp_path / "missing")]) == 2
    assert "do not exist" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "c.mp4"), "--lora-scale", "2"]) == 2
    assert "--lora-scale needs --lora" in capsys.readouterr().err


def test_a_lora_run_resumes_exactly(data, tmp_path):  # noqa: F811
    full = Trainer(config(data, tmp_path / "full", steps=4, lora=LORA))
    full.train()
    part = Trainer(config(data, tmp_path / "part", steps=4, lora=LORA, save_every=2))
    part.train(stop_after=2)
    resumed = Trainer(config(data, tmp_path / "part", steps=4, lora=LORA, save_every=2))
    assert resumed.resume() and resumed.step == 2
    resumed.train()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert any(is_lora_parameter(k) for k in a) and all(torch.equal(a[k], b[k]) for k in a)


def test_revise_train_writes_the_model_and_the_adapter(data, tmp_path, capsys):  # noqa: F811
    import yaml

    cfg = tmp_path / "lora.yaml"
    cfg.write_text(yaml.safe_dump({**config(data, tmp_path / "run", lora=LORA, steps=1).to_dict()}))
    assert main(["train", "--config", str(cfg)]) == 0
    said = capsys.readouterr().out
    assert f"LoRA adapter {tmp_path / 'run' / 'lora' / 'pytorch_lora_weights.safetensors'}" in said
    ReviseModel.from_pretrained(tmp_path / "run" / "model")


def test_the_fast_path_merges_loaded_adapters(trained):
    _, _, _, file = trained
    slow = ReviseEditPipeline.from_pretrained("tiny").load_lora_weights(file, scale=0.7)
    fast = ReviseEditPipeline.from_pretrained("tiny").load_lora_weights(file, scale=0.7).enable_fast_path(compile=False)
    assert not any(is_lora_parameter(k) for k in fast.model.transformer.state_dict())
    torch.testing.assert_close(fast(clip(), "make it night", **EDIT).video, slow(clip(), "make it night", **EDIT).video,
                               atol=1e-4, rtol=1e-3)
    with pytest.raises(ReviseInputError, match="before enable_fast_path"):
        fast.load_lora_weights(file)
