"""The FP8 loop's own Triton kernels at the released shapes, under launch configurations, against memory speed.

Kernels (e4m3 written with the encoding ``triton_e4m3.NATIVE_CAST`` picks):

- ``gelu``: ``fp8_ffn._gelu_quantize_kernel`` on the feed-forward's hidden rows, [2 * 4400, 8960] bf16,
  one program per row: the row split the op uses (8192 + 1024 lanes) and one padded 16384-lane block;
- ``qk``: ``norm_rope._norm_rope_kernel`` on self-attention's fused projection, q and k of
  [2, 4400, 3 * 1536] bf16, 12 heads of 128, RoPE, written in e4m3: one program per token.

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

from revise.models import fp8_ffn, norm_rope, triton_e4m3  # noqa: E402


def time_us(fn, iters: int) -> float:
    """Median microseconds of ``fn()`` on the GPU, calls queued back to back (``fp8_linear.timed``)."""
    return timed(fn, torch.device("cuda"), iters) * 1e6


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
                qkv, w0, w1, cos, sin, scales, out, batch, length, qkv.stride(0), qkv.stride(1), 1e-6,
                GROUPS=2, H=heads, H_POW2=h_pow2, HEAD_DIM=head_dim, ROPE=True, FP8=True, NATIVE=native,
                num_warps=warps)
        row("qk", f"one token a program, {warps} warps", time_us(qk, args.iters), nbytes)


if __name__ == "__main__":
    main()
