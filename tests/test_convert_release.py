"""`revise convert revise`: tiny instances of every official ReViSE / Omni-Video format, built here
from the layout facts, convert into a model that edits exactly as the one they were made from."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from revise import ReviseEditPipeline, ReviseInputError, ReviseModel
from revise.convert.release import convert_release
from revise.convert.synthetic import original_dit_from


def write_release(model: ReviseModel, root: Path) -> Path:
    """The tiny model in the release's formats: legacy .bin/.pkl files, VILA understanding folder."""
    root.mkdir(parents=True)
    dit, config = original_dit_from(model.transformer)
    save_file(dit, str(root / "diffusion_pytorch_model.safetensors"))
    (root / "config.json").write_text(json.dumps({**config, "text_len": 512}))
    # adapter: wrapped and with DataParallel prefixes, as some copies are
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in model.adapter.state_dict().items()}},
               root / "adapter_pytorch_model.bin")
    (root / "vision_head").mkdir()
    torch.save(model.vision_head.state_dict(), root / "vision_head" / "pytorch_model.bin")
    torch.save({"state_dict": model.visual_context_adapter.state_dict()}, root / "visual_context_adapter.pth")
    with open(root / "special_tokens.pkl", "wb") as f:
        pickle.dump(model.context_tokens.special_state(), f)
    with open(root / "uncond.pkl", "wb") as f:
        pickle.dump(model.context_tokens.uncond_state(), f)
    u, vila = model.understanding, root / "understanding"
    u.llm.save_pretrained(vila / "llm")
    u.tokenizer.save_pretrained(vila / "llm")
    (vila / "vision_tower").mkdir(parents=True)
    u.vision_tower.config.save_pretrained(vila / "vision_tower")
    torch.save(u.vision_tower.state_dict(), vila / "vision_tower" / "pytorch_model.bin")   # legacy weights
    (vila / "mm_projector").mkdir()
    (vila / "mm_projector" / "config.json").write_text(json.dumps(
        {"model_type": "v2l_projector", "mm_projector_type": "mlp_downsample"}))
    save_file(u.mm_projector.state_dict(), str(vila / "mm_projector" / "model.safetensors"))
    (vila / "config.json").write_text(json.dumps(
        {"architectures": ["LlavaLlamaModel"], "mm_projector_type": "mlp_downsample",
         "mm_hidden_size": u.vision_tower.config.hidden_size, "hidden_size": u.llm.config.hidden_size,
         "num_video_frames": u.num_frames, "mm_vision_select_layer": u.vision_select_layer}))
    return root


def write_wan_diffusers(model: ReviseModel, root: Path) -> Path:
    """The Wan parts in the diffusers layout, as Wan2.1-T2V-1.3B-Diffusers ships them."""
    model.transformer.save_pretrained(root / "transformer")
    model.vae.save_pretrained(root / "vae")
    model.text_encoder.save_pretrained(root / "text_encoder")
    model.tokenizer.save_pretrained(root / "tokenizer")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    return root


@pytest.fixture(scope="module")
def release(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("release")
    return write_release(tiny_model, tmp / "ReViSE"), write_wan_diffusers(tiny_model, tmp / "wan-diffusers")


def test_converted_release_edits_exactly_like_the_source(tiny_model, release, clip, tmp_path):
    src, wan = release
    # attention heads and the context length are not recorded by any tensor: the tiny model's are given
    out = convert_release(src, tmp_path / "converted", wan=wan, num_heads=tiny_model.vision_head.config.num_heads,
                          max_context_len=tiny_model.context_config.max_context_len)
    model = ReviseModel.from_pretrained(out)
    kw = dict(num_inference_steps=4, seed=5, progress=False, height=64, width=64)  # the release defaults are 352x640
    a = ReviseEditPipeline(tiny_model)(clip, "make it night", **kw).video
    b = ReviseEditPipeline(model)(clip, "make it night", **kw).video
    assert torch.equal(a, b)
    sa, sb = tiny_model.state_dict(), model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert model.context_config.special_token_len == tiny_model.context_config.special_token_len
    assert not list(out.rglob("*.bin")), "legacy weights became safetensors"


def test_a_diffusers_wan_folder_loads_with_no_conversion(tiny_model, release, tmp_path):
    _, wan = release
    parts = tiny_model.save_pretrained(tmp_path / "model")
    for c in ("transformer", "vae", "text_encoder", "tokenizer"):
        shutil.rmtree(parts / c)
    model = ReviseModel.from_pretrained(parts, base=wan)
    sa, sb = tiny_model.state_dict(), model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ReviseInputError, match="missing transformer/"):
        ReviseModel.from_pretrained(parts)


def test_missing_parts_are_named(tiny_model, release, tmp_path):
    src, wan = release
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    (broken / "uncond.pkl").unlink()
    (broken / "adapter_pytorch_model.bin").unlink()
    with pytest.raises(ReviseInputError, match="lacks the adapter, unconditioned_context"):
        convert_release(broken, tmp_path / "out", wan=wan)
    with pytest.raises(ReviseInputError, match="pass --wan"):
        convert_release(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_pickle_that_runs_code_is_refused(tiny_model, release, tmp_path):
    src, wan = release
    evil = tmp_path / "evil"
    shutil.copytree(src, evil)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    with open(evil / "special_tokens.pkl", "wb") as f:
        pickle.dump({"<img_st>": Payload()}, f)
    with pytest.raises(ReviseInputError, match="special_tokens.pkl"):
        convert_release(evil, tmp_path / "out", wan=wan)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_cli_convert_revise(tiny_model, release, tmp_path, capsys):
    from revise.cli import main

    src, wan = release
    assert main(["convert", "revise", str(src), str(tmp_path / "m"), "--wan", str(wan), "--heads", "4",
                 "--max-context-len", "128"]) == 0
    assert "converted" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "m")]) == 0
    assert main(["convert", "revise", str(src), str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--wan" in err[-1]
