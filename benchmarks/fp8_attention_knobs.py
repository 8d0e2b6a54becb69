"""cuDNN's FP8 attention under every engine and kernel configuration it offers, at the loop's layouts (#24).

The loop runs the plan that cuDNN's heuristics rank first (on an H100 ``..._f8_knob_32_64x256x128_...``:
keys 256 at a time, so 4400 keys take 18 tiles for 17.2 tiles' work), and timing every plan the
heuristics offer found none faster (``fp8_attention.AUTOTUNE``, 2026-12-07). The heuristics offer
one configuration per engine; each engine has more, chosen by its knobs
(``graph.get_knobs_for_engine``), KERNEL_CFG among them. This builds, on a fresh graph of the
package's (``fp8_attention.sdpa_graph``) for each, a plan for every engine and every KERNEL_CFG value
(``graph.create_execution_plan(engine, {KERNEL_CFG: value})``), times it (median of calls queued
back to back) and compares its output with the heuristics' plan (``fp8_attention``). A faster
configuration would be the next thing for ``fp8_attention`` to choose; the other knobs are left to
cuDNN and listed.

Cases, [2, L, 12, 128] e4m3 token-major as the loop stores them: self-attention 4400 x 4400 in
buffers of 4480 with the padding mask (the loop with ``attention_ops.PAD_MULTIPLE = 128``),
self-attention 4400 x 4400 unpadded (the loop's default now), cross-attention 4400 x 2560.

    python benchmarks/fp8_attention_knobs.py [--iters 30] [--budget-s 300] [--json out.json]   # Hopper GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fp8_attention_lengths import B, D, H, fp8_attention_gpu, inputs  # noqa: E402
from fp8_linear import timed  # noqa: E402

from revise.models.fp8 import E4M3  # noqa: E402
from revise.models.fp8_attention import fp8_attention, scratch_tensors, sdpa_graph, variant_pack  # noqa: E402

CASES = (("self, padded", 4400, 4400, 4480, 4480), ("self", 4400, 4400, 4400, 4400),
         ("cross", 4400, 2560, 4400, 2560))          # label, real lengths, buffer lengths


def knob_choices(knobs, kernel_cfg) -> list[dict]:
    """One knob map per value of the KERNEL_CFG knob (type ``kernel_cfg``) among ``knobs`` (objects
    with ``type``, ``min_value``, ``max_value``, ``stride``), the other knobs left to cuDNN; [{}] if
    the engine has no such knob."""
    cfg = [k for k in knobs if k.type == kernel_cfg]
    if not cfg:
        return [{}]
    k = cfg[0]
    return [{k.type: value} for value in range(k.min_value, k.max_value + 1, max(1, k.stride))]


def describe(knobs) -> str:
    return ", ".join(f"{str(k.type).rsplit('.', 1)[-1]} {k.min_value}..{k.max_value}/{k.stride}" for k in knobs)


def plan_for(q, k, v, out, valid: dict, engine: int, choice: dict):
    """A callable running cuDNN's FP8 attention on these tensors with ``engine`` and knob ``choice``,
    and the plan's name."""
    import cudnn

    graph, t, handle = sdpa_graph(q, k, v, out, **valid)
    graph.create_execution_plan(engine, choice)
    graph.check_support()
    graph.build_plans()
    workspace = torch.empty(max(1, graph.get_workspace_size()), device=q.device, dtype=torch.uint8)
    one = torch.ones((), device=q.device)
    pack = variant_pack(t, scratch_tensors(q, k, **valid), q, k, v, one, one, one, one, out)
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream().cuda_stream)
    try:
        name = graph.get_plan_name_at_index(0)
    except Exception:
        name = "?"
    return (lambda: graph.execute(pack, workspace, handle=handle)), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--budget-s", type=float, default=300.0, help="stop trying configurations after this long")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cudnn = fp8_attention_gpu()
    cuda = torch.device("cuda")
    start, rows, untried = time.perf_counter(), [], 0
    torch.manual_seed(0)
    with torch.no_grad():
        for label, lq, lk, pq, pk in CASES:
            q, k, v, one = inputs(pq, pk)
            valid = {"valid_q": lq, "valid_kv": lk} if (pq, pk) != (lq, lk) else {"valid_q": 0, "valid_kv": 0}
            want = fp8_attention(q, k, v, one, one, one, one, **valid)[:, :lq].float()
            base_us = timed(lambda: fp8_attention(q, k, v, one, one, one, one, **valid), cuda, args.iters) * 1e6
            flop = 4 * B * H * lq * lk * D
            print(f"\n{label}: real {lq} x {lk} in {pq} x {pk}; the heuristics' plan (fp8_attention) {base_us:.1f} us, "
                  f"{flop / base_us / 1e6:.0f} TFLOP/s")
            print("| engine | knobs | plan | us | TFLOP/s | vs heuristics' plan | output vs it |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            graph, _, _ = sdpa_graph(q, k, v, torch.empty(*q.shape[:3], D, device=cuda, dtype=E4M3), **valid)
            for engine in range(graph.get_engine_count()):
                try:
                    knobs = graph.get_knobs_for_engine(engine)
                except Exception as error:             # an engine that does not take this graph
                    print(f"| {engine} | not for this graph: {str(error).splitlines()[0][:80]} | | | | | |")
                    continue
                print(f"| {engine} | knobs: {describe(knobs) or 'none'} | | | | | |")
                for choice in knob_choices(knobs, cudnn.knob_type.KERNEL_CFG):
                    shown = ", ".join(f"{str(t).rsplit('.', 1)[-1]}={n}" for t, n in choice.items()) or "cuDNN's"
                    if time.perf_counter() - start > args.budget_s:
                        untried += 1
                        continue
                    out = torch.empty(*q.shape[:3], D, device=cuda, dtype=E4M3)
                    try:
                        run, name = plan_for(q, k, v, out, valid, engine, choice)
                        run()
                        torch.cuda.synchronize()
                    except Exception as error:         # a configuration this device or graph refuses
                        print(f"| {engine} | {shown} | refused: {str(error).splitlines()[0][:80]} | | | | |")
                        continue
                    us = timed(run, cuda, args.iters) * 1e6
                    diff = ((out[:, :lq].float() - want).norm() / want.norm()).item()
                    print(f"| {engine} | {shown} | {name} | {us:.1f} | {flop / us / 1e6:.0f} | {us / base_us:.3f}x | "
                          f"{diff:.1e} |")
                    rows.append({"case": label, "engine": engine, "knobs": shown, "plan": name, "us": us,
                                 "heuristics_us": base_us, "output_rel_diff": diff})
    if untried:
        print(f"\n{untried} configurations not tried: the --budget-s of {args.budget_s:.0f} s ran out")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                               "rows": rows, "untried": untried}, indent=2))


if __name__ == "__main__":
    main()
