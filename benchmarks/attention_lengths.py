"""Fused attention at the DiT's sequence lengths: cuDNN, FlashAttention-2, memory-efficient and flex
attention on [2, 12, L, 128] bf16, self-attention (L = 4400 video tokens) and cross-attention (2560
context tokens), token-major and heads-major storage, and lengths padded to multiples of 128; then
the one-pass q/k kernel (`revise/models/norm_rope.py`) at 1, 2, 4 and 8 warps.

    python benchmarks/attention_lengths.py        # GPU only; log in benchmarks/results/attention_lengths_h100.log
"""
import time, torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import profile, ProfilerActivity
if not torch.cuda.is_available():
    import sys
    print("error: this benchmark needs a CUDA GPU", file=sys.stderr)
    sys.exit(2)
dev = "cuda"; dt = torch.bfloat16; B, H, D = 2, 12, 128

def timeit(fn, iters=50):
    for _ in range(5): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(iters): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / iters

def kname(fn):
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        fn(); torch.cuda.synchronize()
    ks = [e.name for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA and "Memset" not in e.name]
    return ks[0][:90] if ks else "?"

def case(label, lq, lk, layout="tm", backend=SDPBackend.CUDNN_ATTENTION):
    if layout == "tm":     # token-major storage, [B, H, L, D] views
        q = torch.randn(B, lq, H, D, device=dev, dtype=dt).transpose(1, 2)
        k = torch.randn(B, lk, H, D, device=dev, dtype=dt).transpose(1, 2)
        v = torch.randn(B, lk, H, D, device=dev, dtype=dt).transpose(1, 2)
    else:
        q = torch.randn(B, H, lq, D, device=dev, dtype=dt)
        k = torch.randn(B, H, lk, D, device=dev, dtype=dt)
        v = torch.randn(B, H, lk, D, device=dev, dtype=dt)
    def fn():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)
    with torch.no_grad():
        try:
            t = timeit(fn)
        except Exception as e:
            print(f"{label}: failed {e}"); return
        fl = 4 * B * H * lq * lk * D
        print(f"{label:45s} Lq={lq} Lk={lk} {layout}: {t*1e6:8.1f} us  {fl/t/1e12:6.0f} TFLOP/s  {kname(fn)}", flush=True)

for lq, lk in [(4400, 4400), (4480, 4400), (4480, 4480), (4352, 4352), (4400, 2560), (4480, 2560), (8192, 8192)]:
    case("cudnn", lq, lk, "tm")
    case("cudnn", lq, lk, "bhld")
for lq, lk in [(4400, 4400), (4400, 2560)]:
    case("flash", lq, lk, "tm", SDPBackend.FLASH_ATTENTION)
    case("efficient", lq, lk, "tm", SDPBackend.EFFICIENT_ATTENTION)
try:
    from torch.nn.attention.flex_attention import flex_attention
    fa = torch.compile(flex_attention, dynamic=False)
    for lq, lk in [(4400, 4400), (4400, 2560)]:
        q = torch.randn(B, H, lq, D, device=dev, dtype=dt); k = torch.randn(B, H, lk, D, device=dev, dtype=dt); v = torch.randn_like(k)
        with torch.no_grad():
            t = timeit(lambda: fa(q, k, v))
        print(f"flex Lq={lq} Lk={lk}: {t*1e6:8.1f} us {4*B*H*lq*lk*D/t/1e12:6.0f} TFLOP/s", flush=True)
except Exception as e:
    print("flex failed", e)

# norm_rope kernel: warps
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import triton
from revise.models import norm_rope as nr
L = 4400
x = torch.randn(B, L, 3 * H * D, device=dev, dtype=dt)
w0 = torch.randn(H * D, device=dev, dtype=dt); w1 = torch.randn(H * D, device=dev, dtype=dt)
cos = torch.randn(L, D, device=dev, dtype=torch.float32); sin = torch.randn(L, D, device=dev, dtype=torch.float32)
xs = x[..., : 2 * H * D]
for warps in (1, 2, 4, 8):
    out = torch.empty(2, B, L, H, D, device=dev, dtype=dt)
    def go():
        nr._norm_rope_kernel[(B * L,)](xs, w0, w1, cos, sin, w0, out, B, L, L, xs.stride(0), xs.stride(1), 1e-6,
                                       GROUPS=2, H=H, H_POW2=16, HEAD_DIM=D, ROPE=True, FP8=False, NATIVE=False,
                                       num_warps=warps)
    t = timeit(go, 200)
    print(f"norm_rope q+k warps={warps}: {t*1e6:.1f} us, {(2*B*L*2*H*D*2)/t/1e9:.0f} GB/s", flush=True)
