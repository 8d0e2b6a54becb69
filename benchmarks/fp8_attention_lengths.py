"""cuDNN's FP8 attention at the DiT's lengths against lengths padded to a multiple of 128 (issue #24).

In bf16, cuDNN's attention ran 7.5% faster at 4480 x 4480 than at the released 4400 x 4400, for 3.7%
more FLOPs (`benchmarks/results/attention_lengths_h100.log`): at a key length that is not a multiple of
128 it masks every call's last tile (its frontend enables a "workaround padding mask" for such lengths).
This times cuDNN's FP8 kernel, [2, L, 12, 128] e4m3 token-major as the loop stores them, at:

- the released lengths (self 4400 x 4400, cross 4400 queries x 2560 context tokens);
- lengths that are multiples of 128 (4352, 4480), at the FLOPs they cost;
- the released lengths inside buffers of 4480 with cuDNN's padding mask (``fp8_attention(...,
  valid_q, valid_kv)``): what padding the loop's q, k, v buys. Its output rows are checked against
  the unpadded call's.

Each row: us a call of ``revise.models.fp8_attention.fp8_attention`` (median of calls queued back to
back) and TFLOP/s. (Run 8a's log came from the version at commit `9321842`, which built the padded
cuDNN graph itself and timed the unpadded self-attention both ways: 331.9 us through
``fp8_attention``, 328.1 us as a bare graph.)

    python benchmarks/fp8_attention_lengths.py [--iters 50]       # Hopper GPU with nvidia-cudnn-frontend
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fp8_linear import timed  # noqa: E402

from revise.models.fp8 import E4M3  # noqa: E402
from revise.models.fp8_attention import fp8_attention, fp8_attention_supported  # noqa: E402

B, H, D = 2, 12, 128


def inputs(lq: int, lk: int) -> tuple[torch.Tensor, ...]:
    """e4m3 q [B, lq, H, D], k and v [B, lk, H, D], and a descale of one."""
    q, k, v = (torch.randn(B, n, H, D, device="cuda").to(E4M3) for n in (lq, lk, lk))
    return q, k, v, torch.ones((), device="cuda")


def fp8_attention_gpu():
    """cuDNN's frontend module once this machine is found to run FP8 attention (printed with the
    device); otherwise the reason in one line and exit code 2."""
    ok, why = fp8_attention_supported("cuda") if torch.cuda.is_available() else (False, "this benchmark needs a CUDA GPU")
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    import cudnn

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {cudnn.backend_version_string()}, "
          f"frontend {getattr(cudnn, '__version__', '?')}")
    return cudnn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    fp8_attention_gpu()
    cuda = torch.device("cuda")
    print("| attention | real lengths | buffers | us | TFLOP/s on the real lengths | output rows vs unpadded |")
    print("| --- | --- | --- | --- | --- | --- |")
    torch.manual_seed(0)
    with torch.no_grad():
        for label, lq, lk, shapes in (("self", 4400, 4400, ((4400, 4400), (4352, 4352), (4480, 4480))),
                                      ("cross", 4400, 2560, ((4400, 2560), (4480, 2560)))):
            base = None
            for pq, pk in shapes:
                q, k, v, one = inputs(pq, pk)
                if (pq, pk) == (lq, lk):
                    base = (q, k, v, fp8_attention(q, k, v, one, one, one, one).float())
                us = timed(lambda: fp8_attention(q, k, v, one, one, one, one), cuda, args.iters) * 1e6
                print(f"| {label} | {pq} x {pk} | {pq} x {pk} | {us:.1f} | {4 * B * H * pq * pk * D / us / 1e6:.0f} | |")
            pad_q, pad_k = 4480, (lk if lk % 128 == 0 else 4480)
            q, k, v, one = inputs(pad_q, pad_k)          # the real rows are the unpadded call's; the rest random
            q0, k0, v0, want = base
            q[:, :lq], k[:, :lk], v[:, :lk] = q0, k0, v0
            valid = {"valid_q": lq, "valid_kv": lk}
            try:
                got = fp8_attention(q, k, v, one, one, one, one, **valid)[:, :lq].float()
            except Exception as error:        # a cuDNN that has no padding mask for FP8 attention
                print(f"| {label} | {lq} x {lk} | {pad_q} x {pad_k}, padding mask | failed: {str(error)[:120]} | | |")
                continue
            us = timed(lambda: fp8_attention(q, k, v, one, one, one, one, **valid), cuda, args.iters) * 1e6
            diff = ((got - want).norm() / want.norm()).item()
            print(f"| {label} | {lq} x {lk} | {pad_q} x {pad_k}, padding mask | {us:.1f} | "
                  f"{4 * B * H * lq * lk * D / us / 1e6:.0f} | {diff:.1e} relative |")


if __name__ == "__main__":
    main()
