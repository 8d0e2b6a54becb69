"""cuDNN's FP8 attention against its bf16 attention at the denoising loop's shapes (issue #24).

[2, L, 12, 128] token-major inputs, as the fast path stores them: self-attention (4400 x 4400 video
tokens) and cross-attention (4400 queries x 2560 context tokens). Rows:

- ``bf16 cuDNN``: PyTorch's SDPA with the cuDNN backend (the bf16 fast path's kernel);
- ``fp8 cuDNN``: :func:`revise.models.fp8_attention.fp8_attention` on inputs already in e4m3;
- ``quantize v`` and ``quantize q, k (static scale)``: the casts that the FP8 path adds, compiled.

Calls are timed back to back (``fp8_linear.timed``). Each attention row gives us per call, TFLOP/s and the relative error of its output against float32
attention of the unquantized inputs, for two softmax temperatures ("logit std" 1 and 4: flat and
peaked attention). With ``--autotune``, then every candidate plan cuDNN offered for each layout,
with its time (the FP8 rows then run the fastest).

    python benchmarks/fp8_attention.py [--iters 50] [--autotune] [--json FILE]       # a CUDA GPU with FP8 (Hopper+)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_latency import rel_error  # noqa: E402
from fp8_linear import timed  # noqa: E402

from revise.models import fp8_attention as fp8_module  # noqa: E402
from revise.models.fp8 import E4M3, E4M3_MAX  # noqa: E402
from revise.models.fp8_attention import (fp8_attention, fp8_attention_supported, layout_fields, plan_timings,  # noqa: E402
                                         quantize_tensor)


CUDA = torch.device("cuda")


def inputs(lq: int, lk: int, logit_std: float, seed: int = 0):
    """q, k RMS-normed per token (as after Wan's norm_q/norm_k) with an uneven per-channel weight, q
    scaled so that the logits have about ``logit_std``; v with a few large channels."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    b, h, d = 2, 12, 128
    w = 1 + 0.5 * torch.randn(h * d, device="cuda", generator=g).abs()

    def normed(length):
        x = torch.randn(b, length, h * d, device="cuda", generator=g)
        return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)) * w).unflatten(2, (h, d))

    q, k = normed(lq) * logit_std / w.pow(2).mean().sqrt(), normed(lk)
    v = torch.randn(b, lk, h, d, device="cuda", generator=g) * (1 + 4 * (torch.rand(h * d, device="cuda", generator=g) > 0.98)).view(h, d)
    return q, k, v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--autotune", action="store_true",
                    help="time every cuDNN plan the heuristics offer and keep the fastest (fp8_attention.AUTOTUNE)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU", file=sys.stderr)
        sys.exit(2)
    ok, why = fp8_attention_supported("cuda")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    import cudnn

    fp8_module.AUTOTUNE = args.autotune
    print(f"cuDNN frontend {cudnn.__version__}, backend {cudnn.backend_version_string()}")
    rows = []
    quantize_v = torch.compile(quantize_tensor)
    cast_static = torch.compile(lambda x, s: (x.float() * s).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3))
    with torch.no_grad():
        for label, lq, lk in (("self", 4400, 4400), ("cross", 4400, 2560)):
            flop = 4 * 2 * 12 * lq * lk * 128
            for logit_std in (1.0, 4.0):
                q, k, v = inputs(lq, lk, logit_std)
                exact = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
                qb, kb, vb = (t.bfloat16() for t in (q, k, v))

                def bf16():
                    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                        return F.scaled_dot_product_attention(qb.transpose(1, 2), kb.transpose(1, 2),
                                                              vb.transpose(1, 2)).transpose(1, 2)

                (q8, dq), (k8, dk), (v8, dv) = (quantize_tensor(t) for t in (q, k, v))
                scale_o = 1.0 / dv

                def fp8():
                    return fp8_attention(q8, k8, v8, dq, dk, dv, scale_o)

                t_bf16, t_fp8 = timed(bf16, CUDA, args.iters), timed(fp8, CUDA, args.iters)
                err_bf16 = rel_error(bf16(), exact)
                err_fp8 = rel_error(fp8().float() * dv, exact)
                t_qv = timed(lambda: quantize_v(vb), CUDA, args.iters)
                t_qs = timed(lambda: cast_static(qb, scale_o), CUDA, args.iters)
                row = {"attention": label, "lq": lq, "lk": lk, "logit_std": logit_std, "bf16_s": t_bf16, "fp8_s": t_fp8,
                       "bf16_rel_err": err_bf16, "fp8_rel_err": err_fp8, "quantize_v_s": t_qv, "cast_q_s": t_qs}
                rows.append(row)
                print(f"\n**{label}-attention** {lq} x {lk}, logit std {logit_std}: {flop / 1e9:.1f} GFLOP\n")
                print("| way | us | TFLOP/s | relative error vs float32 |\n| --- | --- | --- | --- |")
                print(f"| bf16 cuDNN | {t_bf16 * 1e6:.1f} | {flop / t_bf16 / 1e12:.0f} | {err_bf16:.2e} |")
                print(f"| fp8 cuDNN | {t_fp8 * 1e6:.1f} | {flop / t_fp8 / 1e12:.0f} | {err_fp8:.2e} |")
                print(f"| quantize v (amax + cast, compiled) | {t_qv * 1e6:.1f} | | |")
                print(f"| cast q (static scale, compiled) | {t_qs * 1e6:.1f} | | |")
    plans = []
    if args.autotune:
        print("\ncuDNN's candidate FP8 plans per layout, us per call on the first inputs (* the one kept):")
    for layout, timings in plan_timings().items():
        shapes = layout_fields(layout)
        print(f"  q, k, v, out shape+strides {shapes}")
        for name, us in timings:
            print(f"    {us:9.1f}  {name}")
        plans.append({"layout": shapes, "plans": [{"name": n, "us": us} for n, us in timings]})
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                               "rows": rows, "plans": plans}, indent=2))


if __name__ == "__main__":
    main()
