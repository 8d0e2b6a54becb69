"""Inductor settings for the compiled DiT blocks, A/B on one GPU: denoising time and a kernel profile each.

The full fast path (fused projections, GELU epilogue, one-pass q/k) at the released shapes (17 frames,
352x640, 40 UniPC steps, CFG batched), with the blocks compiled by diffusers' `compile_repeated_blocks`
under each variant (caches off, so each variant compiles afresh):

    base                  Inductor's defaults
    wide                  rows of up to 2048 reduced in one read (the heuristic `enable_fast_path` now uses,
                          `revise/models/compiled_blocks.py`)
    cdt, wide_cdt         + coordinate_descent_tuning
    mk1                   triton.multi_kernel=1
    wide_opt              the heuristic passed through torch.compile options (no effect on torch 2.11)
    wide_cdt_edges        + the rotary and time embeddings compiled too
    autotune, wide_autotune_nogelu
                          mode="max-autotune-no-cudagraphs" (the latter with the GELU left to Inductor)

    python benchmarks/inductor_variants.py base wide cdt        # GPU only; logs in benchmarks/results/inductor_variants_h100_*.log

(In the first two logged runs the "persistent" variants only widened reductions Inductor marks INNER, which
these are not, so they compiled the same kernels as without; from the third run on each decision is printed.)
"""
import json, os, sys, time
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edit_latency import matmul_rate, dit_flops, ONCE, ATTENTION, kernel_kind, sync
from revise import ReviseEditPipeline, ReviseModel
from revise.pipelines.edit import make_scheduler
import torch._inductor.config as icfg

if not torch.cuda.is_available():
    import sys
    print("error: this benchmark needs a CUDA GPU", file=sys.stderr)
    sys.exit(2)
dev = torch.device("cuda"); dt = torch.bfloat16
frames, height, width, steps, g, shift = 17, 352, 640, 40, 3.0, 5.0
r0 = matmul_rate(dev, dt)
print("torch", torch.__version__, torch.cuda.get_device_name(), "rate", r0, flush=True)
model = ReviseModel.from_preset("wan2.1-1.3b", device=dev, dtype=dt)
pipe = ReviseEditPipeline(model)
pipe.enable_fast_path(compile=False)
dit = model.transformer
video = torch.rand(1, 3, frames, height, width, device=dev) * 2 - 1
c = dit.config
tokens = 5 * 22 * 40
flops = dit_flops(tokens, model.context_config.max_context_len, 1536, c.ffn_dim, c.num_layers, c.text_dim)
fwd = sum(flops.values())
once = sum(flops[k] for k in ONCE); loop_flops = steps * 2 * (fwd - once) + 2 * once
kw = dict(num_frames=frames, height=height, width=width, num_inference_steps=steps, guidance_scale=g, shift=shift, progress=False)

from torch._inductor.choices import InductorChoices
from torch._inductor.runtime.hints import ReductionHint
SEEN = set()
class Wide(InductorChoices):
    def uuid(self):
        return "revise-wide-persistent-2048"
    @staticmethod
    def should_use_persistent_reduction(features, cooperative_reduction):
        base = InductorChoices.should_use_persistent_reduction(features, cooperative_reduction)
        try:
            n = int(features.reduction_numel)
            hint = features.get_reduction_hint()
            ok = (not cooperative_reduction) and n <= int(os.environ.get("WIDE", "2048"))
            if (n, str(hint), base, ok) not in SEEN:
                SEEN.add((n, str(hint), base, ok)); print("persistent?", n, hint, "default", base, "ours", ok or base, flush=True)
            return ok or base
        except Exception as e:
            print("wide fallback", e)
        return base

def profile(label):
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad():
        latents = model.encode_video(video.to(dt))
        cond, uncond = model.build_context(latents, video.to(dt), ["x"])
        ctx = torch.cat([cond, uncond]); noise = torch.randn(latents.shape, device=dev)
    n = 5
    @torch.no_grad()
    def go():
        s = make_scheduler("unipc", shift); s.set_timesteps(n, device=dev)
        pipe.denoise(noise, ctx, s, g)
    go(); sync(dev); t = time.perf_counter(); go(); sync(dev); wall = time.perf_counter() - t
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU], record_shapes=True) as prof:
        go(); sync(dev)
    kinds, top, cnt = {}, {}, {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA: continue
        us = e.time_range.elapsed_us(); k = kernel_kind(e.name)
        kinds[k] = kinds.get(k, 0) + us; top[e.name] = top.get(e.name, 0) + us; cnt[e.name] = cnt.get(e.name, 0) + 1
    busy = sum(kinds.values()) / 1e6
    print(f"[{label}] profile {n} steps: wall {wall/n*1e3:.2f} ms/step, kernels {busy/n*1e3:.2f} ms/step")
    for k, us in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"   {k}: {us/n/1e3:.2f} ms/step")
    for name, us in sorted(top.items(), key=lambda kv: -kv[1])[:30]:
        print(f"   {us/n/1e3:6.3f} ms/step x{cnt[name]/n:6.1f}/step  {kernel_kind(name)[:10]:>10}  {name[:120]}")
    try:
        src = {}
        for e in prof.events():
            ks = getattr(e, "kernels", None) or []
            m = sum(1 for k in ks if "Memset" in k.name)
            if m:
                src[e.name] = src.get(e.name, 0) + m
        print("   memset sources per step:", {k: v / n for k, v in sorted(src.items(), key=lambda kv: -kv[1])[:8]})
        ka = prof.key_averages(group_by_input_shape=True)
        for e in sorted([e for e in ka if "attention" in e.key and e.device_time_total > 0], key=lambda e: -e.device_time_total)[:6]:
            print(f"   attn {e.key:40s} calls {e.count/n:5.1f}/step gpu {e.device_time_total/n/1e3:6.3f} ms/step shapes {str(e.input_shapes)[:160]}")
    except Exception as ex:
        print("memset/attn failed", ex)
    try:
        ka = prof.key_averages(group_by_input_shape=True)
        rows = [e for e in ka if any(w in e.key for w in ("copy_", "fill_", "zero_", "contiguous", "clone", "cat", "_to_copy"))]
        rows.sort(key=lambda e: -e.device_time_total)
        for e in rows[:25]:
            print(f"   op {e.key:28s} calls {e.count/n:6.1f}/step  gpu {e.device_time_total/n/1e3:6.3f} ms/step  shapes {str(e.input_shapes)[:150]}")
    except Exception as ex:
        print("key_averages failed", ex)

def variant(label, compile_kwargs, choices=None):
    torch._dynamo.reset()
    from torch._inductor.virtualized import V
    restore = V.set_choices_handler(choices()) if choices is not None else None
    if restore is not None:
        restore.__enter__()
    t = time.perf_counter()
    try:
        dit.compile_repeated_blocks(fullgraph=True, **compile_kwargs)
        pipe(video, "x", **kw)
        ct = time.perf_counter() - t
        runs = [pipe(video, "x", seed=i, **kw).timings["denoise"] for i in range(3)]
        best = min(runs)
        print(json.dumps({"label": label, "denoise": best, "runs": runs, "first_call_s": ct,
                          "ms_step": best / steps * 1e3, "loop_tflops": loop_flops / best / 1e12}), flush=True)
        profile(label)
        print(f"[{label}] matmul rate now {matmul_rate(dev, dt):.1f}", flush=True)
    except Exception as e:
        import traceback; traceback.print_exc()
        print(f"[{label}] FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
    finally:
        if restore is not None:
            restore.__exit__(None, None, None)

def fresh_pipe(**fast):
    global model, pipe, dit
    del model, pipe, dit
    torch.cuda.empty_cache()
    model = ReviseModel.from_preset("wan2.1-1.3b", device=dev, dtype=dt)
    pipe = ReviseEditPipeline(model)
    pipe.enable_fast_path(compile=False, **fast)
    dit = model.transformer

def compile_edges():
    dit.rope.compile(fullgraph=True)
    dit.condition_embedder.compile(fullgraph=True)

which = sys.argv[1:] or ["base", "wide", "mk1", "cdt", "wide_cdt", "autotune"]
for w in which:
    if w == "base": variant("base", {})
    if w == "mk1": variant("multi_kernel=1", {"options": {"triton.multi_kernel": 1}})
    if w == "cdt": variant("coordinate_descent_tuning", {"options": {"coordinate_descent_tuning": True}})
    if w == "wide_cdt": variant("persistent + cdt", {"options": {"coordinate_descent_tuning": True}}, choices=Wide)
    if w == "wide_opt":
        variant("persistent(options) + cdt", {"options": {"coordinate_descent_tuning": True, "inductor_choices_class": Wide}})
    if w == "wide_cdt_edges":
        compile_edges(); variant("persistent + cdt + compiled rope/time embedding", {"options": {"coordinate_descent_tuning": True}}, choices=Wide)
    if w == "wide":
        variant("persistent", {}, choices=Wide)
    if w == "wide_autotune_nogelu":
        fresh_pipe(fuse_gelu=False)
        variant("persistent + max-autotune-no-cudagraphs, GELU left to inductor", {"mode": "max-autotune-no-cudagraphs"}, choices=Wide)
    if w == "autotune": variant("max-autotune-no-cudagraphs", {"mode": "max-autotune-no-cudagraphs"})
r1 = matmul_rate(dev, dt)
print("rates", r0, r1, "bound ms/step at max", loop_flops / max(r0, r1) / 1e12 / steps * 1e3)
