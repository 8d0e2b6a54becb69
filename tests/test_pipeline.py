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


# ---- the diffusers call contract ------------------------------------------------------------------
def test_each_output_type(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    pt = pipe(clip, "make it night", seed=4, **KW)
    np_video = pipe(clip, "make it night", seed=4, output_type="np", **KW).video
    assert np_video.shape == (1, 17, 64, 64, 3) and np_video.dtype.name == "float32"
    assert np_video.min() >= 0 and np_video.max() <= 1
    torch.testing.assert_close(torch.from_numpy(np_video), (pt.video.permute(0, 2, 3, 4, 1) + 1) / 2)
    pil = pipe(clip, "make it night", seed=4, output_type="pil", **KW).video
    assert len(pil) == 1 and len(pil[0]) == 17 and pil[0][0].size == (64, 64) and pil[0][0].mode == "RGB"
    latent = pipe(clip, "make it night", seed=4, output_type="latent", **KW)
    assert latent.video.shape == (1, *pipe.latent_shape(17, 64, 64))
    assert "vae_decode" not in latent.timings
    torch.testing.assert_close(tiny_model.decode_latents(latent.video).float(), pt.video)


def test_return_dict_false_gives_a_tuple(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    got = pipe(clip, "make it night", seed=4, return_dict=False, **KW)
    assert isinstance(got, tuple) and len(got) == 1
    assert torch.equal(got[0], pipe(clip, "make it night", seed=4, **KW).video)


def test_callback_on_step_end_sees_each_step_and_its_latents_replace_the_loops(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    seen = []

    def watch(p, i, t, kwargs):
        assert p is pipe and set(kwargs) == {"latents"}
        seen.append((i, float(t)))
        return {}

    base = pipe(clip, "make it night", seed=4, **KW).video
    watched = pipe(clip, "make it night", seed=4, callback_on_step_end=watch, **KW).video
    assert [i for i, _ in seen] == list(range(6)) and seen[0][1] > seen[-1][1]
    torch.testing.assert_close(watched, base, atol=1e-5, rtol=1e-4)      # the scheduler's own steps, not the plan

    def zero_last(p, i, t, kwargs):
        return {"latents": torch.zeros_like(kwargs["latents"])} if i == 5 else kwargs

    zeroed = pipe(clip, "make it night", seed=4, callback_on_step_end=zero_last,
                  callback_on_step_end_tensor_inputs=["latents"], output_type="latent", **KW).video
    assert torch.equal(zeroed, torch.zeros_like(zeroed))
    changed = pipe(clip, "make it night", seed=4, callback_on_step_end=lambda p, i, t, k: {"latents": k["latents"] * 0},
                   **KW).video
    assert not torch.allclose(changed, base)


def test_old_callback_and_progress_still_work(tiny_model, clip):
    told = []
    ReviseEditPipeline(tiny_model)(clip, "make it night", callback=lambda i, n: told.append((i, n)),
                                   callback_on_step_end=lambda p, i, t, k: k, **KW)
    assert told == [(i, 6) for i in range(1, 7)]


def test_a_generator_per_clip(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    two = torch.stack([clip, clip.flip(-1)])
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    both = pipe(two, ["make it night", "make it day"], generator=gens, **KW).video
    first = pipe(clip, "make it night", generator=torch.Generator().manual_seed(1), **KW).video
    second = pipe(clip.flip(-1), "make it day", generator=torch.Generator().manual_seed(2), **KW).video
    torch.testing.assert_close(both, torch.cat([first, second]), atol=1e-5, rtol=1e-4)
    with pytest.raises(ReviseInputError, match="3 generators for 2 clip"):
        pipe(two, ["a", "b"], generator=gens + gens[:1], **KW)


def test_precomputed_contexts_give_the_same_video(tiny_model, clip):
    pipe = ReviseEditPipeline(tiny_model)
    cond, uncond = pipe.encode_context(clip, "make it night")
    assert cond.shape == uncond.shape == (1, tiny_model.context_config.max_context_len,
                                          tiny_model.transformer.config.text_dim)
    a = pipe(clip, "make it night", seed=5, guidance_scale=3.0, **KW)
    b = pipe(context=cond, negative_context=uncond, seed=5, guidance_scale=3.0, **KW)
    assert torch.equal(a.video, b.video)
    assert b.source is None and set(b.timings) == {"denoise", "vae_decode"}
    c = pipe(context=cond, seed=5, guidance_scale=0.0, **KW).video
    assert torch.equal(c, pipe(clip, "make it night", seed=5, guidance_scale=0.0, **KW).video)


@pytest.mark.parametrize("kwargs, match", [
    (dict(output_type="mp4"), "unknown output_type 'mp4'"),
    (dict(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise_pred"]), "'noise_pred' not offered"),
    (dict(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs="latents"), "list of names"),
    (dict(callback_on_step_end="latents"), "must be callable"),
    (dict(generator="seed"), "torch.Generator"),
    (dict(latents=torch.zeros(1, 16, 4, 8, 8)), "latents must have shape"),
])
def test_bad_call_arguments_are_refused_before_any_work(tiny_model, clip, kwargs, match, monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("encoded before checking the arguments")

    monkeypatch.setattr(tiny_model, "encode_video", no_work)
    with pytest.raises(ReviseInputError, match=match) as err:
        ReviseEditPipeline(tiny_model)(clip, "make it night", **{**KW, **kwargs})
    assert "\n" not in str(err.value)


def test_a_callback_that_returns_no_dict(tiny_model, clip):
    with pytest.raises(ReviseInputError, match="must return a dict, not NoneType"):
        ReviseEditPipeline(tiny_model)(clip, "make it night", callback_on_step_end=lambda *a: None, **KW)


@pytest.mark.parametrize("kwargs, match", [
    (dict(context=torch.zeros(1, 3, 4)), "context must be a \\[B, "),
    (dict(context=torch.zeros(1, 3, 4), guidance_scale=3.0), "needs negative_context"),
    (dict(negative_context=torch.zeros(1, 3, 4)), "needs context too"),
    (dict(video="x.mp4", context=torch.zeros(1, 3, 4)), "not both"),
    (dict(), "needs video and instruction"),
])
def test_bad_contexts(tiny_model, kwargs, match):
    with pytest.raises(ReviseInputError, match=match):
        ReviseEditPipeline(tiny_model)(**{**KW, "guidance_scale": 0.0, **kwargs})


# ---- stage-by-stage placement ---------------------------------------------------------------------
@pytest.mark.parametrize("keep", [(), ("transformer", "vae")])
def test_offload_by_stages_gives_the_same_edit_and_moves_each_stage_in_turn(tiny_model, clip, monkeypatch, keep):
    """On a CPU-only machine the execution device is the CPU too, so this checks the bookkeeping: which
    components each stage puts on the execution device and takes back, that each runs while there,
    and that the kept ones stay there."""
    from revise.pipelines.stages import STAGES, Placement

    want = ReviseEditPipeline(tiny_model)(clip, "make it night", seed=3, **KW).video
    pipe = ReviseEditPipeline.from_pretrained("tiny", device="cpu", offload=None)
    pipe.enable_model_cpu_offload("cpu", keep=keep)
    model, log = pipe.model, []
    assert pipe._placement.on_device == set(keep) and pipe.offload_keep == keep
    pointers = {name: p.data_ptr() for name, p in model.transformer.named_parameters()}
    real_on, real_off = Placement.onload, Placement.offload

    def onload(self, names):
        names = list(names)
        log.extend(("at", n, "device") for n in names)
        return real_on(self, names)

    def offload(self, names):
        names = list(names)
        log.extend(("at", n, "host") for n in names)
        return real_off(self, names)

    def runs(part, owner, method):
        real = getattr(owner, method)

        def spy(*args, **kwargs):
            log.append(("run", part))
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, method, spy)

    monkeypatch.setattr(Placement, "onload", onload)
    monkeypatch.setattr(Placement, "offload", offload)
    runs("vae", model.vae, "encode")
    runs("understanding", model.understanding, "hidden_states")
    runs("text_encoder", model.text_encoder, "forward")
    runs("adapter", model.adapter, "forward")
    runs("transformer", model.transformer, "forward")
    runs("vae", model.vae, "decode")
    got = pipe(clip, "make it night", seed=3, **KW).video
    assert torch.equal(got, want)

    where = {part: "device" if part in keep else "host" for parts in STAGES.values() for part in parts}
    ran = []
    for event in log:
        if event[0] == "at":
            assert event[1] not in keep, f"{event[1]} is kept on the device, yet moved"
            where[event[1]] = event[2]
            continue
        part = event[1]
        ran.append(part)
        assert where[part] == "device", f"{part} ran in host memory"
        on_device = {p for p, w in where.items() if w == "device"}
        stage = {"transformer": "denoise", "understanding": "vlm", "text_encoder": "text",
                 "adapter": "context"}.get(part, "decode" if ran.count("vae") > 1 else "vae_encode")
        assert on_device == set(STAGES[stage]) | set(keep), (part, on_device)
    assert ran.index("transformer") > ran.index("text_encoder") > ran.index("understanding") and ran[-1] == "vae"
    assert {p for p, w in where.items() if w == "device"} == set(keep), "all else back in host memory"
    # the weights went back to their host copies: nothing copied back, nothing new allocated
    assert pointers == {name: p.data_ptr() for name, p in model.transformer.named_parameters()}


def test_unknown_offload_mode_and_kept_component(tiny_model):
    with pytest.raises(ReviseInputError, match="unknown offload 'model'"):
        ReviseEditPipeline.from_pretrained("tiny", offload="model")
    with pytest.raises(ReviseInputError, match="unknown components to keep: dit"):
        ReviseEditPipeline.from_pretrained("tiny", offload=None).enable_model_cpu_offload("cpu", keep=["dit"])


def test_offload_needs_the_largest_stages_weights_only():
    from revise.pipelines.sampling_options import estimate_memory, resolve_sampling
    from revise.models.summary import summarize

    o = resolve_sampling("tiny")
    whole, staged = estimate_memory("tiny", o, 4), estimate_memory("tiny", o, 4, offload="stages")
    sizes = {name: n for name, _, n in summarize("tiny")["components"] if not name.startswith(" ")}
    context = sum(sizes[p] for p in ("vision_head", "adapter", "visual_context_adapter", "context_tokens"))
    largest = max(sizes["vae"], sizes["understanding"], sizes["text_encoder"], context, sizes["transformer"])
    assert staged["weights"] == 4 * largest < whole["weights"]
    assert {k: v for k, v in staged.items() if k != "weights"} == {k: v for k, v in whole.items() if k != "weights"}
    kept = estimate_memory("tiny", o, 4, offload="stages", keep=("transformer",))
    others = max(sizes["vae"], sizes["understanding"], sizes["text_encoder"], context)
    assert kept["weights"] == 4 * (sizes["transformer"] + others)
    int8 = estimate_memory("tiny", o, 4, encoder_weights="int8")
    assert whole["weights"] - int8["weights"] == 3 * (sizes["understanding"] + sizes["text_encoder"])


GIB = 2**30
#: bytes of each component of the released model (wan2.1-1.3b) in bf16
RELEASED = {"transformer": 2.84e9, "vae": 0.25e9, "text_encoder": 11.36e9, "understanding": 16.99e9,
            "vision_head": 0.31e9, "adapter": 3.80e9, "visual_context_adapter": 0.013e9, "context_tokens": 0.004e9}


def test_choose_offload_explicit_wins_auto_only_on_a_small_gpu():
    from revise.pipelines.stages import choose_offload

    assert choose_offload("stages", "cpu", 1, None) == "stages"
    assert choose_offload("stages", "cuda", 1, 80 * GIB) == "stages"      # asked for: offloaded though it fits
    assert choose_offload("none", "cuda", 40 * GIB, 20 * GIB) is None       # asked not to: it is not
    assert choose_offload(None, "cuda", 40 * GIB, 20 * GIB) is None
    assert choose_offload("auto", "cuda:0", 40 * GIB, 20 * GIB) == "stages"  # a 24 GB card
    assert choose_offload("auto", "cuda:0", 40 * GIB, 75 * GIB) is None      # an 80 GB card
    assert choose_offload("auto", "cuda", 40 * GIB, None) is None            # free memory unknown
    assert choose_offload("auto", "cpu", 40 * GIB, 1 * GIB) is None          # host memory is where it waits
    with pytest.raises(ValueError, match="unknown offload"):
        choose_offload("model", "cuda", 1, 1)


def test_plan_residency_keeps_the_most_bytes_that_fit():
    from revise.pipelines.stages import COMPONENTS, plan_residency, stage_peak

    assert plan_residency(RELEASED, None) == ()
    assert set(plan_residency(RELEASED, 80 * GIB)) == set(COMPONENTS)     # everything fits: nothing moves
    assert stage_peak(RELEASED, ()) == RELEASED["understanding"]          # the largest stage is the VLM
    keep = plan_residency(RELEASED, 18 * GIB)
    assert stage_peak(RELEASED, keep) <= 18 * GIB
    # the VLM (17 GB) must move, so beside it only 2.3 GB may stay: the DiT (2.84 GB) cannot
    assert "transformer" not in keep and "understanding" not in keep
    best = max(sum(RELEASED[c] for c in k) for k in
               (keep, ("vae", "vision_head", "visual_context_adapter", "context_tokens")))
    assert sum(RELEASED[c] for c in keep) == best
    int8 = {**RELEASED, "understanding": 8.6e9, "text_encoder": 6.7e9}
    keep = plan_residency(int8, 18 * GIB)
    moved = sum(int8.values()) - sum(int8[c] for c in keep)
    assert stage_peak(int8, keep) <= 18 * GIB and moved < 11e9       # with 8-bit encoders a third moves
    assert plan_residency(RELEASED, 1e9) == ()                         # the VLM alone is over budget


def test_plan_offload_auto_offloads_when_the_gpu_has_too_little_free(monkeypatch):
    from revise.pipelines.sampling_options import estimate_memory, plan_offload, resolve_sampling

    o = resolve_sampling("tiny")
    need = sum(estimate_memory("tiny", o, 4).values())
    assert plan_offload("tiny", o, "cuda", torch.float32, "auto", free=need + 1).offload is None
    plan = plan_offload("tiny", o, "cuda", torch.float32, "auto", free=need - 1)
    assert plan.offload == "stages" and plan.budget < need and plan.keep    # most of it stays
    assert plan_offload("tiny", o, "cpu", torch.float32, "auto", free=1).offload is None
    assert plan_offload("tiny", o, "cuda", torch.float32, "stages", free=10 * need).offload == "stages"
    assert plan_offload("tiny", o, "cuda", torch.float32, "none", free=1).offload is None
    with pytest.raises(ReviseInputError, match="unknown offload"):
        plan_offload("tiny", o, "cpu", torch.float32, "model")


def test_from_pretrained_auto_keeps_everything_in_place_on_the_cpu(tiny_model):
    pipe = ReviseEditPipeline.from_pretrained("tiny", device="cpu")      # offload="auto" by default
    assert pipe._placement is None and pipe.device.type == "cpu"


def test_a_diffusers_pipeline_callback_brings_its_own_tensor_inputs(tiny_model, clip):
    from diffusers.callbacks import PipelineCallback

    class ZeroLatents(PipelineCallback):
        wants = ["latents"]

        @property
        def tensor_inputs(self):
            return self.wants

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    pipe = ReviseEditPipeline(tiny_model)
    zeroed = pipe(clip, "make it night", output_type="latent", callback_on_step_end=ZeroLatents(), **KW).video
    assert torch.equal(zeroed, torch.zeros_like(zeroed))
    ZeroLatents.wants = ["prompt_embeds"]
    with pytest.raises(ReviseInputError, match="'prompt_embeds' not offered"):
        pipe(clip, "make it night", callback_on_step_end=ZeroLatents(), **KW)
