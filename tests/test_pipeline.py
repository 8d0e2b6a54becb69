"""The edit pipeline on the tiny preset: batched guidance, determinism, save/load round trip."""

import pytest
import torch

from revise import ReviseEditPipeline, ReviseInputError, ReviseModel
from revise.pipelines.edit import make_scheduler

KW = dict(num_inference_steps=6, progress=False)


def test_output_shape_and_range(tiny_model, clip):
    out = ReviseEditPipeline(tiny_model)(clip, "make it night", **KW)
    assert out.video.shape == (1, 3, 17, 64, 64)
    assert out.video.min() >= -1 and out.video.max() <= 1
    assert set(out.timings) == {"vae_encode", "vlm", "text", "context", "denoise", "vae_decode"}


def test_batched_guidance_equals_two_separate_forwards(tiny_model, clip):
    g, steps = 3.0, 5
    got = ReviseEditPipeline(tiny_model)(clip, "what if it were night", guidance_scale=g, num_inference_steps=steps,
                                         seed=7, progress=False).video

    m = tiny_model
    with torch.no_grad():
        video = clip.unsqueeze(0)
        latents0 = m.encode_video(video)
        cond, uncond = m.build_context(latents0, video, ["what if it were night"])
        latents = torch.randn(latents0.shape, generator=torch.Generator().manual_seed(7))
        sched = make_scheduler("unipc", shift=5.0)
        sched.set_timesteps(steps)
        for t in sched.timesteps:
            tt = t.expand(1)
            v_c = m.transformer(latents, tt, cond, return_dict=False)[0]
            v_u = m.transformer(latents, tt, uncond, return_dict=False)[0]
            latents = sched.step(v_c + g * (v_c - v_u), t, latents, return_dict=False)[0]
        want = m.decode_latents(latents)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_guidance_changes_the_result(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    a = pipe(clip, "make it night", guidance_scale=0.0, **KW).video
    b = pipe(clip, "make it night", guidance_scale=3.0, **KW).video
    assert not torch.allclose(a, b)


def test_same_seed_same_video_other_seed_other_video(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    a = pipe(clip, "make it night", seed=1, **KW).video
    b = pipe(clip, "make it night", seed=1, **KW).video
    c = pipe(clip, "make it night", seed=2, **KW).video
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_the_instruction_reaches_the_output(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    a = pipe(clip, "make it night", **KW).video
    b = pipe(clip, "move the ball left", **KW).video
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("solver", ["unipc", "euler"])
def test_both_solvers_run(tiny_model, clip, solver):
    out = ReviseEditPipeline(tiny_model)(clip, "make it night", solver=solver, **KW)
    assert torch.isfinite(out.video).all()


def test_save_load_round_trip_is_bit_identical(tiny_model, clip, tmp_path):
    path = tiny_model.save_pretrained(tmp_path / "model")
    for sub in ("transformer", "vae", "text_encoder", "tokenizer", "understanding/llm", "understanding/vision_tower",
                "understanding/mm_projector", "vision_head", "adapter", "visual_context_adapter"):
        assert (path / sub).is_dir(), sub
    for f in ("special_tokens.safetensors", "unconditioned_context.safetensors", "revise_config.json"):
        assert (path / f).is_file(), f
    assert not list(path.rglob("*.bin")) and not list(path.rglob("*.pt*")), "safetensors only"
    loaded = ReviseModel.from_pretrained(path)
    a = ReviseEditPipeline(tiny_model)(clip, "make it night", seed=3, **KW).video
    b = ReviseEditPipeline(loaded)(clip, "make it night", seed=3, **KW).video
    assert torch.equal(a, b)
    sa, sb = tiny_model.state_dict(), loaded.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_replaces_an_old_folder_whole(tiny_model, tmp_path):
    path = tmp_path / "model"
    path.mkdir()
    (path / "stale.txt").write_text("old")
    tiny_model.save_pretrained(path)
    assert not (path / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"


def test_missing_component_is_named(tiny_model, tmp_path):
    import shutil
    path = tiny_model.save_pretrained(tmp_path / "model")
    shutil.rmtree(path / "vae")
    with pytest.raises(ReviseInputError, match="missing vae/"):
        ReviseModel.from_pretrained(path)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_frames=16), "4n\\+1"),
    (dict(height=60), "multiple of 16"),
    (dict(num_inference_steps=0), "at least 1"),
])
def test_bad_arguments(tiny_model, clip, kwargs, match):
    with pytest.raises(ReviseInputError, match=match):
        ReviseEditPipeline(tiny_model)(clip, "make it night", **{"progress": False, **kwargs})


def test_empty_instruction(tiny_model, clip):
    with pytest.raises(ReviseInputError, match="empty"):
        ReviseEditPipeline(tiny_model)(clip, "   ", progress=False)


def test_wrong_video_shape(tiny_model, clip):
    with pytest.raises(ReviseInputError, match="expected"):
        ReviseEditPipeline(tiny_model)(clip[:, :13], "make it night", progress=False)
