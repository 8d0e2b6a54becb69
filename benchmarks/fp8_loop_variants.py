"""The FP8 denoising loop under kernel-choice variants, A/B on one GPU (issue #24's <= 1.0x goal).

The released setting (17 frames, 352x640, 40 UniPC steps, CFG batched, the `wan2.1-1.3b` preset in
bf16, random weights) with ``enable_fast_path()`` then ``enable_fp8(attention=True, fast_accum=True)``.
The blocks are recompiled for each variant (Dynamo reset, Inductor caches off):

    base        Inductor keeps rows of up to 2048 values in registers (``compiled_blocks.MAX_PERSISTENT_ROW``),
                so the feed-forward's GELU + row-wise quantization over 8960 values reads each row twice;
                cuDNN's FP8 attention runs the plan its heuristics rank first
    wide        rows of up to 16384 values in one read: that kernel reads each row once
    wide_tuned  + every cuDNN FP8 attention plan timed on the first call, the fastest kept
                (``fp8_attention.AUTOTUNE``)

Each variant prints the loop's seconds (best of ``--repeats``, after a warm-up that compiles), its
ratio to the FLOP-bound time at the bf16 matmul rate measured in the same run, and the GPU time of
its three biggest kernels of each kind over three steps.

    python benchmarks/fp8_loop_variants.py [base wide wide_tuned] [--repeats 2]     # Hopper GPU only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_latency import ATTENTION, ONCE, dit_flops, kernel_kind, matmul_rate, sync  # noqa: E402

from revise import ReviseEditPipeline, ReviseModel  # noqa: E402
from revise.models import compiled_blocks, fp8_attention  # noqa: E402
from revise.pipelines.edit import make_scheduler  # noqa: E402

VARIANTS = {
    "base": {"rows": 2048, "autotune": False},
    "wide": {"rows": 16384, "autotune": False},
    "wide_tuned": {"rows": 16384, "autotune": True},
}


def loop_seconds(pipe, latents, context, shift: float, steps: int, guidance: float) -> float:
    scheduler = make_scheduler("unipc", shift)
    scheduler.set_timesteps(steps, device=latents.device)
    sync(latents.device)
    t = time.perf_counter()
    pipe.denoise(latents, context, scheduler, guidance)
    sync(latents.device)
    return time.perf_counter() - t


def top_kernels(pipe, latents, context, shift: float, guidance: float) -> None:
    from torch.profiler import ProfilerActivity, profile

    scheduler = make_scheduler("unipc", shift)
    scheduler.set_timesteps(3, device=latents.device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        pipe.denoise(latents, context, scheduler, guidance)
        sync(latents.device)
    per_kind: dict[str, dict[str, float]] = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kind = per_kind.setdefault(kernel_kind(e.name), {})
            kind[e.name] = kind.get(e.name, 0.0) + e.time_range.elapsed_us()
    for kind, names in sorted(per_kind.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"  {kind}: {sum(names.values()) / 3e3:.2f} ms a step")
        for name, us in sorted(names.items(), key=lambda kv: -kv[1])[:3]:
            print(f"      {us / 3e3:6.2f} ms  {name[:120]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"any of {', '.join(VARIANTS)} (default: all)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}: choose from {', '.join(VARIANTS)}")
    if not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU", file=sys.stderr)
        sys.exit(2)
    device, dtype = torch.device("cuda"), torch.bfloat16
    frames, height, width, steps, guidance, shift = 17, 352, 640, 40, 3.0, 5.0
    rate = matmul_rate(device, dtype)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; bf16 matmul burst {rate:.1f} TFLOP/s")
    model = ReviseModel.from_preset("wan2.1-1.3b", device=device, dtype=dtype)
    pipe = ReviseEditPipeline(model).enable_fast_path().enable_fp8(attention=True, fast_accum=True)
    dit = model.transformer
    c = dit.config
    with torch.no_grad():
        video = torch.rand(1, 3, frames, height, width, device=device) * 2 - 1
        latents = model.encode_video(video.to(dtype))
        cond, uncond = model.build_context(latents, video.to(dtype), ["make it night"])
        context = torch.cat([cond, uncond])
        noise = torch.randn(latents.shape, device=device, generator=torch.Generator(device).manual_seed(0))
    tokens = latents.shape[2] * (latents.shape[3] // c.patch_size[1]) * (latents.shape[4] // c.patch_size[2])
    flops = dit_flops(tokens, context.shape[1], c.num_attention_heads * c.attention_head_dim, c.ffn_dim,
                      c.num_layers, c.text_dim)
    once = sum(flops[k] for k in ONCE)
    loop_flops = steps * 2 * (sum(flops.values()) - once) + 2 * once
    print(f"loop: {loop_flops / 1e15:.4f} PFLOP (attention {sum(flops[k] for k in ATTENTION) / sum(flops.values()):.0%})")
    results = {}
    for name in args.variants:
        v = VARIANTS[name]
        compiled_blocks.MAX_PERSISTENT_ROW = v["rows"]
        fp8_attention.AUTOTUNE = v["autotune"]
        fp8_attention._GRAPHS.clear()
        torch._dynamo.reset()
        with torch.no_grad():
            t = time.perf_counter()
            loop_seconds(pipe, noise, context, shift, 2, guidance)          # compiles
            warm = time.perf_counter() - t
            times = [loop_seconds(pipe, noise, context, shift, steps, guidance) for _ in range(args.repeats)]
            rate = max(rate, matmul_rate(device, dtype))
            best = min(times)
            results[name] = best
            print(f"\n{name} {v}: loop {best:.3f} s (runs {', '.join(f'{x:.3f}' for x in times)}; compile + "
                  f"2 steps {warm:.0f} s)")
            top_kernels(pipe, noise, context, shift, guidance)
            if v["autotune"]:
                for layout, timings in fp8_attention.plan_timings().items():
                    print(f"  cuDNN plans for q, k, v, out {[list(x) for x in layout[1:]]}:")
                    for plan, us in timings:
                        print(f"    {us:9.1f} us  {plan}")
    bound = loop_flops / rate / 1e12
    print(f"\nFLOP-bound loop time at the highest bf16 burst rate read ({rate:.1f} TFLOP/s): {bound:.3f} s")
    print("| variant | loop s | / FLOP bound |\n| --- | --- | --- |")
    for name, s in results.items():
        print(f"| {name} | {s:.3f} | {s / bound:.2f}x |")


if __name__ == "__main__":
    main()
