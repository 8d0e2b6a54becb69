"""The FP8 denoising loop under kernel-choice variants, A/B on one GPU (issue #24's <= 1.0x goal).

The released setting (17 frames, 352x640, 40 UniPC steps, CFG batched, the `wan2.1-1.3b` preset in
bf16, random weights). First the bf16 fast path (``enable_fast_path()``) as the reference, then
``enable_fp8(attention=True, fast_accum=True)`` with the blocks recompiled for each variant (Dynamo
reset, Inductor caches off):

    inductor_ffn  the feed-forward's GELU + row-wise quantization over 8960 values compiled by Inductor
                  (``fp8_ffn.kernel_applies`` off): a looped reduction that reads each row twice (the
                  loop of 2026-12-07 morning, 2.103 s on an H100)
    base          that step as one Triton kernel reading each row once (``fp8_ffn.py``, the default),
                  the Triton kernels encoding e4m3 by integer arithmetic; cuDNN's FP8 attention runs
                  the plan its heuristics rank first
    native_e4m3   + the GPU's own e4m3 conversion in those kernels (``triton_e4m3.NATIVE_CAST``, the
                  default since 2026-12-07)
    tuned         base + every cuDNN FP8 attention plan timed on the first call, the fastest kept
                  (``fp8_attention.AUTOTUNE``; on an H100 on 2026-12-07 no faster than base)
    cdt           native_e4m3 compiled with Inductor's coordinate-descent tuning of its kernels' block
                  sizes and warps
    max_autotune  native_e4m3 compiled as mode "max-autotune-no-cudagraphs" (Triton matmul templates,
                  FP8 ones included, timed against cuBLAS, with elementwise work fused into them; slow
                  to compile)
    graph         native_e4m3 + the DiT call of each step replayed from one CUDA graph, captured in the
                  warm-up and kept for the timed loops (``revise/pipelines/cuda_graph.py``; the FP8
                  default since 2026-12-07 run 6, every other row sets ``cuda_graph=False``)
    qk_1warp      native_e4m3 with the q/k norm+RoPE kernel at 1 warp a program (``norm_rope.WARPS``;
                  the FP8 default since run 6)
    qk_2warps     the same at 2 warps (the default before run 6)
    qk_4warps     the same at 4 warps
    pad           (to join to another) self-attention's q, k, v stored at 4480 tokens, the 4400 real ones
                  masked (``attention_ops.PAD_MULTIPLE = 128``): the package's default since run 9c
                  (1.786 s -> 1.777 s on an H100); ``nopad`` turns it off
    vbound        (to join to another) self-attention's V quantized at a scale from a bound on its values
                  (``attention_ops.VALUE_BOUND``: the largest row norm of the Q/K/V input, found in the
                  pass that already reads it, times the largest V weight row norm) instead of V's own
                  largest magnitude, a pass over V: the default since run 9c (1.777 s -> 1.754 s);
                  ``novbound`` turns it off
    fepilogue     (to join to another) the feed-forward's up-projection, GELU and e4m3 output as one
                  cuBLASLt matmul with the GELU in its epilogue, the output at one scale from a bound
                  (``fp8_ffn.use_gelu_epilogues``, ``fp8_gelu_matmul.py``; needs nvmath-python): no
                  GELU pass at all, the up-projection's input and weight at one scale each (cuBLASLt
                  writes e4m3 from no other). The default where nvmath-python imports since run 9c
                  (1.754 s -> 1.713 s); ``noepilogue`` turns it off. It requantizes the
                  up-projections' weights for good, so the rows without it run first
    autotune      (to join to another) every cuDNN FP8 attention plan timed on the first call at each
                  layout, the fastest kept (``graph+autotune``)

Names joined by ``+`` make one row of their options together (``graph+qk_2warps``: the kept CUDA
graph with the 2-warp q/k kernel); a later name's settings win. What a row does not name is the
package's default: since run 9c padding, V's bound and the GELU epilogue (where nvmath-python
imports), so run 9c's ``graph`` is ``graph+nopad+novbound+noepilogue`` now.

Each row prints the loop's seconds (best of ``--repeats``, after a warm-up that compiles), its ratio to
the FLOP-bound time at the highest bf16 matmul rate read in the run, the relative error of its final
latents against the bf16 fast path's (same noise and context), and the GPU time of ``--profile-steps``
steps by kernel kind with the top kernels (``edit_latency.profile_loop``).

    python benchmarks/fp8_loop_variants.py [inductor_ffn base native_e4m3 tuned cdt max_autotune graph
        qk_1warp qk_2warps qk_4warps graph+qk_2warps ...] [--repeats 2] [--profile-steps 3] [--host-profile]  # Hopper

``--profile-steps 40`` profiles a whole loop: its GPU-idle share is then the loop's own, and the
profile ends with the kernels the GPU waited for longest (idle before them: the host launching them
late). With ``graph`` the bf16 loop is also timed with the CUDA graph, and each graph row then times
one loop that captures its graph afresh (what the first edit of a shape pays beyond compiling).

"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402
from torch._inductor import config as inductor_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_latency import ATTENTION, ONCE, dit_flops, matmul_rate, profile_loop, rel_error, sync  # noqa: E402

from revise import ReviseEditPipeline, ReviseModel  # noqa: E402
from revise.models import attention_ops, fp8_attention, fp8_ffn, norm_rope, triton_e4m3  # noqa: E402
from revise.models.fp8_gelu_matmul import nvmath_available  # noqa: E402
from revise.pipelines.edit import make_scheduler  # noqa: E402

VARIANTS = {
    "inductor_ffn": {"ffn_kernel": False, "native_e4m3": False, "autotune": False},
    "base": {"ffn_kernel": True, "native_e4m3": False, "autotune": False},
    "native_e4m3": {"ffn_kernel": True, "native_e4m3": True, "autotune": False},
    "tuned": {"ffn_kernel": True, "native_e4m3": False, "autotune": True},
    "cdt": {"ffn_kernel": True, "native_e4m3": True, "autotune": False,
            "inductor": {"coordinate_descent_tuning": True}},
    "max_autotune": {"ffn_kernel": True, "native_e4m3": True, "autotune": False,
                     "inductor": {"max_autotune": True, "coordinate_descent_tuning": True}},
    "graph": {"ffn_kernel": True, "native_e4m3": True, "autotune": False, "cuda_graph": True},
    "qk_1warp": {"ffn_kernel": True, "native_e4m3": True, "autotune": False, "qk_warps": 1},
    "qk_2warps": {"ffn_kernel": True, "native_e4m3": True, "autotune": False, "qk_warps": 2},
    "qk_4warps": {"ffn_kernel": True, "native_e4m3": True, "autotune": False, "qk_warps": 4},
    "pad": {"pad": 128},
    "nopad": {"pad": 0},
    "vbound": {"value_bound": True},
    "novbound": {"value_bound": False},
    "fepilogue": {"gelu_epilogue": True},
    "noepilogue": {"gelu_epilogue": False},
    "autotune": {"autotune": True},
}


def variant(name: str) -> dict:
    """The options of a variant name, or of names joined by ``+`` (merged in order; KeyError if unknown)."""
    options: dict = {}
    for part in name.split("+"):
        options.update(VARIANTS[part])
    return options


ADOPT_ERROR_MARGIN = 1.10      # an option may raise the final latents' error by at most this factor


def adoption(results: dict[str, tuple[float, float]]) -> list[str]:
    """The rule set before the runs of #24, applied to every row that is another row plus one option
    (``FP8 graph+pad`` against ``FP8 graph``): the option is adopted if its best loop is faster and
    its final latents' error at most 10% higher, else it stays off (and its code goes). One line each."""
    lines = []
    for name, (secs, err) in results.items():
        parent, _, option = name.rpartition("+")
        if not parent or parent not in results:
            continue
        base_secs, base_err = results[parent]
        adopt = secs < base_secs and err <= ADOPT_ERROR_MARGIN * base_err
        lines.append(f"{option}: {secs:.3f} s against {base_secs:.3f} s ({secs - base_secs:+.3f} s), error "
                     f"{err:.2e} against {base_err:.2e} -> {'adopt' if adopt else 'do not adopt'}")
    return lines


def run_loop(pipe, latents, context, shift: float, steps: int, guidance: float) -> tuple[float, torch.Tensor]:
    """Seconds of one denoising loop, and its final latents."""
    scheduler = make_scheduler("unipc", shift)
    scheduler.set_timesteps(steps, device=latents.device)
    sync(latents.device)
    t = time.perf_counter()
    out = pipe.denoise(latents, context, scheduler, guidance)
    sync(latents.device)
    return time.perf_counter() - t, out


def measure(pipe, noise, context, shift: float, steps: int, guidance: float, repeats: int):
    """(best seconds, all seconds, seconds of the compiling warm-up of 2 steps, final latents)."""
    t = time.perf_counter()
    run_loop(pipe, noise, context, shift, 2, guidance)
    warm = time.perf_counter() - t
    runs = [run_loop(pipe, noise, context, shift, steps, guidance) for _ in range(repeats)]
    times = [r[0] for r in runs]
    return min(times), times, warm, runs[-1][1]


def host_profile(fn, top: int = 25) -> None:
    """``fn()`` under cProfile: the functions that took the most host time, by their own time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    print(f"host profile (cProfile, which slows the host itself) of one loop: {time.perf_counter() - t:.3f} s")
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    print("| own s | with callees s | calls | function |\n| --- | --- | --- | --- |")
    for (path, line, name), (_, calls, own, cum, _) in rows:
        print(f"| {own:.3f} | {cum:.3f} | {calls} | {Path(path).name}:{line} {name} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", default=list(VARIANTS),
                    help=f"any of {', '.join(VARIANTS)}, or several joined by '+' (default: each alone)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--host-profile", action="store_true",
                    help="also run each FP8 row's loop once under cProfile and print where the host's time goes")
    ap.add_argument("--profile-steps", type=int, default=3,
                    help="steps of each row's profiled denoise call (its once-per-call set-up included; "
                         "40 gives the loop's own GPU-idle share)")
    args = ap.parse_args()
    unknown = [part for v in args.variants for part in v.split("+") if part not in VARIANTS]
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
    pipe = ReviseEditPipeline(model).enable_fast_path()
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
    with torch.no_grad():
        best, times, warm, reference = measure(pipe, noise, context, shift, steps, guidance, args.repeats)
    results["bf16 fast path"] = (best, 0.0)
    print(f"\nbf16 fast path: loop {best:.3f} s (runs {', '.join(f'{x:.3f}' for x in times)}; compile + 2 steps "
          f"{warm:.0f} s)")
    with torch.no_grad():
        profile_loop(pipe, noise, context, lambda: make_scheduler("unipc", shift), guidance, args.profile_steps,
                         flops)
    if any(variant(v).get("cuda_graph") for v in args.variants):      # the bf16 loop with the CUDA graph too
        pipe.cuda_graph = True
        with torch.no_grad():
            best, times, warm, latents_out = measure(pipe, noise, context, shift, steps, guidance, args.repeats)
        err = rel_error(latents_out, reference)
        results["bf16 fast path + CUDA graph"] = (best, err)
        print(f"\nbf16 fast path + CUDA graph: loop {best:.3f} s (runs {', '.join(f'{x:.3f}' for x in times)}); "
              f"final latents vs without: {err:.2e} relative")
        pipe.cuda_graph = False
    pipe.enable_fp8(attention=True, fast_accum=True, gelu_epilogue=False)     # turned on by the rows with it
    kernel_applies = fp8_ffn.kernel_applies
    pad_default, bound_default = attention_ops.PAD_MULTIPLE, attention_ops.VALUE_BOUND
    epilogue_default = nvmath_available()       # what enable_fp8's gelu_epilogue="auto" does here
    # the epilogue's rows last: turning it on requantizes the up-projections' weights for good
    for name in sorted(args.variants, key=lambda name: variant(name).get("gelu_epilogue", epilogue_default)):
        v = variant(name)
        fp8_ffn.kernel_applies = kernel_applies if v.get("ffn_kernel", True) else (lambda x: False)
        fp8_attention.AUTOTUNE = v.get("autotune", False)
        triton_e4m3.NATIVE_CAST = v.get("native_e4m3", True)
        norm_rope.WARPS = v.get("qk_warps")
        attention_ops.PAD_MULTIPLE = v.get("pad", pad_default)
        attention_ops.VALUE_BOUND = v.get("value_bound", bound_default)
        if v.get("gelu_epilogue", epilogue_default):
            fp8_ffn.use_gelu_epilogues(pipe.model.transformer)
        pipe.release_graph()
        pipe.cuda_graph = v.get("cuda_graph", False)
        fp8_attention._GRAPHS.clear()
        torch._dynamo.reset()
        try:
            with torch.no_grad(), inductor_config.patch(v.get("inductor", {})):    # compiled in the warm-up
                best, times, warm, latents_out = measure(pipe, noise, context, shift, steps, guidance, args.repeats)
        except Exception as err:        # e.g. a kernel that does not compile here: report it, keep the others
            print(f"\nFP8 {name} {v}: failed: {type(err).__name__}: {str(err)[-1500:]}")
            continue
        with torch.no_grad():
            after = matmul_rate(device, dtype)
            print(f"bf16 matmul burst right after this row: {after:.1f} TFLOP/s")
            rate = max(rate, after)
            err = rel_error(latents_out, reference)
            results[f"FP8 {name}"] = (best, err)
            print(f"\nFP8 {name} {v}: loop {best:.3f} s (runs {', '.join(f'{x:.3f}' for x in times)}; compile + "
                  f"2 steps {warm:.0f} s); final latents vs bf16 fast path: {err:.2e} relative")
            profile_loop(pipe, noise, context, lambda: make_scheduler("unipc", shift), guidance, args.profile_steps,
                         flops)
            if pipe.cuda_graph:     # what a first edit of a shape pays: the loop that captures the graph
                pipe.release_graph()
                first, _ = run_loop(pipe, noise, context, shift, steps, guidance)
                print(f"loop that captures the CUDA graph (the first edit of a shape, blocks already compiled): "
                      f"{first:.3f} s, {first - best:+.3f} s over the best loop")
            if args.host_profile:
                host_profile(lambda: run_loop(pipe, noise, context, shift, steps, guidance))
            if v.get("autotune", False):
                for layout, timings in fp8_attention.plan_timings().items():
                    print(f"  cuDNN plans for q, k, v, out, real lengths {fp8_attention.layout_fields(layout)}:")
                    for plan, us in timings:
                        print(f"    {us:9.1f} us  {plan}")
    bound = loop_flops / rate / 1e12
    print(f"\nFLOP-bound loop time at the highest bf16 burst rate read ({rate:.1f} TFLOP/s): {bound:.3f} s")
    print("| loop | seconds | / FLOP bound | final latents vs bf16 fast path |\n| --- | --- | --- | --- |")
    for name, (secs, err) in results.items():
        print(f"| {name} | {secs:.3f} | {secs / bound:.2f}x | {err:.2e} |")
    decisions = adoption(results)
    if decisions:
        print("\nby the rule set before the run (faster, error at most 10% higher):")
        for line in decisions:
            print(f"  {line}")


if __name__ == "__main__":
    main()
