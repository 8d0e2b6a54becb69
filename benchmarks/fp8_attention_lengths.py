"""cuDNN's FP8 attention at the DiT's lengths against lengths padded to a multiple of 128 (issue #24).

In bf16, cuDNN's attention ran 7.5% faster at 4480 x 4480 than at the released 4400 x 4400, for 3.7%
more FLOPs (`benchmarks/results/attention_lengths_h100.log`): at a key length that is not a multiple of
128 it masks every call's last tile (its frontend enables a "workaround padding mask" for such lengths).
This times cuDNN's FP8 kernel, [2, L, 12, 128] e4m3 token-major as the loop stores them, at:

- the released lengths (self 4400 x 4400, cross 4400 queries x 2560 context tokens), as
  ``revise.models.fp8_attention.fp8_attention`` runs them;
- lengths that are multiples of 128 (4352, 4480), the FLOPs they cost;
- the released lengths inside buffers of 4480 with cuDNN's padding mask (``use_padding_mask``, the real
  lengths in ``seq_len_q``/``seq_len_kv``): what padding the loop's q, k, v would buy. Its output rows
  are checked against the unpadded call's.

Each row: us a call (median of calls queued back to back) and TFLOP/s on the released lengths' FLOPs.

    python benchmarks/fp8_attention_lengths.py [--iters 50]       # Hopper GPU with nvidia-cudnn-frontend
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fp8_linear import timed  # noqa: E402

from revise.models.fp8 import E4M3  # noqa: E402
from revise.models.fp8_attention import P_SCALE, fp8_attention, fp8_attention_supported  # noqa: E402

B, H, D = 2, 12, 128


def padded_attention(lq: int, lk: int, pad_q: int, pad_k: int):
    """A callable running cuDNN's FP8 attention on buffers of ``pad_q`` queries and ``pad_k`` keys whose
    first ``lq``/``lk`` are real (padding mask), and its inputs: (call, q, k, v, out)."""
    import cudnn

    handle = cudnn.create_handle()
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream().cuda_stream)
    q = torch.randn(B, pad_q, H, D, device="cuda").to(E4M3)
    k = torch.randn(B, pad_k, H, D, device="cuda").to(E4M3)
    v = torch.randn(B, pad_k, H, D, device="cuda").to(E4M3)
    out = torch.empty(B, pad_q, H, D, device="cuda", dtype=E4M3)
    e4m3, fp32, i32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT, cudnn.data_type.INT32
    graph = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=fp32, compute_data_type=fp32, handle=handle)

    def heads_major(t):
        (b, length, h, d), (sb, sl, sh, sd) = t.shape, t.stride()
        return [b, h, length, d], [sb, sh, sl, sd]

    t = {name: graph.tensor(name=name, dim=heads_major(x)[0], stride=heads_major(x)[1], data_type=e4m3)
         for name, x in (("q", q), ("k", k), ("v", v))}
    for name in ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o"):
        t[name] = graph.tensor(name=name, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=fp32)
    padding = pad_q != lq or pad_k != lk
    extra = {}
    if padding:
        t["seq_q"] = graph.tensor(name="seq_q", dim=[B, 1, 1, 1], stride=[1, 1, 1, 1], data_type=i32)
        t["seq_kv"] = graph.tensor(name="seq_kv", dim=[B, 1, 1, 1], stride=[1, 1, 1, 1], data_type=i32)
        extra = {"use_padding_mask": True, "seq_len_q": t["seq_q"], "seq_len_kv": t["seq_kv"]}
    o, _, amax_s, amax_o = graph.sdpa_fp8(
        q=t["q"], k=t["k"], v=t["v"], descale_q=t["descale_q"], descale_k=t["descale_k"], descale_v=t["descale_v"],
        descale_s=t["descale_s"], scale_s=t["scale_s"], scale_o=t["scale_o"], generate_stats=False,
        attn_scale=1.0 / math.sqrt(D), name="sdpa_fp8", **extra)
    o.set_output(True).set_dim(heads_major(out)[0]).set_stride(heads_major(out)[1]).set_data_type(e4m3)
    for amax in (amax_s, amax_o):
        amax.set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(fp32)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    graph.build_plans()
    workspace = torch.empty(max(1, graph.get_workspace_size()), device="cuda", dtype=torch.uint8)
    one = torch.ones(1, device="cuda")
    pack = {t["q"]: q, t["k"]: k, t["v"]: v, t["descale_q"]: one, t["descale_k"]: one, t["descale_v"]: one,
            t["descale_s"]: torch.full((1,), 1 / P_SCALE, device="cuda"),
            t["scale_s"]: torch.full((1,), P_SCALE, device="cuda"), t["scale_o"]: one, o: out}
    if padding:
        pack[t["seq_q"]] = torch.full((B, 1, 1, 1), lq, device="cuda", dtype=torch.int32)
        pack[t["seq_kv"]] = torch.full((B, 1, 1, 1), lk, device="cuda", dtype=torch.int32)

    def call():
        graph.execute(pack, workspace, handle=handle)
        return out

    return call, q, k, v, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    ok, why = fp8_attention_supported("cuda") if torch.cuda.is_available() else (False, "no CUDA GPU")
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    import cudnn

    cuda = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {cudnn.backend_version_string()}")
    print("| attention | real lengths | buffers | us | TFLOP/s on the real lengths | output rows vs unpadded |")
    print("| --- | --- | --- | --- | --- | --- |")
    torch.manual_seed(0)
    with torch.no_grad():
        for label, lq, lk, shapes in (("self", 4400, 4400, ((4400, 4400), (4352, 4352), (4480, 4480))),
                                      ("cross", 4400, 2560, ((4400, 2560), (4480, 2560)))):
            flop = 4 * B * H * lq * lk * D
            base = None
            for pq, pk in shapes:
                call, q, k, v, out = padded_attention(pq, pk, pq, pk)
                if (pq, pk) == (lq, lk):       # the package's own path on the same inputs, then the raw graph
                    one = torch.ones((), device="cuda")
                    us = timed(lambda: fp8_attention(q, k, v, one, one, one, one), cuda, args.iters) * 1e6
                    print(f"| {label} | {lq} x {lk} | (fp8_attention) | {us:.1f} | {flop / us / 1e6:.0f} | |")
                    base = (q, k, v, fp8_attention(q, k, v, one, one, one, one).float())
                us = timed(call, cuda, args.iters) * 1e6
                real = 4 * B * H * pq * pk * D
                print(f"| {label} | {pq} x {pk} | {pq} x {pk} | {us:.1f} | {real / us / 1e6:.0f} (its own FLOPs) | |")
            pad_q = 4480
            pad_k = lk if lk % 128 == 0 else 4480
            try:
                call, q, k, v, out = padded_attention(lq, lk, pad_q, pad_k)
            except Exception as error:        # a cuDNN that has no padding mask for FP8 attention
                print(f"| {label} | {lq} x {lk} | {pad_q} x {pad_k}, padding mask | failed: {str(error)[:120]} | | |")
                continue
            q0, k0, v0, want = base
            q[:, :lq], k[:, :lk], v[:, :lk] = q0, k0, v0
            us = timed(call, cuda, args.iters) * 1e6
            got = call()[:, :lq].float()
            diff = ((got - want).norm() / want.norm()).item()
            print(f"| {label} | {lq} x {lk} | {pad_q} x {pad_k}, padding mask | {us:.1f} | {flop / us / 1e6:.0f} | "
                  f"{diff:.1e} relative |")


if __name__ == "__main__":
    main()
