"""Attention on FP8 (e4m3) queries, keys and values: cuDNN's fused FP8 attention on Hopper.

The bf16 fast path spends about a third of the denoising loop's time in attention (cuDNN's fused
bf16 kernel at ~530 TFLOP/s on an H100, `docs/performance.md`), so FP8 matmuls in the linears alone
cannot bring the loop under the bf16 FLOP bound. cuDNN has a fused FP8 attention forward for Hopper
and newer GPUs (``sdpa_fp8`` in NVIDIA's cuDNN frontend, the ``nvidia-cudnn-frontend`` package);
this module runs it on PyTorch tensors:

- :func:`fp8_attention` takes q, k, v in e4m3 as [B, L, heads, head_dim] (any strides with a dense
  last dimension: the layouts the fast path already writes) with one float32 descale each (the real
  value is the e4m3 value times its descale: "per-tensor" scaling, the only kind cuDNN's FP8 kernel
  has on Hopper), and returns the output in e4m3, token-major [B, L, heads, head_dim], times
  ``scale_o``. On Hopper cuDNN writes the output only in FP8; the caller picks ``scale_o`` and hands
  the output, with the descale ``1 / scale_o``, straight to the FP8 output projection
  (:meth:`~revise.models.fp8.Fp8Linear.forward_quantized`).
- Inside, the softmax probabilities P (in [0, 1]) are cast to e4m3 times 448 for the P.V matmul.
- It is a ``torch.library.custom_op``, so compiled blocks keep one graph around it. Off CUDA it runs
  :func:`fp8_attention_reference` (dequantize, attention in float32, quantize), which the tests use.

Inputs padded past their real length (``valid_q``, ``valid_kv``: rows from there on are ignored, the
output's are left unset) run with cuDNN's padding mask. At the released self-attention length, 4400 (not
a multiple of the kernel's tiles), 4400 real rows in buffers of 4480 took 298.5 us a call against 328.1
unpadded, with the same output bytes; padding the cross-attention's queries (its 2560 keys are whole
tiles) was slower, 174.6 against 166.0 us (`benchmarks/fp8_attention_lengths.py`, H100, 2026-12-08).

Each call builds nothing after the first at a given shape and stride: cuDNN's plans are built once
per layout and kept (:data:`_GRAPHS`). The plan is the one cuDNN's heuristics rank first, which in
the denoising loop on an H100 ran at 755-764 TFLOP/s (`docs/performance.md`). With :data:`AUTOTUNE`
set, every plan the heuristics offer (modes A, B and the fallback list) is built instead, and the
first call at a layout times each one on its inputs and keeps the fastest, as
``torch.backends.cudnn.benchmark`` does for convolutions (the timings: :func:`plan_timings`). It is
off until it has been measured on a GPU (``benchmarks/fp8_loop_variants.py tuned``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ReviseInputError
from .fp8 import E4M3, E4M3_MAX, fp8_supported, to_e4m3
from .triton_e4m3 import triton_runs_on

P_SCALE = E4M3_MAX          # the softmax probabilities, at most 1, are cast to e4m3 times this


def fp8_attention_supported(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` can run cuDNN's FP8 attention, and if not, why (one line)."""
    ok, why = fp8_supported(device)
    if not ok:
        return False, why.replace("FP8 matmuls need", "FP8 attention needs")
    device = torch.device(device)
    major, minor = torch.cuda.get_device_capability(device)
    if major < 9:
        return False, (f"FP8 attention needs cuDNN's FP8 kernel, which runs on Hopper (compute capability 9.0) "
                       f"and newer; {torch.cuda.get_device_name(device)} is {major}.{minor}")
    try:
        import cudnn
    except ImportError:
        return False, "FP8 attention needs NVIDIA's cuDNN frontend: pip install nvidia-cudnn-frontend"
    if cudnn.backend_version() < 90100:
        return False, f"FP8 attention needs cuDNN 9.1 or newer; this process has {cudnn.backend_version_string()}"
    return True, ""


def check_fp8_attention_device(device: torch.device | str) -> None:
    ok, why = fp8_attention_supported(device)
    if not ok:
        raise ReviseInputError(why)


def quantize_tensor(x: torch.Tensor, descale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` -> (e4m3, float32 descale []) with one scale for the whole tensor, in ``x``'s layout:
    ``x / descale``, saturated at 448. ``descale`` defaults to the one that maps ``x``'s largest
    magnitude to 448 (a reduction over ``x``); one given (float32, one element, e.g. from a bound on
    ``x``, ``attention_ops.value_descale``) skips that pass. Outside ``torch.compile``, on CUDA (or
    in Triton's interpreter) and for a tensor whose elements fill its storage in some order, the
    division and cast are one Triton pass (:func:`_scale_to_e4m3`); PyTorch's ops take six passes and
    float32 temporaries, which for the cross-attention K/V of every block (``context_kv.py``) cost
    the denoising loop 10-15 ms per edit on an H100. The two give the same bytes."""
    kernel = not torch.compiler.is_compiling() and _kernel_applies(x)
    if descale is None:
        amax = torch.linalg.vector_norm(x, float("inf")) if kernel else x.abs().amax()
        descale = amax.float().clamp(min=1e-12) / E4M3_MAX
    else:
        descale = descale.float().reshape(())
    if kernel:
        return _scale_to_e4m3(x, descale), descale
    return (x.float() / descale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), descale


try:
    import triton
    import triton.language as tl
except ImportError:        # CPU-only installs: PyTorch's ops
    triton = None
else:
    from .triton_e4m3 import e4m3_store_bits, native_cast

    @triton.jit
    def _scale_kernel(x_ptr, descale_ptr, q_ptr, n, BLOCK: tl.constexpr, NATIVE: tl.constexpr):
        i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + i, mask=i < n, other=0.0).to(tl.float32)
        tl.store(q_ptr + i, e4m3_store_bits(x / tl.load(descale_ptr), NATIVE), mask=i < n)


def _dense(x: torch.Tensor) -> bool:
    """Whether ``x``'s elements fill ``x.numel()`` consecutive slots of its storage (any dim order)."""
    size = 1
    for n, st in sorted(((n, st) for n, st in zip(x.shape, x.stride()) if n != 1), key=lambda p: p[1]):
        if st != size:
            return False
        size *= n
    return True


def _kernel_applies(x: torch.Tensor) -> bool:
    return (x.numel() > 0 and _dense(x) and not (torch.is_grad_enabled() and x.requires_grad)
            and triton_runs_on(x))


def _scale_to_e4m3(x: torch.Tensor, descale: torch.Tensor) -> torch.Tensor:
    """``x / descale`` saturated to e4m3 (as ``(x.float() / descale).clamp(-448, 448).to(e4m3)``),
    in ``x``'s strides, by one Triton pass over its storage."""
    out = torch.empty_strided(x.shape, x.stride(), device=x.device, dtype=torch.uint8)
    base = x.storage_offset()
    flat = x.as_strided((x.numel(),), (1,), base)
    block = 4096
    _scale_kernel[(triton.cdiv(x.numel(), block),)](flat, descale, out.as_strided((x.numel(),), (1,)), x.numel(),
                                                    BLOCK=block, NATIVE=native_cast(x), num_warps=8)
    return out.view(E4M3)


def fp8_attention_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, descale_q: torch.Tensor,
                            descale_k: torch.Tensor, descale_v: torch.Tensor, scale_o: torch.Tensor,
                            valid_q: int = 0, valid_kv: int = 0) -> torch.Tensor:
    """What :func:`fp8_attention` computes, in float32 PyTorch (P is not rounded to e4m3 here); output
    rows from ``valid_q`` on are zeros."""
    lq, lk = valid_q or query.shape[1], valid_kv or key.shape[1]
    q, k, v = (t[:, :n].float() * s.float() for t, s, n in ((query, descale_q, lq), (key, descale_k, lk), (value, descale_v, lk)))
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    out = F.pad(out, (0, 0, 0, 0, 0, query.shape[1] - lq))
    return to_e4m3(out, scale_o).contiguous()


# ---- cuDNN ----------------------------------------------------------------------------------------

_GRAPHS: dict[tuple, tuple] = {}      # layout -> (graph, its tensors, workspace, scratch, handle, plans)
_HANDLES: dict[int, object] = {}      # device index -> cuDNN handle
_STREAMS: dict[int, int] = {}         # device index -> the stream its handle was last set to
AUTOTUNE = False        # True: time every plan the heuristics offer on the first call at a layout, keep the fastest
TIMING_CALLS = 5        # timed calls per plan (after one untimed)


def _heads_major(t: torch.Tensor) -> tuple[list[int], list[int]]:
    """cuDNN's [B, heads, L, head_dim] dims and strides of a [B, L, heads, head_dim] tensor."""
    b, length, h, d = t.shape
    sb, sl, sh, sd = t.stride()
    return [b, h, length, d], [sb, sh, sl, sd]


def _handle(device: torch.device):
    import cudnn

    if device.index not in _HANDLES:
        _HANDLES[device.index] = cudnn.create_handle()
    return _HANDLES[device.index]


def sdpa_graph(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, out: torch.Tensor, valid_q: int = 0,
               valid_kv: int = 0) -> tuple:
    """cuDNN's FP8 attention graph for these tensors' layout, validated and lowered, without execution
    plans: (graph, its tensors by name, handle). :func:`_graph` adds the plans and keeps it;
    ``benchmarks/fp8_attention_knobs.py`` builds its own plans on it."""
    import cudnn

    padded = bool(valid_q or valid_kv)
    handle = _handle(query.device)
    e4m3, fp32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
    graph = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=fp32, compute_data_type=fp32, handle=handle)
    tensors = {}
    for name, t in (("q", query), ("k", key), ("v", value)):
        dim, stride = _heads_major(t)
        tensors[name] = graph.tensor(name=name, dim=dim, stride=stride, data_type=e4m3)
    for name in ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o"):
        tensors[name] = graph.tensor(name=name, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=fp32)
    mask = {}
    if padded:                    # the real lengths, one per batch row
        batch = query.shape[0]
        for name in ("seq_len_q", "seq_len_kv"):
            tensors[name] = graph.tensor(name=name, dim=[batch, 1, 1, 1], stride=[1, 1, 1, 1],
                                         data_type=cudnn.data_type.INT32)
        mask = {"use_padding_mask": True, "seq_len_q": tensors["seq_len_q"], "seq_len_kv": tensors["seq_len_kv"]}
    # The amax of S and O stay virtual: nothing reads them, and as outputs cuDNN clears each before every
    # call (two memsets a call: 4 a block, the same output bytes; 2026-12-07 run 7, docs/performance.md).
    o, _, amax_s, amax_o = graph.sdpa_fp8(
        q=tensors["q"], k=tensors["k"], v=tensors["v"], descale_q=tensors["descale_q"], descale_k=tensors["descale_k"],
        descale_v=tensors["descale_v"], descale_s=tensors["descale_s"], scale_s=tensors["scale_s"],
        scale_o=tensors["scale_o"], generate_stats=False, attn_scale=1.0 / math.sqrt(query.shape[-1]), name="sdpa_fp8",
        **mask)
    dim, stride = _heads_major(out)
    o.set_output(True).set_dim(dim).set_stride(stride).set_data_type(e4m3)
    tensors["o"] = o
    for amax in (amax_s, amax_o):
        amax.set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(fp32)
    graph.validate()
    graph.build_operation_graph()
    return graph, tensors, handle


def scratch_tensors(query: torch.Tensor, key: torch.Tensor, valid_q: int = 0, valid_kv: int = 0) -> dict:
    """The graph's inputs that are the same on every call: the softmax probabilities' e4m3 scale and
    descale, and with padding the real lengths, one per batch row."""
    device = query.device
    scratch = {"scale_s": torch.full((1,), P_SCALE, device=device),
               "descale_s": torch.full((1,), 1.0 / P_SCALE, device=device)}
    if valid_q or valid_kv:
        for name, n in (("seq_len_q", valid_q or query.shape[1]), ("seq_len_kv", valid_kv or key.shape[1])):
            scratch[name] = torch.full((query.shape[0], 1, 1, 1), n, device=device, dtype=torch.int32)
    return scratch


def variant_pack(t: dict, scratch: dict, query, key, value, descale_q, descale_k, descale_v, scale_o, out) -> dict:
    """cuDNN's map from the graph's tensors (``t``, by name) to this call's device tensors."""
    pack = {t["q"]: query, t["k"]: key, t["v"]: value, t["descale_q"]: descale_q, t["descale_k"]: descale_k,
            t["descale_v"]: descale_v, t["descale_s"]: scratch["descale_s"], t["scale_s"]: scratch["scale_s"],
            t["scale_o"]: scale_o, t["o"]: out}
    if "seq_len_q" in t:
        pack.update({t["seq_len_q"]: scratch["seq_len_q"], t["seq_len_kv"]: scratch["seq_len_kv"]})
    return pack


def _graph(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, out: torch.Tensor, valid_q: int = 0,
           valid_kv: int = 0) -> tuple:
    import cudnn

    layout = (query.device.index, *(tuple(t.shape) + t.stride() for t in (query, key, value, out)), valid_q, valid_kv)
    if layout in _GRAPHS:
        return _GRAPHS[layout]
    device = query.device
    graph, tensors, handle = sdpa_graph(query, key, value, out, valid_q, valid_kv)
    modes = [cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK]
    try:
        graph.create_execution_plans(modes[:1] + [cudnn.heur_mode.B] + modes[1:] if AUTOTUNE else modes)
    except Exception:             # a cuDNN whose mode-B heuristics do not cover this graph
        if not AUTOTUNE:
            raise
        graph.create_execution_plans(modes)
    graph.check_support()
    built = []                    # (plan index, name), in the heuristics' order
    for i in range(graph.get_execution_plan_count() if AUTOTUNE else 0):
        try:
            graph.build_plan_at_index(i)
        except Exception:         # a candidate this device or layout refuses: the others remain
            continue
        built.append((i, graph.get_plan_name_at_index(i)))
    if not built:                 # no autotuning, or no candidate built one by one: the heuristics' first
        graph.build_plans()
    sizes = [graph.get_workspace_size_plan_at_index(i) for i, _ in built] or [graph.get_workspace_size()]
    workspace = torch.empty(max(1, *sizes), device=device, dtype=torch.uint8)
    scratch = scratch_tensors(query, key, valid_q, valid_kv)
    plans = {"built": built, "chosen": None if len(built) > 1 else (built[0][0] if built else -1), "timings": []}
    _GRAPHS[layout] = (graph, tensors, workspace, scratch, handle, plans)
    return _GRAPHS[layout]


def _fastest_plan(graph, pack: dict, workspace: torch.Tensor, handle, plans: dict) -> int:
    """Time every built plan on this call's inputs; record the timings and return the fastest's index."""
    stream = torch.cuda.current_stream(workspace.device)
    for index, name in plans["built"]:
        try:
            graph.execute_plan_at_index(pack, workspace, index, handle=handle)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            for _ in range(TIMING_CALLS):
                graph.execute_plan_at_index(pack, workspace, index, handle=handle)
            end.record(stream)
            end.synchronize()
            plans["timings"].append((name, start.elapsed_time(end) * 1000 / TIMING_CALLS))
        except Exception:         # a plan that built but will not run here
            plans["timings"].append((name, float("inf")))
    best = min(range(len(plans["built"])), key=lambda j: plans["timings"][j][1])
    return plans["built"][best][0]


def plan_timings() -> dict[tuple, list[tuple[str, float]]]:
    """Per layout run so far (device; shape and strides of q, k, v and the output; the real query and
    key lengths, 0 where not padded): each
    candidate plan's name and microseconds per call on its first inputs, and which one runs (``*``)."""
    out = {}
    for layout, entry in _GRAPHS.items():
        plans = entry[-1]
        names = {index: name for index, name in plans["built"]}
        out[layout] = [(("* " if names.get(plans["chosen"]) == name else "  ") + name, us)
                       for name, us in plans["timings"]]
    return out


def layout_fields(layout: tuple) -> list:
    """A :func:`plan_timings` layout without its device, tuples as lists (for printing and JSON):
    shape+strides of q, k, v and the output, then the real query and key lengths."""
    return [list(x) if isinstance(x, tuple) else x for x in layout[1:]]


def _cudnn_fp8_attention(query, key, value, descale_q, descale_k, descale_v, scale_o, valid_q=0, valid_kv=0):
    import cudnn

    out = torch.empty(*query.shape[:3], value.shape[-1], device=query.device, dtype=E4M3)
    graph, t, workspace, scratch, handle, plans = _graph(query, key, value, out, valid_q, valid_kv)
    stream = torch.cuda.current_stream(query.device).cuda_stream
    if _STREAMS.get(query.device.index) != stream:      # set only on a change: each call costs the host
        cudnn.set_stream(handle=handle, stream=stream)    # microseconds, 60 calls a step
        _STREAMS[query.device.index] = stream
    pack = variant_pack(t, scratch, query, key, value, descale_q, descale_k, descale_v, scale_o, out)
    if plans["chosen"] is None:
        plans["chosen"] = _fastest_plan(graph, pack, workspace, handle, plans)
    if plans["chosen"] < 0:
        graph.execute(pack, workspace, handle=handle)
    else:
        graph.execute_plan_at_index(pack, workspace, plans["chosen"], handle=handle)
    return out


@torch.library.custom_op("revise::fp8_attention", mutates_args=())
def _fp8_attention_op(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, descale_q: torch.Tensor,
                      descale_k: torch.Tensor, descale_v: torch.Tensor, scale_o: torch.Tensor, valid_q: int,
                      valid_kv: int) -> torch.Tensor:
    if query.is_cuda:
        return _cudnn_fp8_attention(query, key, value, descale_q, descale_k, descale_v, scale_o, valid_q, valid_kv)
    return fp8_attention_reference(query, key, value, descale_q, descale_k, descale_v, scale_o, valid_q, valid_kv)


@_fp8_attention_op.register_fake
def _(query, key, value, descale_q, descale_k, descale_v, scale_o, valid_q, valid_kv):
    return query.new_empty(*query.shape[:3], value.shape[-1], dtype=E4M3)


def fp8_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, descale_q: torch.Tensor,
                  descale_k: torch.Tensor, descale_v: torch.Tensor, scale_o: torch.Tensor, valid_q: int = 0,
                  valid_kv: int = 0) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v of e4m3 ``query`` [B, Lq, heads, head_dim], ``key`` and ``value``
    [B, Lk, heads, head_dim], each real value being the e4m3 value times its float32 descale (one
    element each); returns that times ``scale_o`` in e4m3, [B, Lq, heads, head_dim] contiguous.
    ``valid_q``/``valid_kv`` (0: all): only the first that many queries/keys are real (padding mask);
    the output rows past ``valid_q`` are then unset on CUDA (zeros on the CPU)."""
    for name, n, t in (("valid_q", valid_q, query), ("valid_kv", valid_kv, key)):
        if not 0 <= n <= t.shape[1]:
            raise ValueError(f"fp8_attention: {name} must be in 0..{t.shape[1]}, got {n}")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dtype != E4M3 or t.dim() != 4 or t.stride(-1) != 1:
            raise ValueError(f"fp8_attention: {name} must be e4m3 [B, L, heads, head_dim] with a dense last "
                             f"dimension, got {t.dtype} {list(t.shape)} strides {t.stride()}")
    if valid_q in (0, query.shape[1]) and valid_kv in (0, key.shape[1]):       # nothing padded
        valid_q = valid_kv = 0
    return _fp8_attention_op(query, key, value, descale_q, descale_k, descale_v, scale_o, int(valid_q), int(valid_kv))
