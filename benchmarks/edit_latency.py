"""One edit at the released inference setting, timed stage by stage, against diffusers' WanPipeline.

17 frames, 352x640, 40 UniPC steps, guidance 3.0 (released convention, usual CFG 4.0), shift 5.0,
the `wan2.1-1.3b` preset in bf16 (random weights: speed does not depend on their values).
In the same run: the device's bf16 matrix rate, measured before and after the rows both as a
burst of 50 matmuls (~70 ms, boost clocks) and sustained for 3 s (about as long as the loop runs);
the table divides by the higher of each kind and shows both ratios. Also the DiT's FLOP count at
these shapes (printed with its derivation), and diffusers' stock `WanPipeline` denoising the same latent shape with the same
transformer, steps and guidance (prompt embeddings given, output_type="latent").

Rows: our pipeline eager (context K/V computed once and the sampler run from its precomputed
coefficients, as always), then with the fast path (`ReviseEditPipeline.enable_fast_path`) built up:
compiled blocks with the "auto" attention backend (cuDNN on Hopper), then fused projections, then
the feed-forward's GELU in the matmul epilogue, then q and k prepared in one pass (RMSNorm, RoPE,
heads-major layout: `revise/models/norm_rope.py`) and v handed to attention as a strided view;
each row's edit is compared with the previous row's (same seed). `--profile` adds the GPU time of three
denoising steps of the last fast-path row by kernel kind (matmuls, attention, fused elementwise,
other) with each kind's achieved TFLOP/s, and the GPU's idle share.

#24 (24 GB cards): ``--offload`` adds stage-offload rows after the first (every stage moved; the
components kept that fit ``--offload-budget-gib``; the same with 8-bit VLM and T5 weights), each
under ``--memory-cap-gib`` (``torch.cuda.set_per_process_memory_fraction``: a smaller card), with a
table of what each kept, moved and peaked at against the goal; ``--fp8`` adds FP8 linears to the last
resident row (with ``--compile``, then FP8 attention as well: cuDNN's FP8 kernel, then the FP8
matmuls' fast accumulation), and every row's
relative error of one velocity and of the final latents against the first row's (same noise). Every row shows its total time over the first row's.

    python benchmarks/edit_latency.py [--compile] [--profile] [--compile-mode MODE] [--repeats 3] [--json FILE]
    python benchmarks/edit_latency.py --compile --fast-path-only --no-stock --offload --memory-cap-gib 24 --fp8
    python benchmarks/edit_latency.py --preset tiny --frames 5 --height 64 --width 64 --steps 2 \
        --offload --fp8 --no-stock                                                    # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 0.0, n: int = 8192,
                iters: int = 50) -> float:
    """Measured dense matmul TFLOP/s on this device: ``iters`` back-to-back n x n x n matmuls (a burst
    of ~70 ms on an H100), or as many as fill ``seconds`` (the GPU's sustained clocks)."""
    if device.type != "cuda":
        n, iters, seconds = 1024, 5, 0.0
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    done, t = 0, time.perf_counter()
    while True:
        for _ in range(iters):
            a @ b
        done += iters
        sync(device)
        if time.perf_counter() - t >= seconds:
            break
    return 2 * n**3 * done / (time.perf_counter() - t) / 1e12


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def dit_flops(tokens: int, context: int, dim: int, ffn: int, layers: int, text_dim: int) -> dict[str, float]:
    """Matmul FLOPs (2 per multiply-add) of one DiT forward of one sample, by part."""
    return {
        "self-attn q,k,v,o projections 8*L*d^2": layers * 8 * tokens * dim**2,
        "self-attn scores and values 4*L^2*d": layers * 4 * tokens**2 * dim,
        "cross-attn q,o projections 4*L*d^2": layers * 4 * tokens * dim**2,
        "cross-attn k,v projections of the context 4*C*d^2": layers * 4 * context * dim**2,
        "cross-attn scores and values 4*L*C*d": layers * 4 * tokens * context * dim,
        "feed-forward 4*L*d*f": layers * 4 * tokens * dim * ffn,
        "context embedder 2*C*(t+d)*d": 2 * context * (text_dim + dim) * dim,
    }


SUSTAIN_S = 3.0
KV = "cross-attn k,v projections of the context 4*C*d^2"
EMBED = "context embedder 2*C*(t+d)*d"
ONCE = (KV, EMBED)          # what depends on the context alone: computed once per edit
ATTENTION = ("self-attn scores and values 4*L^2*d", "cross-attn scores and values 4*L*C*d")


def kernel_kind(name: str) -> str:
    n = name.lower()
    if "norm_rope" in n:                 # revise/models/norm_rope.py
        return "q/k norm+RoPE (one-pass kernel)"
    if "gelu_quantize" in n:             # revise/models/fp8_ffn.py
        return "FP8 GELU+row quantization (one-pass kernel)"
    if n.startswith("triton"):           # compiled fusions (their names list the ops they fused)
        return "fused elementwise (compiled)"
    if any(k in n for k in ("fmha", "flash", "attention", "attn", "sdpa", "cudnn_generated")):
        return "attention"
    if any(k in n for k in ("gemm", "xmma", "nvjet", "cutlass", "matmul", "sm90_", "sm80_")):
        return "matmul"
    return "other"


def profile_loop(pipe, latents, context, scheduler_factory, guidance: float, steps: int, flops: dict[str, float]) -> None:
    """GPU time of ``steps`` denoising steps by kernel kind, against the wall time of the same steps."""
    from torch.profiler import ProfilerActivity, profile

    device = latents.device
    scheduler = scheduler_factory()
    scheduler.set_timesteps(steps, device=device)
    sync(device)
    t = time.perf_counter()
    pipe.denoise(latents, context, scheduler, guidance)
    sync(device)
    wall = time.perf_counter() - t
    cuda = device.type == "cuda"
    if cuda:        # the loop must never make the host wait: count the synchronising calls of one run
        import warnings

        scheduler = scheduler_factory()
        scheduler.set_timesteps(steps, device=device)
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.denoise(latents, context, scheduler, guidance)
        torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
        print(f"host-synchronising calls in one {steps}-step denoise call, its set-up included "
              f"(torch.cuda.set_sync_debug_mode): {len(syncs)}"
              + (f", e.g. {syncs[0]}" if syncs else ""))
    scheduler = scheduler_factory()
    scheduler.set_timesteps(steps, device=device)
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        pipe.denoise(latents, context, scheduler, guidance)
        sync(device)
    kinds: dict[str, float] = {}
    top: dict[str, float] = {}
    for e in prof.events():      # GPU kernels; on the CPU (a smoke run) the top-level operators
        if (e.device_type != torch.autograd.DeviceType.CUDA) if cuda else (e.cpu_parent is not None):
            continue
        us = e.time_range.elapsed_us()
        kinds[kernel_kind(e.name)] = kinds.get(kernel_kind(e.name), 0.0) + us
        top[e.name] = top.get(e.name, 0.0) + us
    busy = sum(kinds.values()) / 1e6
    calls = steps * 2 * latents.shape[0]            # sample-forwards
    attn_flops = sum(flops[k] for k in ATTENTION) * calls
    mm_flops = (sum(flops.values()) - sum(flops[k] for k in ATTENTION) - sum(flops[k] for k in ONCE)) * calls
    print(f"\nprofile of {steps} denoising steps: wall {wall:.3f} s, GPU kernels {busy:.3f} s "
          f"(GPU idle {max(0.0, 1 - busy / wall):.1%})")
    print("| kernel kind | GPU s | share | TFLOP/s on its FLOPs |")
    print("| --- | --- | --- | --- |")
    for kind, us in sorted(kinds.items(), key=lambda kv: -kv[1]):
        rate = {"matmul": mm_flops, "attention": attn_flops}.get(kind)
        rate_txt = f"{rate / (us / 1e6) / 1e12:.0f}" if rate else ""
        print(f"| {kind} | {us / 1e6:.3f} | {us / 1e6 / busy:.1%} | {rate_txt} |")
    print("top kernels:")
    for name, us in sorted(top.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {us / 1e6:.3f} s  {kernel_kind(name):>10}  {name[:110]}")
    if cuda:
        idle_before(prof)


def idle_before(prof, top: int = 8) -> None:
    """Where the GPU waited: the idle time before each kernel (from the end of all earlier kernels to
    its start), summed by that kernel's name. Idle before a kernel is the host launching it late."""
    spans = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                   if e.device_type == torch.autograd.DeviceType.CUDA)
    waits: dict[str, list[float]] = {}
    end = spans[0][0] if spans else 0
    for start, stop, name in spans:
        if start > end:
            row = waits.setdefault(name, [0.0, 0])
            row[0] += start - end
            row[1] += 1
        end = max(end, stop)
    total = sum(w for w, _ in waits.values())
    print(f"GPU idle between kernels: {total / 1e6:.3f} s; the kernels it waited for most:")
    for name, (us, n) in sorted(waits.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {us / 1e6:.3f} s over {n} waits  {kernel_kind(name):>10}  {name[:100]}")
    memset_users([name for _, _, name in spans])


def memset_users(names: list[str], top: int = 8) -> None:
    """Which kernel runs right after the memsets, counted (memsets, runs of them): a library that
    clears a buffer (a workspace, an amax) just before its own kernel shows up here. ``names`` are
    the GPU's kernels in the order they started."""
    after: dict[str, list[int]] = {}
    pending = 0
    for name in names:
        if name.startswith("Memset"):
            pending += 1
        elif pending:
            row = after.setdefault(name, [0, 0])
            row[0] += pending
            row[1] += 1
            pending = 0
    if after:
        print("memsets, by the kernel that runs right after them (memsets, runs of memsets):")
        for name, (n, runs) in sorted(after.items(), key=lambda kv: -kv[1][0])[:top]:
            print(f"  {n:6d} {runs:6d}  {kernel_kind(name):>10}  {name[:100]}")


GIB = 2**30


def encoders_note(pipe) -> str:
    return " (int8 encoders)" if pipe.quantized.get("encoders") else ""


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


class Accuracy:
    """Each row's numbers against the first row's (the bf16 DiT, eager): the relative error (L2 norm
    of the difference over the reference's) of one velocity, a DiT forward of both branches at
    timestep 500 on fixed noise, and of the final latents after the whole loop from that noise, with
    the contexts of the benchmark's clip computed once."""

    def __init__(self, pipe, video, instruction, kw: dict):
        self.kw = {k: v for k, v in kw.items()}
        self.video, self.instruction = video, instruction
        self.size = dict(num_frames=kw["num_frames"], height=kw["height"], width=kw["width"])
        cond, uncond = pipe.encode_context(video, instruction, **self.size)
        self.cond, self.uncond = cond.cpu(), uncond.cpu()
        shape = (1, *pipe.latent_shape(kw["num_frames"], kw["height"], kw["width"]))
        self.noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(1234))
        self.reference = self.outputs(pipe)

    @torch.no_grad()
    def outputs(self, pipe) -> tuple[torch.Tensor, torch.Tensor]:
        from revise.models.context_kv import cached_context_kv

        with pipe.stage("denoise"):
            dit = pipe.model.transformer
            ctx = torch.cat([self.cond, self.uncond]).to(pipe.device, dit.dtype)
            x = self.noise.to(pipe.device, dit.dtype)
            t = torch.full((2,), 500.0, device=pipe.device)
            with cached_context_kv(dit, ctx):
                velocity = dit(torch.cat([x, x]), t, ctx, return_dict=False)[0].float().cpu()
        latents = pipe(context=self.cond, negative_context=self.uncond, latents=self.noise, output_type="latent",
                       **self.kw).video.float().cpu()
        return velocity, latents

    def context_error(self, pipe) -> float:
        """The conditional context's relative error now (e.g. with 8-bit encoders) against the first."""
        cond, _ = pipe.encode_context(self.video, self.instruction, **self.size)
        err = rel_error(cond.cpu(), self.cond)
        print(f"conditional context (VLM, T5, connectors) with{encoders_note(pipe)} vs the first row's: "
              f"relative error {err:.2e}", flush=True)
        return err

    def measure(self, pipe) -> dict[str, float]:
        velocity, latents = self.outputs(pipe)
        return {"velocity_rel_err": rel_error(velocity, self.reference[0]),
                "latents_rel_err": rel_error(latents, self.reference[1])}

    @staticmethod
    def print_table(rows: list[dict]) -> None:
        print(f"\n| pipeline | velocity rel. error vs the first row (one DiT forward) | final latents rel. error "
              f"(whole loop, same noise) |")
        print("| --- | --- | --- |")
        for r in rows:
            if "velocity_rel_err" in r:
                print(f"| {r['label']} | {r['velocity_rel_err']:.2e} | {r['latents_rel_err']:.2e} |")


def set_memory_cap(device: torch.device, gib: float | None) -> None:
    """Cap this process's GPU memory at ``gib`` (None: no cap), as a smaller card would."""
    if device.type != "cuda":
        return
    torch.cuda.empty_cache()
    index = device.index if device.index is not None else torch.cuda.current_device()  # the call wants an index
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(1.0 if gib is None else min(1.0, gib * GIB / total), index)


def offload_rows(pipe, run_ours, args, device: torch.device, accuracy: "Accuracy | None") -> list[dict]:
    """Stage offload beside the resident row, each under ``--memory-cap-gib``: every component moved
    per edit; those kept on the GPU that fit a ``--offload-budget-gib`` peak (less the activation
    reserve); and the same with 8-bit VLM and T5 weights. The whole model goes back to the GPU after."""
    from revise.pipelines.stages import COMPONENTS, module_bytes, plan_residency, stage_peak

    model = pipe.model
    budget = (args.offload_budget_gib - args.activation_reserve_gib) * GIB
    rows = []

    def row(label: str, keep) -> dict:
        sizes = {n: module_bytes(getattr(model, n)) for n in COMPONENTS}
        keep = tuple(keep if keep is not None else plan_residency(sizes, budget))
        pipe.enable_model_cpu_offload(device, keep=keep)
        extra = {"offload": True, "keep": list(keep), "cap_gib": args.memory_cap_gib,
                 "weights_on_gpu_gib": stage_peak(sizes, keep) / GIB,
                 "moved_per_edit_gb": (sum(sizes.values()) - sum(sizes[k] for k in keep)) / 1e9}
        set_memory_cap(device, args.memory_cap_gib)
        try:
            return run_ours(label, by="total", extra=extra)
        finally:
            set_memory_cap(device, None)

    rows.append(row("revise, eager, offload: every stage moved", ()))
    planned = f"kept what fits a {args.offload_budget_gib:g} GiB peak"
    rows.append(row(f"revise, eager, offload: {planned}", None))
    pipe.quantize_encoders("int8")
    if accuracy is not None:
        accuracy.context_error(pipe)
    rows.append(row(f"revise (int8 encoders), eager, offload: {planned}", None))
    pipe.enable_model_cpu_offload(device, keep=COMPONENTS)         # all on the GPU again
    return rows


def print_offload_table(rows: list[dict], args) -> None:
    base = rows[0]
    cap = f"{args.memory_cap_gib:g} GiB" if args.memory_cap_gib else "none"
    print(f"\nStage offload (memory cap: {cap}; #24's goal: peak <= {args.offload_budget_gib:g} GiB at <= 1.15x "
          f"the resident edit's time)")
    print("| pipeline | kept on the GPU | weights on the GPU at once (GiB) | moved per edit (GB) | peak GiB | "
          "total (s) | total / resident | goal met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if not r.get("offload"):
            continue
        if r.get("oom") or "total" not in r:
            print(f"| {r['label']} | {', '.join(r.get('keep', [])) or 'nothing'} | | | out of memory | | | no |")
            continue
        ratio = r["total"] / base["total"]
        met = r["peak_gib"] <= args.offload_budget_gib and ratio <= 1.15
        print(f"| {r['label']} | {', '.join(r['keep']) or 'nothing'} | {r['weights_on_gpu_gib']:.1f} | "
              f"{r['moved_per_edit_gb']:.1f} | {r['peak_gib']:.1f} | {r['total']:.2f} | {ratio:.2f}x | "
              f"{'yes' if met else 'no'} |")


def fp8_row(pipe, run_ours, previous: str, device: torch.device, attention: bool = False,
            fast_accum: bool = False) -> dict:
    """The last resident configuration with the DiT's linears in FP8 (``enable_fp8``), with
    ``attention`` its attention too (``enable_fp8(attention=True)``: cuDNN's FP8 attention, on the fast
    path), with ``fast_accum`` the FP8 matmuls' fast accumulation; on the CPU in emulation (a smoke
    run), elsewhere refused where the GPU has no FP8."""
    from revise.errors import ReviseInputError

    what = ("fast accumulation (enable_fp8(attention=True, fast_accum=True))" if fast_accum
            else "FP8 attention (enable_fp8(attention=True))" if attention
            else "FP8 linears (enable_fp8(attention=False))")
    label = f"{previous}, + {what}"
    try:
        pipe.enable_fp8(allow_cpu=device.type == "cpu", attention=attention, fast_accum=fast_accum)
    except ReviseInputError as err:
        print(f"row '{label}' skipped: {err}")
        return {"label": label, "skipped": str(err)}
    try:
        return run_ours(label)
    except Exception as err:    # a kernel this device or build refuses: report it, keep the other rows
        why = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
        print(f"row '{label}' failed: {why}")
        return {"label": label, "skipped": why}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="also time the fast path (compiled blocks)")
    ap.add_argument("--profile", action="store_true",
                    help="GPU time by kernel kind of the last row (with --fp8: of the row before the FP8 rows and of each FP8 row)")
    ap.add_argument("--compile-mode", default=None,
                    help="torch.compile mode of the fast-path rows, e.g. max-autotune-no-cudagraphs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="wan2.1-1.3b")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--height", type=int, default=352)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-stock", action="store_true", help="leave out diffusers' WanPipeline row")
    ap.add_argument("--fast-path-only", action="store_true",
                    help="with --compile: one fast-path row (enable_fast_path()), not the options one by one")
    ap.add_argument("--offload", action="store_true",
                    help="rows for stage offload beside the resident row: all components moved, those kept that "
                         "fit --offload-budget-gib, and the same with 8-bit encoder weights")
    ap.add_argument("--memory-cap-gib", type=float, default=None,
                    help="during the offload rows, cap this process's GPU memory (set_per_process_memory_fraction), "
                         "e.g. 24 to emulate a 24 GB card")
    ap.add_argument("--offload-budget-gib", type=float, default=20.0,
                    help="the peak the kept components are planned for (default: 20, #24's goal)")
    ap.add_argument("--activation-reserve-gib", type=float, default=3.0,
                    help="of that budget, what is left for activations (default: 3)")
    ap.add_argument("--fp8", action="store_true",
                    help="an FP8-linears row (after the fast path with --compile, then one with FP8 attention too) "
                         "and the relative error of the velocity and of the final latents against bf16, same noise")
    args = ap.parse_args()

    from diffusers import WanPipeline

    from revise import ReviseEditPipeline, ReviseModel
    from revise.pipelines.edit import make_scheduler

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    frames, height, width, steps, g, shift = args.frames, args.height, args.width, args.steps, 3.0, 5.0
    instruction = "show the scene one second later"
    burst, sustained = [matmul_rate(device, dtype)], [matmul_rate(device, dtype, seconds=SUSTAIN_S)]
    rate = burst[0]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}; measured {dtype} matmul: {burst[0]:.1f} TFLOP/s as a burst, "
          f"{sustained[0]:.1f} sustained for {SUSTAIN_S:.0f} s")
    model = ReviseModel.from_preset(args.preset, device=device, dtype=dtype)
    pipe = ReviseEditPipeline(model)
    video = torch.rand(1, 3, frames, height, width, device=device) * 2 - 1
    c = model.transformer.config
    lat_f, lat_h, lat_w = (frames - 1) // 4 + 1, height // 8, width // 8
    tokens = lat_f * (lat_h // c.patch_size[1]) * (lat_w // c.patch_size[2])
    ctx_len = model.context_config.max_context_len
    flops = dit_flops(tokens, ctx_len, c.num_attention_heads * c.attention_head_dim, c.ffn_dim, c.num_layers, c.text_dim)
    forward = sum(flops.values())
    # what the loop executes: the context's embedding and cross-attention K/V once per edit, the rest every step
    once = sum(flops[k] for k in ONCE)
    loop_flops = steps * 2 * (forward - once) + 2 * once
    print(f"DiT FLOPs per forward per sample (L={tokens} video tokens, C={ctx_len} context tokens, "
          f"d={c.num_attention_heads * c.attention_head_dim}, f={c.ffn_dim}, {c.num_layers} layers):")
    for k, v in flops.items():
        print(f"  {k}: {v / 1e9:.1f} GFLOP")
    print(f"  = {forward / 1e12:.3f} TFLOP (patch embedding, modulation, norms and the output head are under "
          "0.1% and left out)")
    bound = loop_flops / rate / 1e12
    print(f"denoising loop: {steps} steps x 2 branches x {(forward - once) / 1e12:.3f} TFLOP + the context's "
          f"embedding and cross-attention K/V once ({2 * once / 1e12:.3f} TFLOP) = {loop_flops / 1e15:.4f} PFLOP; "
          f"at {rate:.1f} TFLOP/s that is {bound:.3f} s (the stock loop, both every step: "
          f"{steps * 2 * forward / 1e15:.4f} PFLOP)")

    kw_edit = dict(num_frames=frames, height=height, width=width, num_inference_steps=steps, guidance_scale=g,
                   shift=shift, progress=False)

    def run_ours(label: str, by: str = "denoise", extra: dict | None = None) -> dict:
        """Best of ``--repeats`` edits after a warm-up, by the denoising loop's time (``by="total"``: the
        whole edit's, for the offload rows); an edit that runs out of memory is a row saying so."""
        try:
            pipe(video, instruction, **kw_edit)                            # warm-up (and compile)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            runs = [pipe(video, instruction, seed=i, **kw_edit).timings for i in range(args.repeats)]
        except torch.OutOfMemoryError as err:
            row = {"label": label, **(extra or {}), "oom": True, "error": str(err).split(". Of the allocated")[0][:300]}
            print(json.dumps(row), flush=True)
            torch.cuda.empty_cache()
            return row
        best = min(runs, key=lambda t: sum(t.values()) if by == "total" else t[by])
        peak = torch.cuda.max_memory_allocated() / 1024**3 if device.type == "cuda" else float("nan")
        reserved = torch.cuda.max_memory_reserved() / 1024**3 if device.type == "cuda" else float("nan")
        row = {"label": label, **best, "total": sum(best.values()), "peak_gib": peak, "peak_reserved_gib": reserved,
               "loop_tflops": loop_flops / best["denoise"] / 1e12, **(extra or {})}
        if accuracy is not None:
            row.update(accuracy.measure(pipe))
        print(json.dumps(row), flush=True)
        return row

    accuracy = Accuracy(pipe, video, instruction, kw_edit) if args.fp8 else None
    rows = [run_ours("revise, eager (default SDPA)")]
    if args.offload:
        rows += offload_rows(pipe, run_ours, args, device, accuracy)

    # diffusers' stock WanPipeline, same transformer, shape, steps and guidance (usual CFG scale g + 1)
    with torch.no_grad():
        latents = model.encode_video(video.to(dtype))
        cond, uncond = model.build_context(latents, video.to(dtype), [instruction])
    stock = WanPipeline(tokenizer=model.tokenizer, text_encoder=model.text_encoder, vae=model.vae,
                        transformer=model.transformer, scheduler=make_scheduler("unipc", shift))
    kw = dict(prompt_embeds=cond, negative_prompt_embeds=uncond, height=height, width=width, num_frames=frames,
              num_inference_steps=steps, guidance_scale=g + 1, output_type="latent")
    stock_s = None
    if not args.no_stock:
        stock(**kw)
        times = []
        for i in range(args.repeats):
            sync(device)
            t = time.perf_counter()
            stock(**kw, generator=torch.Generator(device).manual_seed(i))
            sync(device)
            times.append(time.perf_counter() - t)
        stock_s = min(times)
        print(json.dumps({"label": "diffusers WanPipeline (denoising only)", "denoise": stock_s}), flush=True)

    if args.compile:
        t = time.perf_counter()
        kw = dict(num_frames=frames, height=height, width=width, num_inference_steps=steps, guidance_scale=g,
                  shift=shift, progress=False, seed=0)
        edits = {"eager": pipe(video, instruction, **kw).video}
        mode = f" ({args.compile_mode})" if args.compile_mode else ""
        # the fast path built up one option at a time (enable_fast_path is idempotent per option)
        off = dict(fuse_projections=False, fuse_gelu=False, fuse_qk_norm_rope=False)
        steps_up = [("compiled blocks" + mode, dict(off, compile_mode=args.compile_mode)),
                    ("+ fused projections", dict(off, compile=False, fuse_projections=True)),
                    ("+ GELU in the matmul epilogue", dict(off, compile=False, fuse_projections=True, fuse_gelu=True)),
                    ("+ one-pass q/k norm+RoPE (enable_fast_path())", dict(compile=False))]
        if args.fast_path_only:
            steps_up = [("compiled fast path (enable_fast_path())" + mode, dict(compile_mode=args.compile_mode))]
        label = "revise"
        for what, options in steps_up:
            pipe.enable_fast_path(**options)
            attention = getattr(model.transformer.blocks[0].attn1.processor, "_attention_backend", None) or "default"
            attention = getattr(attention, "value", attention)          # diffusers gives an enum
            label += f", {what}" + (f", {attention} attention" if what.startswith("compiled") else "")
            label = label.replace("revise, ", f"revise{encoders_note(pipe)}, ", 1)
            try:
                rows.append(run_ours(label))
                edits[what] = pipe(video, instruction, **kw).video
            except Exception as err:    # an option this device cannot run: report it, keep the rows so far
                print(f"row '{label}' failed: {type(err).__name__}: {str(err).splitlines()[0]}")
                break
        names = list(edits)
        for a, b in zip(names, names[1:]):
            print(f"edit with '{b}' vs '{a}', same seed: max |difference| {(edits[b] - edits[a]).abs().max():.2e}")
        print(f"compile + warm-ups + runs took {time.perf_counter() - t:.0f} s")

    def profile_now(label: str) -> None:
        print(f"\n[profile] {label}")
        with torch.no_grad():
            noise = torch.randn(latents.shape, device=device)
            profile_loop(pipe, noise, torch.cat([cond, uncond]), lambda: make_scheduler("unipc", shift), g, 3, flops)

    if args.fp8:
        last = rows[-1]["label"] if args.compile else f"revise{encoders_note(pipe)}, eager (default SDPA)"
        if args.profile:            # the bf16 row the FP8 rows start from, then each FP8 row that ran
            profile_now(last)
        variants = [{}] + ([{"attention": True}, {"attention": True, "fast_accum": True}] if args.compile else [])
        for kw in variants:
            rows.append(fp8_row(pipe, run_ours, rows[-1]["label"] if kw else last, device, **kw))
            if args.profile and "total" in rows[-1]:
                profile_now(rows[-1]["label"])

    # The burst rate measured at the start varied 744-808 TFLOP/s between runs on H100s of one kind, and
    # fell by up to 8% after minutes of work, while the loops' times varied less: measure both kinds again
    # now, and divide by the higher of each (the stricter bound).
    burst.append(matmul_rate(device, dtype))
    sustained.append(matmul_rate(device, dtype, seconds=SUSTAIN_S))
    rate, rate_sustained = max(burst), max(sustained)
    bound, bound_sustained = loop_flops / rate / 1e12, loop_flops / rate_sustained / 1e12
    print(f"\nmeasured {dtype} matmul rate (TFLOP/s): burst {burst[0]:.1f} before the rows, {burst[1]:.1f} after; "
          f"sustained for {SUSTAIN_S:.0f} s {sustained[0]:.1f} before, {sustained[1]:.1f} after. FLOP-bound loop time: "
          f"{bound:.3f} s at the higher burst rate, {bound_sustained:.3f} s at the higher sustained rate")
    base = rows[0]
    print(f"\n| pipeline | VLM | text | VAE encode | denoise ({steps} steps) | VAE decode | total | peak GiB | "
          f"total / resident eager | loop TFLOP/s | loop / FLOP-bound time (burst rate) | (sustained rate) | "
          f"vs WanPipeline |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if "total" not in r:
            print(f"| {r['label']} | {'out of memory' if r.get('oom') else 'skipped: ' + r.get('skipped', '')} "
                  f"| | | | | | | | | | | |")
            continue
        stock_txt = f"{stock_s / r['denoise']:.2f}x faster" if stock_s else ""
        print(f"| {r['label']} | {r['vlm']:.3f} | {r['text']:.3f} | {r['vae_encode']:.3f} | {r['denoise']:.3f} | "
              f"{r['vae_decode']:.3f} | {r['total']:.2f} | {r['peak_gib']:.1f} | {r['total'] / base['total']:.2f}x | "
              f"{r['loop_tflops']:.0f} | {r['denoise'] / bound:.2f}x | {r['denoise'] / bound_sustained:.2f}x | {stock_txt} |")
    stock_flops = steps * 2 * forward
    if stock_s:
        print(f"| diffusers WanPipeline | | | | {stock_s:.3f} | | | | | {stock_flops / stock_s / 1e12:.0f} | "
              f"{stock_s / (stock_flops / rate / 1e12):.2f}x | {stock_s / (stock_flops / rate_sustained / 1e12):.2f}x "
              f"| 1.00x |")
    print("(loop / FLOP-bound time: the loop's time over the time its executed FLOPs need at the measured "
          "matmul rate; for WanPipeline, its own FLOPs. total / resident eager: the edit's time over the first "
          "row's, the whole model on the GPU in bf16)")
    if args.offload:
        print_offload_table(rows, args)
    if accuracy is not None:
        accuracy.print_table(rows)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "matmul_tflops": rate, "matmul_tflops_burst": burst,
                       "matmul_tflops_sustained": sustained, "sustain_s": SUSTAIN_S,
                       "loop_pflop": loop_flops / 1e15, "rows": rows,
                       "wanpipeline_s": stock_s}, f, indent=2)

    if args.profile and not args.fp8:
        profile_now(rows[-1]["label"])


if __name__ == "__main__":
    main()
