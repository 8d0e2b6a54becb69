"""The official ReViSE release, read as it is: ``shared/samples/revise-release-tiny`` (a tiny release
with random weights in the exact released layout, with the released inference code's own outputs at
every stage) is converted, and the sample's reference inputs go through the converted model stage by
stage; every stage must match the release within 1e-4 relative error in float32."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from revise import ReviseEditPipeline, ReviseInputError, ReviseModel
from revise.convert.release import convert_release
from revise.models.prompt_style import IMAGE_TOKEN, release_vlm_prompt, wan_prompt_clean
from revise.pipelines.edit import make_scheduler, set_timesteps

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "revise-release-tiny"
if not SAMPLE.is_dir():
    SAMPLE = Path(__file__).resolve().parents[1] / "shared" / "samples" / "revise-release-tiny"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared/samples/revise-release-tiny not found")
TOL = 1e-4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    assert a.shape == b.shape, (a.shape, b.shape)
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    return convert_release(SAMPLE / "checkpoint", tmp_path_factory.mktemp("release") / "revise-model")


@pytest.fixture(scope="module")
def model(converted) -> ReviseModel:
    return ReviseModel.from_pretrained(converted)


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return load_file(SAMPLE / "reference" / "release_io.safetensors")


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((SAMPLE / "reference" / "meta.json").read_text())


@needs_sample
def test_the_release_converts_as_it_is(converted, model):
    config = json.loads((converted / "revise_config.json").read_text())
    assert config["prompt_style"] == "release" and model.prompt_style == "release"
    assert config["context"]["max_text_len"] == 512
    assert config["sampling"]["sigma_schedule"] == "wan"
    assert not [p for p in converted.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl")]
    # the DiT is the fine-tuned one from transformer/model.pt, not the base one in wan/wanxiang1_3b
    base = load_file(SAMPLE / "checkpoint" / "wan" / "wanxiang1_3b" / "diffusion_pytorch_model.safetensors")
    assert not torch.equal(model.transformer.patch_embedding.weight, base["patch_embedding.weight"])


@needs_sample
def test_every_stage_matches_the_release(model, ref, meta):
    u, instruction = model.understanding, meta["instruction"]
    errors = {}
    with torch.no_grad():
        # the VLM: prompt, ids, frame 0's pixels, last hidden states
        assert release_vlm_prompt(instruction) == meta["vlm_prompt"]
        prompt = u.release_conditioning_prompt(instruction)
        assert u.prompt_ids([prompt], IMAGE_TOKEN)[0] == ref["vlm_input_ids"].tolist()
        frames = np.load(SAMPLE / "reference" / "source_frames.npy")
        pixels = u.preprocess_images(frames[meta["vlm_frames_sampled"]])
        errors["vlm_pixel_values"] = rel_err(pixels, ref["vlm_pixel_values"])
        source = ref["source_video"][None]
        hidden, mask = model.vlm_hidden_states(source, [instruction], pixels[:1])
        errors["vlm_hidden"] = rel_err(hidden[0], ref["vlm_hidden"])
        vision = model.vision_head(hidden, mask)
        errors["vision_tokens"] = rel_err(vision[0], ref["vision_tokens"])
        errors["vision_tokens_uncond"] = rel_err(model.vision_head(model.context_tokens.uncond_ar_vision)[0],
                                                 ref["vision_tokens_uncond"])
        vlm = model.adapter(vision)
        errors["adapter_tokens"] = rel_err(vlm[0], ref["adapter_tokens"])
        errors["adapter_tokens_uncond"] = rel_err(model.uncond_vlm_tokens()[0], ref["adapter_tokens_uncond"])
        # T5, the VAE, the visual context adapter
        text = model.encode_text([instruction])
        errors["text_context"] = rel_err(text[0], ref["text_context"])
        latents = model.encode_video(source)
        errors["source_latents"] = rel_err(latents[0], ref["source_latents"])
        errors["visual_tokens"] = rel_err(model.source_tokens(latents)[0], ref["visual_tokens"])
        # both mixed contexts, from our own stages; zero-padded to max_context_len
        cond, uncond = model.assemble_contexts(latents, vlm, text)
        n_cond, n_uncond = len(ref["context_cond"]), len(ref["context_uncond"])
        assert cond.shape[1] == uncond.shape[1] == meta["max_context_len"]
        assert not cond[0, n_cond:].any() and not uncond[0, n_uncond:].any()
        errors["context_cond"] = rel_err(cond[0, :n_cond], ref["context_cond"])
        errors["context_uncond"] = rel_err(uncond[0, :n_uncond], ref["context_uncond"])
        # the DiT on both branches, guided as released
        context = torch.cat([cond, uncond])
        noise = ref["noise"][None]
        v = model.transformer(torch.cat([noise, noise]), ref["timestep"].expand(2), context, return_dict=False)[0]
        errors["velocity_cond"] = rel_err(v[0], ref["velocity_cond"])
        errors["velocity_uncond"] = rel_err(v[1], ref["velocity_uncond"])
        g = meta["guidance_scale"]
        errors["velocity_guided"] = rel_err(v[0] + g * (v[0] - v[1]), ref["velocity_guided"])
        # the whole 2-step sampling, with the model's own sampling schedule
        scheduler = make_scheduler(meta["solver"], meta["shift"])
        set_timesteps(scheduler, meta["steps"], "cpu", model.sampling_config.sigma_schedule)
        assert scheduler.timesteps.tolist() == ref["timesteps"].tolist()
        out = ReviseEditPipeline(model).denoise(noise.clone(), context, scheduler, g)
        errors["latents_2steps"] = rel_err(out[0], ref["latents_2steps"])
    print("relative errors: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert all(e < TOL for e in errors.values()), errors


@needs_sample
def test_diffusers_own_flow_sigmas_are_what_differed(model, ref, meta):
    """The cause of the sampler mismatch: diffusers' UniPC starts its flow sigmas at 1, Wan's flow
    solver (which the release uses) at 1 - 1/1000; the timesteps the DiT sees are the same."""
    context = torch.cat(model.assemble_contexts(ref["source_latents"][None], [ref["adapter_tokens"]],
                                                [ref["text_context"]]))
    outs = {}
    for schedule in ("diffusers", "wan"):
        scheduler = make_scheduler("unipc", meta["shift"])
        set_timesteps(scheduler, meta["steps"], "cpu", schedule)
        assert scheduler.timesteps.tolist() == ref["timesteps"].tolist()
        with torch.no_grad():
            outs[schedule] = ReviseEditPipeline(model).denoise(ref["noise"][None].clone(), context, scheduler,
                                                               meta["guidance_scale"])
    assert rel_err(outs["wan"][0], ref["latents_2steps"]) < 1e-6
    assert rel_err(outs["diffusers"][0], ref["latents_2steps"]) > 1e-5


@needs_sample
def test_the_pipeline_reads_a_file_as_the_release_does(model, ref, tmp_path):
    frames = np.load(SAMPLE / "reference" / "source_frames.npy")
    pipe = ReviseEditPipeline(model)
    path = tmp_path / "clip.npy"
    np.save(path, frames)
    source, vlm_frames = pipe.prepare_inputs(path, 17, 64, 64)
    assert torch.equal(source[0], ref["source_video"])             # frames 1..17, not spread over the file
    assert np.array_equal(vlm_frames, frames[:1])                  # the VLM sees frame 0
    assert rel_err(model.understanding.preprocess_images(vlm_frames)[0], ref["vlm_pixel_values"][0]) < 1e-6
    np.save(path, frames[:17])                                     # the release refuses a clip of 17
    with pytest.raises(ReviseInputError, match="17 frames: 17 after the first 1"):
        pipe.prepare_inputs(path, 17, 64, 64)


@needs_sample
def test_revise_edit_runs_on_the_converted_sample(converted, tmp_path, capsys):
    from revise.cli import main

    out = tmp_path / "edit.mp4"
    assert main(["edit", "--model", str(converted), "--video", str(SAMPLE / "reference" / "source_frames.npy"),
                 "--instruction", "What if the red square melted into a puddle?", "--out", str(out),
                 "--size", "64x64", "--steps", "2"]) == 0
    assert out.is_file() and out.stat().st_size > 0
    assert "wrote" in capsys.readouterr().out
    assert main(["info", str(converted)]) == 0
    assert "prompt style: release" in capsys.readouterr().out


def _partial_release(root: Path) -> Path:
    """A copy of the sample's release folder made of links (the files are only looked at)."""
    dst = root / "release"
    shutil.copytree(SAMPLE / "checkpoint", dst, copy_function=lambda s, d: Path(d).symlink_to(Path(s).resolve()))
    return dst


@needs_sample
def test_a_broken_release_names_what_is_missing(tmp_path, capsys):
    from revise.cli import main

    broken = _partial_release(tmp_path)
    (broken / "transformer" / "model.pt").unlink()
    shutil.rmtree(broken / "ar_model" / "checkpoint" / "mm_projector")
    (broken / "unconditioned_context" / "context.pkl").unlink()
    with pytest.raises(ReviseInputError) as err:
        convert_release(broken, tmp_path / "out")
    message = str(err.value)
    for missing in ("transformer/model.pt", "ar_model/checkpoint/mm_projector", "unconditioned_context/context.pkl"):
        assert missing in message
    assert "special_tokens" not in message and not (tmp_path / "out").exists()
    assert main(["convert", "revise", str(broken), str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "transformer/model.pt" in lines[0]
    assert not (tmp_path / "out").exists()


@needs_sample
def test_a_model_pt_without_the_dit_is_refused(tmp_path):
    broken = _partial_release(tmp_path)
    (broken / "transformer" / "model.pt").unlink()
    torch.save({"module": {"adapter.decoder_query": torch.zeros(1, 8, 40)}}, broken / "transformer" / "model.pt")
    with pytest.raises(ReviseInputError, match=r"no wan_model\.\* .* visual_context_adapter\.\*"):
        convert_release(broken, tmp_path / "out")


@needs_sample
def test_a_release_pickle_that_runs_code_is_refused(tmp_path):
    import pickle

    evil = _partial_release(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    (evil / "unconditioned_context" / "context.pkl").unlink()
    with open(evil / "unconditioned_context" / "context.pkl", "wb") as f:
        pickle.dump({"text_emb": [Payload()], "vlm_last_hidden_states": torch.zeros(1, 2, 48)}, f)
    with pytest.raises(ReviseInputError, match="context.pkl"):
        convert_release(evil, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_wan_prompt_cleaning():
    assert wan_prompt_clean("  make\n the  sky &amp;amp; sea\tred ") == "make the sky & sea red"
    assert wan_prompt_clean("donâ€™t") == "don't"          # ftfy repairs mojibake


def test_a_folder_without_a_prompt_style_keeps_the_revise_style(tiny_model, tmp_path, clip):
    path = tiny_model.save_pretrained(tmp_path / "m")
    config = json.loads((path / "revise_config.json").read_text())
    assert config["prompt_style"] == "revise"
    del config["prompt_style"], config["sampling"]["sigma_schedule"]
    (path / "revise_config.json").write_text(json.dumps(config))
    model = ReviseModel.from_pretrained(path)
    assert model.prompt_style == "revise" and model.sampling_config.sigma_schedule == "diffusers"
    prompt = model.understanding.conditioning_prompt("make it night")
    assert "<video>\nmake it night" in prompt and "<image>" not in prompt
    kw = dict(num_inference_steps=2, seed=3, progress=False, height=64, width=64)
    assert torch.equal(ReviseEditPipeline(model)(clip, "make it night", **kw).video,
                       ReviseEditPipeline(tiny_model)(clip, "make it night", **kw).video)


def test_wan_flow_sigmas_over_40_steps():
    """Wan's schedule over the released 40 steps: its unshifted sigmas 0.999 .. 0, shifted by 5; the
    DiT's timesteps are those sigmas x 1000, truncated to integers as Wan's solver does."""
    scheduler = make_scheduler("unipc", 5.0)
    set_timesteps(scheduler, 40, "cpu", "wan")
    s = np.linspace(np.float32(0.999), 0, 41)[:-1]
    shifted = 5 * s / (1 + 4 * s)
    assert np.allclose(scheduler.sigmas[:-1].numpy(), shifted, rtol=1e-6) and scheduler.sigmas[-1] == 0
    assert scheduler.timesteps.tolist() == (shifted * 1000).astype(np.int64).tolist()


def test_read_video_skip_and_read_frames(tmp_path):
    from PIL import Image

    from revise.video import read_frames, read_video

    levels = [10, 50, 90, 130, 170, 210]
    for i, level in enumerate(levels):
        Image.fromarray(np.full((24, 40, 3), level, np.uint8)).save(tmp_path / f"f{i}.png")
    clip = read_video(tmp_path, 4, 16, 16, skip=1)                  # frames 1..4, consecutive, fitted
    assert clip.shape == (3, 4, 16, 16)
    assert torch.allclose((clip[0, :, 0, 0] + 1) * 127.5, torch.tensor(levels[1:5], dtype=torch.float32))
    spread = read_video(tmp_path, 4, 16, 16)                         # without skip: spread over the clip
    assert torch.allclose((spread[0, :, 0, 0] + 1) * 127.5, torch.tensor([10., 90., 130., 210.]))
    first = read_frames(tmp_path, [0])                               # at the file's own size
    assert first.shape == (1, 24, 40, 3) and (first == 10).all()
    with pytest.raises(ReviseInputError, match="6 frames: 6 after the first 1"):
        read_video(tmp_path, 6, 16, 16, skip=1)
