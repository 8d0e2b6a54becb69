"""Which FP8 matmuls with an epilogue cuBLASLt runs here, at the feed-forward's up-projection shape (#24).

The FP8 feed-forward's GELU epilogue (``fp8_gelu_matmul``) needs one cuBLASLt FP8 matmul that adds the
bias, applies tanh-GELU and writes e4m3. On an H100 (run 9a) nvmath's default set-up of that matmul was
refused, per tensor (CUBLAS_STATUS_NOT_SUPPORTED) and with the loop's row scales
(CUBLAS_STATUS_INVALID_VALUE). This asks cuBLASLt, through ``fp8_gelu_matmul.plan``, for each
combination of

    result   e4m3 or bf16
    epilog   DEFAULT, BIAS, GELU, GELU_BIAS
    bias     its dtype, bf16 or fp16 (epilogues with a bias)
    C        cuBLASLt's C type (beta is 0): for an e4m3 result fp16 (nvmath's choice) or bf16 (PyTorch's
             ``_scaled_mm`` makes it the bias's type), for a bf16 one the result's
    scales   tensor (one scale per operand), rows (outer-vector scales on both), w_rows (the weight's
             rows, the input per tensor), x_rows (the input's rows, the weight per tensor)

whether it plans and runs, and its error against the float32 computation (``fast_accumulation`` on).
Rows: one per combination; ``runs`` with the error, or cuBLASLt's status.

    CUBLASLT_LOG_MASK=1 python benchmarks/fp8_epilogue_support.py [--rows 8800]     # Hopper GPU, nvmath-python
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_latency import rel_error  # noqa: E402

from revise.models.fp8 import E4M3, E4M3_MAX, fp8_supported, quantize_rows  # noqa: E402
from revise.models.fp8_attention import quantize_tensor  # noqa: E402
from revise.models.fp8_gelu_matmul import plan  # noqa: E402

DIM, HIDDEN = 1536, 8960            # wan2.1-1.3b's feed-forward


def combinations():
    """(result, epilog, bias dtype or None, C type or None for nvmath's, scales) to ask about."""
    for result, epilog, scales in itertools.product((E4M3, torch.bfloat16), ("DEFAULT", "BIAS", "GELU", "GELU_BIAS"),
                                                    ("tensor", "rows", "w_rows", "x_rows")):
        biases = (torch.bfloat16, torch.float16) if "BIAS" in epilog else (None,)
        cs = (torch.float16, torch.bfloat16) if result == E4M3 else (None,)
        for bias, c in itertools.product(biases, cs):
            yield result, epilog, bias, c, scales


def expected(x8, x_descale, w8, w_descale, bias, out_scale, epilog, result):
    """The float32 computation the matmul stands for."""
    y = (x8.float() @ w8.float().t()) * x_descale.reshape(-1, 1) * w_descale.reshape(1, -1)
    if "BIAS" in epilog:
        y = y + bias.float()
    if "GELU" in epilog:
        y = F.gelu(y, approximate="tanh")
    return (y * out_scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3).float() if result == E4M3 else y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8800, help="input rows: both guidance branches of 4400 tokens")
    args = ap.parse_args()
    ok, why = fp8_supported("cuda") if torch.cuda.is_available() else (False, "this benchmark needs a CUDA GPU")
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    try:
        import nvmath
        from nvmath.bindings import cublasLt
    except Exception as err:
        print(f"error: nvmath-python does not import ({type(err).__name__}: {err})", file=sys.stderr)
        sys.exit(2)
    cuda = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, nvmath-python {nvmath.__version__}, "
          f"cuBLASLt {cublasLt.get_version()}; [{args.rows}, {DIM}] @ [{HIDDEN}, {DIM}]^T")
    torch.manual_seed(0)
    x = F.layer_norm(torch.randn(args.rows, DIM, device=cuda), (DIM,)).to(torch.bfloat16)
    w = (torch.randn(HIDDEN, DIM, device=cuda) / DIM ** 0.5).to(torch.bfloat16)
    bias = 0.1 * torch.randn(HIDDEN, device=cuda)
    (x8r, x_rows), (w8r, w_rows) = quantize_rows(x), quantize_rows(w)
    (x8t, x_one), (w8t, w_one) = quantize_tensor(x), quantize_tensor(w)
    operands = {"tensor": (x8t, x_one.reshape(1), w8t, w_one.reshape(1)),
                "rows": (x8r, x_rows.reshape(-1).contiguous(), w8r, w_rows.reshape(-1).contiguous()),
                "w_rows": (x8t, x_one.reshape(1), w8r, w_rows.reshape(-1).contiguous()),
                "x_rows": (x8r, x_rows.reshape(-1).contiguous(), w8t, w_one.reshape(1))}
    out_scale = torch.full((1,), 64.0, device=cuda)       # e4m3 in range for these magnitudes
    print("| result | epilog | bias | C | scales | cuBLASLt |")
    print("| --- | --- | --- | --- | --- | --- |")
    runs = 0
    for result, epilog, bias_dtype, c, scales in combinations():
        x8, xd, w8, wd = operands[scales]
        b = bias.to(bias_dtype) if bias_dtype is not None else None
        try:
            mm = plan(x8, xd, w8, wd, b, out_scale, True, epilog=epilog, result=result, c_type=c)
            got = mm.execute().t().float()
            torch.cuda.synchronize()
            verdict = f"runs, error {rel_error(got, expected(x8, xd, w8, wd, b, out_scale, epilog, result)):.2e}"
            runs += 1
        except Exception as err:        # the status cuBLASLt gave, or nvmath's own refusal
            text = str(err)
            status = text[text.find("(CUBLAS_STATUS_") + 1:text.find(")", text.find("(CUBLAS_STATUS_"))] \
                if "(CUBLAS_STATUS_" in text else f"{type(err).__name__}: {text[:100]}"
            verdict = status
        name = {None: "-", torch.bfloat16: "bf16", torch.float16: "fp16"}
        c_name = name[c] if c is not None else "result's"
        print(f"| {'e4m3' if result == E4M3 else 'bf16'} | {epilog} | {name[bias_dtype]} | {c_name} | {scales} | {verdict} |")
    print(f"{runs} of {sum(1 for _ in combinations())} combinations run")


if __name__ == "__main__":
    main()
