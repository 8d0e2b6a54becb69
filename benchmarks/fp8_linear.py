"""Where an FP8 DiT linear's time goes, at the denoising loop's shapes (issue #24's FP8 goal).

The H100 run of 2026-12-07 found `enable_fp8()` almost no faster than bf16 on the compiled fast path
(loop 2.546 s against 2.567 s), where the block linears are 66% of the FLOPs. This benchmark times
each linear of one DiT block at the loop's shapes (both guidance branches batched: 2 x tokens rows)
in several ways, so that the next change is chosen by measurement:

- ``bf16``: ``F.linear`` with bias, the baseline;
- ``fp8 mm, row-wise``: ``torch._scaled_mm`` alone on an input already in e4m3, one scale per row and
  per output column (what ``revise/models/fp8.py`` runs), the same with Hopper's fast accumulation
  (``use_fast_accum=True``: no periodic promotion of the sums to float32), and ``fp8 mm,
  tensor-wise``: one scale each;
- ``quantize rows``: the input's per-row scaling and cast alone (eager, and compiled by inductor);
- ``Fp8Linear``: the whole module (quantize, matmul, bias), eager and compiled.

Prints a table per shape (ms, TFLOP/s, time over bf16) and the loop-level projection: the block's
linears times layers x steps, bf16 against the compiled ``Fp8Linear``.

    python benchmarks/fp8_linear.py [--tokens 4400 --dim 1536 --ffn 8960 --layers 30 --steps 40] [--iters 50]
    python benchmarks/fp8_linear.py --device cpu --tokens 64 --dim 64 --ffn 128 --iters 1 --no-compile   # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from revise.models.fp8 import Fp8Linear, check_fp8_device, quantize_rows  # noqa: E402


def block_linears(dim: int, ffn: int) -> list[tuple[str, int, int]]:
    """(name, in, out) of one Wan block's linears on the fast path (fused q,k,v; the context's
    cross-attention k,v run once per edit and are left out)."""
    return [("self-attn q,k,v (fused)", dim, 3 * dim), ("self-attn out", dim, dim), ("cross-attn q", dim, dim),
            ("cross-attn out", dim, dim), ("feed-forward in", dim, ffn), ("feed-forward out", ffn, dim)]


def timed(fn, device: torch.device, iters: int) -> float:
    """Median seconds of one call over ``iters`` calls after two warm-ups. On a GPU the calls are
    queued back to back with an event pair around each and one synchronisation at the end, so the
    host's time to launch a call hides behind the previous call's kernels, as in the denoising loop
    (timing each call from the host's side would count its launch overhead as GPU time)."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return median(start.elapsed_time(end) / 1e3 for start, end in events)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def measure_shape(rows: int, k: int, n: int, device: torch.device, iters: int, compile: bool) -> dict[str, float]:
    """Seconds per call of each way to run one [rows, k] x [k, n] linear with bias."""
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(rows, k, generator=g).to(device, torch.bfloat16)
    linear = nn.Linear(k, n, bias=True).to(device, torch.bfloat16)
    fp8 = Fp8Linear(linear)
    q, scale = quantize_rows(x)
    ones_a, ones_b = torch.ones((), device=device), torch.ones((), device=device)
    w_t = fp8.weight_fp8.t()
    out: dict[str, float] = {}
    with torch.no_grad():
        out["bf16"] = timed(lambda: F.linear(x, linear.weight, linear.bias), device, iters)
        out["fp8 mm, row-wise"] = timed(lambda: torch._scaled_mm(q, w_t, scale_a=scale, scale_b=fp8.weight_scale,
                                                                 out_dtype=torch.bfloat16), device, iters)
        out["fp8 mm, row-wise, fast accumulation"] = timed(
            lambda: torch._scaled_mm(q, w_t, scale_a=scale, scale_b=fp8.weight_scale, out_dtype=torch.bfloat16,
                                     use_fast_accum=True), device, iters)
        out["fp8 mm, tensor-wise"] = timed(lambda: torch._scaled_mm(q, w_t, scale_a=ones_a, scale_b=ones_b,
                                                                    out_dtype=torch.bfloat16), device, iters)
        out["quantize rows, eager"] = timed(lambda: quantize_rows(x), device, iters)
        out["Fp8Linear, eager"] = timed(lambda: fp8(x), device, iters)
        if compile:
            quantize_compiled = torch.compile(quantize_rows)
            fp8_compiled = torch.compile(fp8)
            out["quantize rows, compiled"] = timed(lambda: quantize_compiled(x), device, iters)
            out["Fp8Linear, compiled"] = timed(lambda: fp8_compiled(x), device, iters)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4400, help="video tokens per sample (17x352x640: 4400)")
    ap.add_argument("--batch", type=int, default=2, help="samples per forward (guidance's two branches)")
    ap.add_argument("--dim", type=int, default=1536)
    ap.add_argument("--ffn", type=int, default=8960)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--steps", type=int, default=40, help="denoising steps, for the loop-level projection")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-compile", action="store_true", help="leave out the compiled rows")
    ap.add_argument("--json", help="write the timings here")
    args = ap.parse_args()
    device = torch.device(args.device)
    check_fp8_device(device, allow_cpu=True)        # the CPU runs _scaled_mm in emulation: a smoke run only
    rows = args.tokens * args.batch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (emulated FP8: not a speed)"
    print(f"device: {name}, torch {torch.__version__}; {rows} rows per linear ({args.batch} x {args.tokens} tokens)")
    results = []
    for label, k, n in block_linears(args.dim, args.ffn):
        t = measure_shape(rows, k, n, device, args.iters, not args.no_compile)
        flop = 2 * rows * k * n
        results.append({"linear": label, "in": k, "out": n, "seconds": t})
        print(f"\n**{label}** [{rows} x {k}] x [{k} x {n}], {flop / 1e9:.1f} GFLOP\n")
        print("| way | ms | TFLOP/s | time / bf16 |\n| --- | --- | --- | --- |")
        for way, s in t.items():
            rate = f"{flop / s / 1e12:.0f}" if "quantize" not in way else ""
            print(f"| {way} | {s * 1e3:.3f} | {rate} | {s / t['bf16']:.2f}x |")
    per_loop = args.layers * args.steps
    bf16 = sum(r["seconds"]["bf16"] for r in results) * per_loop
    print(f"\nthe block's linears over {args.layers} layers x {args.steps} steps:")
    print("| way | loop seconds | / bf16 |\n| --- | --- | --- |")
    for way in results[0]["seconds"]:
        if "quantize" in way:
            continue
        s = sum(r["seconds"][way] for r in results) * per_loop
        print(f"| {way} | {s:.3f} | {s / bf16:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows,
                                               "layers": args.layers, "steps": args.steps, "linears": results}, indent=2))


if __name__ == "__main__":
    main()
