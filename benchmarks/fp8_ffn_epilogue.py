"""The feed-forward's up-projection, GELU and e4m3 quantization at the released shapes, five ways (#24).

Without nvmath-python the FP8 loop's feed-forward is the up-projection (an FP8 matmul writing bf16,
its bias in the epilogue), then one Triton kernel for tanh-GELU and each row's e4m3 quantization (92
us a block call in run 7: 0.110 s of the 1.814 s loop), then the down-projection on the e4m3 rows.
Ways of the first two steps (run 9 also timed the GELU quantized pointwise at row scales from the
bound: 40-50 us a call slower than ``rows``, so that way went):

    rows           the up-projection, then ``fp8_ffn.gelu_quantize_rows`` (the Triton kernel, each
                   row's scale its largest magnitude)
    cublaslt       one cuBLASLt FP8 matmul whose GELU_BIAS epilogue writes e4m3 (nvmath-python's
                   ``Matmul``): nvmath offers one scale per FP8 operand, so the input is quantized
                   at its largest magnitude (before the timing), the weight at its own, and the output
                   at the largest of the rows' bounds; the down-projection takes that one scale
    cublaslt_amax  the same with the output at its own largest magnitude (found in float32
                   beforehand): what scaling from an earlier call's amax could reach, for the error
    cublaslt_rows  the epilogue with the loop's row-wise input and weight scales (cuBLASLt's
                   OUTER_VEC_32F scale mode, set on nvmath's matmul descriptor, which its API does not
                   offer), the output at the tensor-wide bound
    cublaslt_mixed the weight's row scales with the input at one scale
                   (on an H100, cuBLASLt 13.1, it refused these two: run 9, `docs/performance.md`;
                   the loop's GELU epilogue is therefore the ``cublaslt`` way)

Rows: microseconds a call of the up-projection with GELU and quantization, of the down-projection
after it, and of the two (each a CUDA-graph replay of 10 calls, as in the loop; back-to-back calls
where a way cannot be captured), and the relative error of the feed-forward's output against float32
with the same bf16 weights and input. The ``cublaslt`` ways need nvmath-python (carried in ``.whl/``:
``scripts/device_wheels.sh``); without it they are skipped with the reason.

    python benchmarks/fp8_ffn_epilogue.py [--iters 50] [--tokens 8800]      # Hopper GPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_latency import rel_error  # noqa: E402
from fp8_kernel_configs import graph_time_us, time_us  # noqa: E402

from revise.models import fp8_ffn  # noqa: E402
from revise.models.fp8 import E4M3_MAX, Fp8Linear, fp8_supported, output_bound_weights, quantize_rows  # noqa: E402
from revise.models.fp8_attention import quantize_tensor  # noqa: E402
from revise.models.fp8_gelu_matmul import plan  # noqa: E402

DIM, HIDDEN = 1536, 8960            # wan2.1-1.3b


def cublaslt_gelu(w8, w_descale, x8, x_descale, bias, out_scale):
    """A function running one cuBLASLt matmul with the GELU_BIAS epilogue, planned once through nvmath
    (``fp8_gelu_matmul.plan``: one-element descales are scalar scales, longer ones outer-vector
    scales), returning e4m3 [M, N]."""
    mm = plan(x8, x_descale, w8, w_descale, bias, out_scale)
    return lambda: mm.execute().t()


def timings(up_fn, down_fn, iters: int) -> tuple[float, float, float, str]:
    """us a call of ``up_fn()`` (-> (e4m3 rows, scale)), of ``down_fn(rows, scale)`` and of both, as
    CUDA-graph replays, or back to back where capture fails; and how they were timed."""
    q, s = up_fn()
    try:
        return (graph_time_us(up_fn, iters, calls=10), graph_time_us(lambda: down_fn(q, s), iters, calls=10),
                graph_time_us(lambda: down_fn(*up_fn()), iters, calls=10), "graph")
    except Exception as err:        # e.g. a library call that cannot be captured
        torch.cuda.synchronize()
        how = f"back to back ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''})"
        return time_us(up_fn, iters), time_us(lambda: down_fn(q, s), iters), time_us(lambda: down_fn(*up_fn()), iters), how


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=8800, help="rows: both guidance branches of 4400 tokens")
    args = ap.parse_args()
    ok, why = fp8_supported("cuda") if torch.cuda.is_available() else (False, "this benchmark needs a CUDA GPU")
    if not ok or fp8_ffn.triton is None:
        print(f"error: {why or 'this benchmark needs Triton'}", file=sys.stderr)
        sys.exit(2)
    cuda, bf16 = torch.device("cuda"), torch.bfloat16
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; [{args.tokens}, {DIM}] -> {HIDDEN} -> {DIM}")
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = (torch.nn.Linear(DIM, HIDDEN, device=cuda, dtype=bf16),
                         torch.nn.Linear(HIDDEN, DIM, device=cuda, dtype=bf16))
        # the block's input to its feed-forward: a modulated LayerNorm
        x = (F.layer_norm(torch.randn(args.tokens, DIM, device=cuda), (DIM,))
             * (1 + 0.1 * torch.randn(DIM, device=cuda)) + 0.1 * torch.randn(DIM, device=cuda)).to(bf16)
        hidden = F.gelu(F.linear(x.float(), first.weight.float(), first.bias.float()), approximate="tanh")
        want = F.linear(hidden, second.weight.float(), second.bias.float())
        up, down = Fp8Linear(first, fast_accum=True), Fp8Linear(second, fast_accum=True)
        x_rows, x_scales = quantize_rows(x)
        bound_weights = output_bound_weights(up)
        row_scales = fp8_ffn.gelu_row_scales(x, bound_weights)
        bounds = row_scales * E4M3_MAX
        print(f"bounds on the GELU's output over its largest magnitudes: whole tensor "
              f"{float(bounds.max() / hidden.abs().max()):.2f}x, rows median "
              f"{float((bounds / hidden.abs().amax(1, keepdim=True)).median()):.2f}x")

        def down_fn(q, s):
            return down.forward_quantized(q, s)

        ways = {"rows": lambda: fp8_ffn.gelu_quantize_rows(up._matmul(x_rows, x_scales, bf16))}
        try:
            import nvmath
        except Exception as err:    # nvmath-python or its CUDA packages missing here
            print(f"cublaslt ways skipped: nvmath-python does not import ({type(err).__name__}: {err})")
        else:
            print(f"nvmath-python {nvmath.__version__}")
            (x8, x_descale), (w8, w_descale) = (quantize_tensor(t) for t in (x, first.weight.detach()))
            x_descale, w_descale = x_descale.reshape(1), w_descale.reshape(1)
            rows = (up.weight_fp8, up.weight_scale.reshape(-1).contiguous(), x_rows, x_scales.reshape(-1).contiguous())
            for name, largest, operands in (("cublaslt", bounds.max(), (w8, w_descale, x8, x_descale)),
                                            ("cublaslt_amax", hidden.abs().amax(), (w8, w_descale, x8, x_descale)),
                                            ("cublaslt_rows", bounds.max(), rows),
                                            ("cublaslt_mixed", bounds.max(), (*rows[:2], x8, x_descale))):
                descale = (largest.float() / E4M3_MAX).reshape(1)
                try:
                    run = cublaslt_gelu(*operands, first.bias.detach(), 1.0 / descale)
                    run()
                except Exception as err:    # an epilogue or type cuBLASLt refuses here
                    print(f"{name}: cuBLASLt did not run it: {type(err).__name__}: {str(err)[:300]}")
                    continue
                ways[name] = (lambda run, descale: lambda: (run(), descale))(run, descale)
        print("| way | up + GELU + e4m3 us | down us | both us | output rel. error vs float32 | timed |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, fn in ways.items():
            err = rel_error(down_fn(*fn()), want)
            t_up, t_down, t_both, how = timings(fn, down_fn, args.iters)
            print(f"| {name} | {t_up:.1f} | {t_down:.1f} | {t_both:.1f} | {err:.2e} | {how} |")


if __name__ == "__main__":
    main()
