"""Does Triton's own float32 -> e4m3 cast build inside Inductor? (issue #24, ``triton_e4m3.py``)

``triton_e4m3.e4m3_bits`` encodes e4m3 by integer arithmetic because Triton's own cast
(``y.to(tl.float8e4nv)``), stored by a kernel compiled into an Inductor graph, failed to build on an
H100. Inductor passes a kernel's Python float arguments as float64 scalars, which widen what they
touch. This script runs an RMS-norm + scale + e4m3 store kernel, shaped like ``norm_rope.py``'s, four
ways: through ``triton_e4m3.e4m3_store_bits`` (the kernels' encoder), with the native cast (its input
cast to float32 first) or the integer encoder, each with the float eps added as passed (float64 under
Inductor) or cast to float32; each eagerly and under ``torch.compile(fullgraph=True)``. A row prints
whether it built and how many of its bytes differ from PyTorch's saturating cast.

On an H100 (2026-12-07, ``benchmarks/results/triton_native_fp8_cast_issue24_h100.log``, from the
script's earlier form with the same cast written inline) every row built and matched in every byte.
Without the float32 cast before the native cast, both compiled native rows failed: "Unsupported
conversion from f64 to f8E4M3FN" (Triton 3.6 has none; the float64 ``scale`` argument widened the
value), while the eager ones ran.

    python benchmarks/triton_native_fp8_cast.py          # CUDA GPU with FP8 (sm_89+) only
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from revise.models.fp8 import E4M3_MAX  # noqa: E402
from revise.models.triton_e4m3 import e4m3_store_bits  # noqa: E402

WIDTH = 2048             # a power of two (tl.arange)


@triton.jit
def _norm_e4m3_kernel(x_ptr, out_ptr, eps, scale, N: tl.constexpr, NATIVE: tl.constexpr, EPS_F32: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, N)
    x = tl.load(x_ptr + row * N + cols).to(tl.float32)
    ms = tl.sum(x * x, axis=0) / N
    if EPS_F32:
        y = x * tl.rsqrt((ms + eps).to(tl.float32)) * scale
    else:
        y = x * tl.rsqrt(ms + eps) * scale
    tl.store(out_ptr + row * N + cols, e4m3_store_bits(y, NATIVE))


def launch(x: torch.Tensor, eps: float, scale: float, native: bool, eps_f32: bool) -> torch.Tensor:
    out = torch.empty(x.shape, device=x.device, dtype=torch.uint8)
    torch.library.wrap_triton(_norm_e4m3_kernel)[(x.shape[0],)](
        x, out, eps, scale, N=x.shape[1], NATIVE=native, EPS_F32=eps_f32)
    return out


def reference(x: torch.Tensor, eps: float, scale: float) -> torch.Tensor:
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * scale
    return y.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).view(torch.uint8)


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    torch.manual_seed(0)
    x = torch.randn(4096, WIDTH, device="cuda", dtype=torch.bfloat16)
    eps, scale = 1e-6, 100.0
    ref = reference(x, eps, scale)
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  triton {triton.__version__}")
    print(f"{'cast':8} {'eps':8} {'mode':9} {'built':6} {'bytes differing':>16}")
    for native in (True, False):
        for eps_f32 in (False, True):
            for mode in ("eager", "compiled"):
                torch._dynamo.reset()
                fn = (lambda t, n=native, e=eps_f32: launch(t, eps, scale, n, e))
                if mode == "compiled":
                    fn = torch.compile(fn, fullgraph=True)
                try:
                    out = fn(x)
                    torch.cuda.synchronize()
                    built, diff = "yes", f"{int((out != ref).sum())} / {ref.numel()}"
                except Exception as e:  # noqa: BLE001 -- the point is which variants fail to build
                    built, diff = "no", f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
                print(f"{'native' if native else 'integer':8} {'float32' if eps_f32 else 'as-is':8} "
                      f"{mode:9} {built:6} {diff:>16}")


if __name__ == "__main__":
    main()
