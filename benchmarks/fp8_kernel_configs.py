"""The FP8 loop's own Triton kernels at the released shapes, under launch configurations, against memory speed.

Kernels (e4m3 written with the encoding ``triton_e4m3.NATIVE_CAST`` picks):

- ``gelu``: ``fp8_ffn._gelu_quantize_kernel`` on the feed-forward's hidden rows, [2 * 4400, 8960] bf16,
  one program per row: the row split the op uses (8192 + 1024 lanes) and one padded 16384-lane block;
- ``qk``: ``norm_rope._norm_rope_kernel`` on self-attention's fused projection, q and k of
  [2, 4400, 3 * 1536] bf16, 12 heads of 128, RoPE, written in e4m3: one program per token;
- ``norm1``, ``norm2``, ``norm3``: the block's three LayerNorms with their row quantization
  (``norm_quantize_kernel.py``, an experiment, one program per token row of 1536, [2, 4400, 1536] bf16): norm1
  modulated; norm2 after the gated self-attention residual, affine; norm3 after the cross-attention
  residual, modulated. Each first as Inductor compiles the PyTorch reference (with the blocks' wide-row
  heuristic, ``compiled_blocks.wide_row_reductions``: what the FP8 loop ran before this kernel), then
  the kernel at each warp count, with its bytes against the compiled reference's. These short kernels
  are timed as CUDA-graph replays of 20 calls (in the loop they run from a graph as well).

Each row is a number of warps per program; microseconds a call (median of CUDA-event timings of
calls queued back to back, so that the host's launch hides behind the previous call, as in the loop),
the bytes the kernel must move at least (its input read once, its output written once), and the time
those bytes take at the copy rate read in the same run (a ``copy_`` of 512 MiB: bytes read + written
over seconds). "x memory" is the kernel's time over that: 1.00 is memory speed.

    python benchmarks/fp8_kernel_configs.py [--iters 100]        # CUDA GPU with Triton
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fp8_linear import timed  # noqa: E402

import norm_quantize_kernel  # noqa: E402

from revise.models import fp8_ffn, norm_rope, triton_e4m3  # noqa: E402
from revise.models.compiled_blocks import wide_row_reductions  # noqa: E402


def time_us(fn, iters: int) -> float:
    """Median microseconds of ``fn()`` on the GPU, calls queued back to back (``fp8_linear.timed``)."""
    return timed(fn, torch.device("cuda"), iters) * 1e6


def graph_time_us(fn, iters: int, calls: int = 20) -> float:
    """Microseconds of one ``fn()`` replayed from a CUDA graph of ``calls`` calls (median of ``iters``
    replays): for kernels shorter than their host-side launch, which back-to-back calls would time."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return time_us(graph.replay, iters) / calls


def copy_rate(iters: int) -> float:
    """Bytes a second of a device-to-device ``copy_`` (read + written)."""
    src = torch.empty(2**29, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() / (time_us(lambda: dst.copy_(src), iters) / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100)
    args = ap.parse_args()
    for missing, why in ((not torch.cuda.is_available(), "a CUDA GPU"), (fp8_ffn.triton is None, "Triton")):
        if missing:
            print(f"error: this benchmark needs {why}", file=sys.stderr)
            sys.exit(2)
    torch.manual_seed(0)
    rate = copy_rate(args.iters)
    native = triton_e4m3.NATIVE_CAST
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; copy rate {rate / 1e9:.0f} GB/s; "
          f"e4m3 by {'the GPU conversion' if native else 'integer arithmetic'}")
    print("| kernel | configuration | us a call | bytes moved | x memory |\n| --- | --- | --- | --- | --- |")

    def row(kernel: str, config: str, us: float, nbytes: int) -> None:
        print(f"| {kernel} | {config} | {us:.1f} | {nbytes / 1e6:.0f} MB | {us / (nbytes / rate * 1e6):.2f} |")

    rows, n = 2 * 4400, 8960
    x = torch.randn(rows, n, device="cuda", dtype=torch.bfloat16)
    q = torch.empty(rows, n, device="cuda", dtype=torch.uint8)
    scale = torch.empty(rows, 1, device="cuda", dtype=torch.float32)
    nbytes = x.numel() * 2 + q.numel() + scale.numel() * 4
    split = fp8_ffn._row_split(n)
    for (head, tail), label in ((split, f"{split[0]} + {split[1]} lanes"), ((16384, 0), "16384 lanes")):
        for warps in (4, 8, 16, 32):
            def gelu(head=head, tail=tail, warps=warps):
                fp8_ffn._gelu_quantize_kernel[(rows,)](x, q, scale, n, x.stride(0), HEAD=head, TAIL=tail,
                                                       NATIVE=native, num_warps=warps)
            row("gelu", f"{label}, {warps} warps", time_us(gelu, args.iters), nbytes)

    batch, length, d, heads = 2, 4400, 1536, 12
    head_dim = d // heads
    qkv = torch.randn(batch, length, 3 * d, device="cuda", dtype=torch.bfloat16)
    w0, w1 = torch.rand(d, device="cuda") + 0.5, torch.rand(d, device="cuda") + 0.5
    angles = torch.rand(1, length, 1, head_dim // 2, device="cuda", dtype=torch.float64).repeat_interleave(2, -1)
    cos, sin = angles.cos().contiguous(), angles.sin().contiguous()
    scales = torch.tensor([8.0, 8.0], device="cuda")
    out = torch.empty(2, batch, length, heads, head_dim, device="cuda", dtype=torch.uint8)
    nbytes = batch * length * 2 * d * 2 + out.numel()
    h_pow2 = norm_rope.triton.next_power_of_2(heads)
    for warps in (1, 2, 4, 8, 16):
        def qk(warps=warps):
            norm_rope._norm_rope_kernel[(batch * length,)](
                qkv, w0, w1, cos, sin, scales, out, batch, length, length, qkv.stride(0), qkv.stride(1), 1e-6,
                GROUPS=2, H=heads, H_POW2=h_pow2, HEAD_DIM=head_dim, ROPE=True, FP8=True, NATIVE=native,
                num_warps=warps)
        row("qk", f"one token a program, {warps} warps", time_us(qk, args.iters), nbytes)
    norm_configs(args.iters, row)


def norm_configs(iters: int, row) -> None:
    """The block's three norms with their row quantization: Inductor's fusion, then the kernel by warps."""
    batch, length, d = 2, 4400, 1536
    x = torch.randn(batch, length, d, device="cuda").mul(4).bfloat16()
    residual = torch.randn(batch, length, d, device="cuda").bfloat16()
    mod = torch.randn(batch, 6, d, device="cuda") * 0.3
    shift, scale, gate = mod[:, 0:1], mod[:, 1:2], mod[:, 2:3]
    weight, bias = torch.rand(d, device="cuda") + 0.5, torch.randn(d, device="cuda") * 0.1
    cases = {"norm1": {"scale": scale, "shift": shift},
             "norm2": {"residual": residual, "gate": gate, "weight": weight, "bias": bias},
             "norm3": {"residual": residual, "scale": scale, "shift": shift}}
    compiled = torch.compile(norm_quantize_kernel.norm_quantize_reference, fullgraph=True, dynamic=False)
    for name, kw in cases.items():
        nbytes = x.numel() * (2 if "residual" not in kw else 6) + x.numel() + batch * length * 4

        def inductor(kw=kw):
            with wide_row_reductions():
                return compiled(x, 1e-6, **kw)

        want = inductor()
        row(name, "Inductor's fusion of the reference", graph_time_us(inductor, iters), nbytes)
        for warps in (1, 2, 4, 8):
            norm_quantize_kernel.WARPS = warps
            got = norm_quantize_kernel.norm_quantize(x, 1e-6, **kw)
            steps = (got[1].view(torch.uint8).int() - want[1].view(torch.uint8).int()).abs()
            same = (torch.equal(got[0], want[0]) and steps.max().item() <= 1)
            row(name, f"kernel, {warps} warps ({'same' if same else 'DIFFERENT'} output, "
                      f"{(steps > 0).float().mean().item():.1e} of the e4m3 bytes one step off)",
                graph_time_us(lambda kw=kw: norm_quantize_kernel.norm_quantize(x, 1e-6, **kw), iters), nbytes)
        norm_quantize_kernel.WARPS = None


if __name__ == "__main__":
    main()
