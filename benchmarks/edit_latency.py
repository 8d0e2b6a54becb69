"""One edit at the released inference setting, timed stage by stage, against diffusers' WanPipeline.

17 frames, 352x640, 40 UniPC steps, guidance 3.0 (released convention, usual CFG 4.0), shift 5.0,
the `wan2.1-1.3b` preset in bf16 (random weights: speed does not depend on their values).
In the same run: the device's bf16 matrix rate, the DiT's FLOP count at these shapes (printed with
its derivation), and diffusers' stock `WanPipeline` denoising the same latent shape with the same
transformer, steps and guidance (prompt embeddings given, output_type="latent").

    python benchmarks/edit_latency.py [--compile] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def matmul_rate(n: int = 8192, iters: int = 50) -> float:
    """Measured dense bf16 matmul TFLOP/s on this device."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (start.elapsed_time(end) / 1e3) / 1e12


def dit_flops(tokens: int, context: int, dim: int, ffn: int, layers: int, text_dim: int) -> tuple[float, str]:
    """Matmul FLOPs (2 per multiply-add) of one DiT forward of one sample."""
    per_layer = {
        "self-attn q,k,v,o projections 8*L*d^2": 8 * tokens * dim**2,
        "self-attn scores and values 4*L^2*d": 4 * tokens**2 * dim,
        "cross-attn q,o projections 4*L*d^2": 4 * tokens * dim**2,
        "cross-attn k,v projections of the context 4*C*d^2": 4 * context * dim**2,
        "cross-attn scores and values 4*L*C*d": 4 * tokens * context * dim,
        "feed-forward 4*L*d*f": 4 * tokens * dim * ffn,
    }
    embed = 2 * context * text_dim * dim + 2 * context * dim**2       # the context's text embedder
    total = layers * sum(per_layer.values()) + embed
    lines = [f"  {k}: {v / 1e9:.1f} GFLOP" for k, v in per_layer.items()]
    text = (f"DiT FLOPs per forward per sample (L={tokens} video tokens, C={context} context tokens, d={dim}, "
            f"f={ffn}, {layers} layers), per layer:\n" + "\n".join(lines) +
            f"\n  x {layers} layers + context embedder {embed / 1e9:.1f} GFLOP = {total / 1e12:.2f} TFLOP "
            "(patch embedding, modulation, norms and the output head are under 0.1% and left out)")
    return total, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="also time with the DiT's blocks torch.compile'd")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--attention", nargs="*", default=[],
                    help="diffusers attention backends to try as well, e.g. _native_cudnn _native_flash")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from diffusers import WanPipeline

    from revise import ReviseEditPipeline, ReviseModel
    from revise.pipelines.edit import make_scheduler

    frames, height, width, steps, g, shift = 17, 352, 640, 40, 3.0, 5.0
    rate = matmul_rate()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; measured bf16 matmul: {rate:.0f} TFLOP/s")
    model = ReviseModel.from_preset("wan2.1-1.3b", device="cuda", dtype=torch.bfloat16)
    pipe = ReviseEditPipeline(model)
    video = torch.rand(1, 3, frames, height, width, device="cuda") * 2 - 1
    c = model.transformer.config
    lat_f, lat_h, lat_w = (frames - 1) // 4 + 1, height // 8, width // 8
    tokens = lat_f * (lat_h // c.patch_size[1]) * (lat_w // c.patch_size[2])
    flops, derivation = dit_flops(tokens, model.context_config.max_context_len,
                                  c.num_attention_heads * c.attention_head_dim, c.ffn_dim, c.num_layers, c.text_dim)
    loop_flops = flops * 2 * steps              # two branches per step
    print(derivation)
    print(f"denoising loop: {steps} steps x 2 branches x {flops / 1e12:.2f} TFLOP = {loop_flops / 1e15:.3f} PFLOP; "
          f"at {rate:.0f} TFLOP/s that is {loop_flops / rate / 1e12:.2f} s")

    def run_ours(label: str) -> dict:
        pipe(video, "show the scene one second later", num_inference_steps=steps, guidance_scale=g, shift=shift,
             progress=False)                                     # warm-up
        torch.cuda.reset_peak_memory_stats()
        runs = [pipe(video, "show the scene one second later", num_inference_steps=steps, guidance_scale=g,
                     shift=shift, seed=i, progress=False).timings for i in range(args.repeats)]
        best = min(runs, key=lambda t: t["denoise"])
        row = {"label": label, **best, "total": sum(best.values()), "peak_gib": torch.cuda.max_memory_allocated() / 1024**3,
               "loop_tflops": loop_flops / best["denoise"] / 1e12}
        print(json.dumps(row), flush=True)
        return row

    rows = [run_ours("revise (eager)")]

    # diffusers' stock WanPipeline, same transformer, shape, steps and guidance (usual CFG scale g + 1)
    with torch.no_grad():
        latents = model.encode_video(video)
        cond, uncond = model.build_context(latents, video, ["show the scene one second later"])
    stock = WanPipeline(tokenizer=model.tokenizer, text_encoder=model.text_encoder, vae=model.vae,
                        transformer=model.transformer, scheduler=make_scheduler("unipc", shift))
    kw = dict(prompt_embeds=cond, negative_prompt_embeds=uncond, height=height, width=width, num_frames=frames,
              num_inference_steps=steps, guidance_scale=g + 1, output_type="latent")
    stock(**kw)
    times = []
    for i in range(args.repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        stock(**kw, generator=torch.Generator("cuda").manual_seed(i))
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    stock_s = min(times)
    print(json.dumps({"label": "diffusers WanPipeline (denoising only)", "denoise": stock_s}), flush=True)

    for backend in args.attention:
        model.transformer.set_attention_backend(backend)
        rows.append(run_ours(f"revise (eager, attention {backend})"))
    if args.compile:
        t = time.perf_counter()
        model.transformer.compile_repeated_blocks(fullgraph=True)
        for backend in args.attention or ["native"]:
            model.transformer.set_attention_backend(backend)
            rows.append(run_ours(f"revise (compiled blocks, attention {backend})"))
        print(f"compile + warm-ups took {time.perf_counter() - t:.0f} s")

    print(f"\n| pipeline | VLM | text | VAE encode | denoise (40 steps) | VAE decode | total | peak GiB | "
          f"loop TFLOP/s | loop / FLOP-bound time | vs WanPipeline |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    bound = loop_flops / rate / 1e12
    for r in rows:
        print(f"| {r['label']} | {r['vlm']:.3f} | {r['text']:.3f} | {r['vae_encode']:.3f} | {r['denoise']:.3f} | "
              f"{r['vae_decode']:.3f} | {r['total']:.2f} | {r['peak_gib']:.1f} | {r['loop_tflops']:.0f} | "
              f"{r['denoise'] / bound:.2f}x | {stock_s / r['denoise']:.2f}x faster |")
    print(f"| diffusers WanPipeline | | | | {stock_s:.3f} | | | | {loop_flops / stock_s / 1e12:.0f} | "
          f"{stock_s / bound:.2f}x | 1.00x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_tflops": rate, "loop_pflop": loop_flops / 1e15, "rows": rows, "wanpipeline_s": stock_s}, f, indent=2)


if __name__ == "__main__":
    main()
