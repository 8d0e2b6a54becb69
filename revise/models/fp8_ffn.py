"""The DiT's feed-forward in FP8, with its GELU and the second matmul's input quantization in one pass.

Wan's feed-forward is ``Linear(d, f) -> GELU(tanh) -> Linear(f, d)`` with f = 8960 at 1.3B. With FP8
linears (``fp8.py``) the first matmul returns bf16 (``torch._scaled_mm`` has no GELU epilogue), and
the second needs its input in e4m3 with one scale per row, i.e. each row's largest magnitude after the
GELU. Compiled, Inductor fuses GELU, the row maximum and the cast into one kernel, but over rows of 8960
values it emits a looped reduction that reads each row twice and recomputes the GELU; on an H100 at
the released shapes that kernel took 8.7 ms of a 52.6 ms denoising step (`docs/performance.md`).

:func:`gelu_quantize_rows` does it in one read of each row: a Triton kernel, one program per row held
in registers, computing in float32 and writing e4m3 (``triton_e4m3.py``) and the row's scale. With
the 8960-wide row in one padded 16384-lane block and e4m3 encoded by integer arithmetic, it took 6.3 ms
a step on an H100 (2026-12-07), compute-bound: about twice its time at memory speed. A row is now a
power-of-two head and a short tail (8192 + 1024 lanes), encoded with the GPU's own conversion
(``triton_e4m3.NATIVE_CAST``): 3.0 ms a step in the loop (100 us a call), within 1.3x of its time at
memory speed (`docs/performance.md`).
:class:`Fp8FeedForward` is the feed-forward built on it, swapped in by :func:`fp8_feed_forwards`.
The PyTorch computation (:func:`gelu_quantize_rows_reference`) is the CPU path and the tests' oracle;
it quantizes the float32 GELU (the stock path rounds it to bf16 first), so the CPU and GPU agree.

With the GELU epilogue (:func:`use_gelu_epilogues`, what ``enable_fp8`` uses on CUDA where
nvmath-python imports) there is no such pass: the up-projection's matmul applies the GELU in its
epilogue and writes e4m3 (``fp8_gelu_matmul.py``, cuBLASLt through nvmath-python) at one scale known
before it runs, from a bound (:func:`gelu_row_scales`: ``fp8.output_row_bounds`` of the feed-forward's
input, Cauchy-Schwarz). cuBLASLt writes e4m3 only from operands at one scale each (on an H100 it
refused row scales, `benchmarks/fp8_epilogue_support.py`), so the up-projection's weight is then
requantized at one scale and its input quantized per tensor. In the H100 loop (run 9) that took the
loop from 1.754 s to 1.693-1.713 s at the same final-latent error (`docs/performance.md`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fp8 import E4M3, E4M3_MAX, Fp8Linear, output_bound_weights, output_row_bounds, quantize_rows
from .fp8_attention import quantize_tensor
from .fp8_gelu_matmul import gelu_matmul
from .triton_e4m3 import triton_runs_on

try:
    import triton
    import triton.language as tl
except ImportError:        # CPU-only installs: the PyTorch path
    triton = None
else:
    from .triton_e4m3 import e4m3_store_bits, native_cast


# tanh-GELU's most negative value (at x = -0.7525): no output of the GELU is below -GELU_FLOOR, so a
# row's scale covers at least this magnitude, whatever the bound on its input says.
GELU_FLOOR = 0.1701


def gelu_row_scales(x: torch.Tensor, bound_weights: torch.Tensor) -> torch.Tensor:
    """float32 [M, 1]: the e4m3 scale of each row of tanh-GELU(up(x)), for the feed-forward's input
    ``x`` [..., K] and its up-projection's ``fp8.output_bound_weights``: the row's bound on up(x)
    (``fp8.output_row_bounds``; tanh-GELU(y) <= y for y > 0) or :data:`GELU_FLOOR`, whichever is
    larger, over 448."""
    bounds = output_row_bounds(x.reshape(-1, x.shape[-1]), bound_weights)
    return bounds.clamp(min=GELU_FLOOR) / E4M3_MAX


def gelu_quantize_rows_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` [M, N] -> tanh-GELU(x) as (e4m3 [M, N], float32 scales [M, 1]), quantized row by row
    (:func:`fp8.quantize_rows`), computed in float32."""
    return quantize_rows(F.gelu(x.float(), approximate="tanh"))


if triton is not None:
    @triton.jit
    def _gelu(x):
        # 0.5 x (1 + tanh(z)) = x * sigmoid(2 z), z = sqrt(2 / pi) (x + 0.044715 x^3)
        return x * tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))

    @triton.jit
    def _gelu_quantize_kernel(x_ptr, q_ptr, scale_ptr, N, stride, HEAD: tl.constexpr, TAIL: tl.constexpr,
                              NATIVE: tl.constexpr):
        # a row is a power-of-two head (HEAD <= N, or N's next power of two when TAIL is 0) and a tail
        # of TAIL lanes: 8960 values take 8192 + 1024 lanes instead of 16384, each lane's GELU and
        # encoding computed once
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, HEAD)
        mask = cols < N
        y = _gelu(tl.load(x_ptr + row * stride + cols, mask=mask, other=0.0).to(tl.float32))
        amax = tl.max(tl.abs(y), axis=0)                                   # masked lanes are 0
        if TAIL > 0:
            tail = HEAD + tl.arange(0, TAIL)
            tail_mask = tail < N
            y_tail = _gelu(tl.load(x_ptr + row * stride + tail, mask=tail_mask, other=0.0).to(tl.float32))
            amax = tl.maximum(amax, tl.max(tl.abs(y_tail), axis=0))
        scale = tl.maximum(amax, 1e-12) / 448.0
        tl.store(scale_ptr + row, scale)
        tl.store(q_ptr + row * N + cols, e4m3_store_bits(y / scale, NATIVE), mask=mask)
        if TAIL > 0:
            tl.store(q_ptr + row * N + tail, e4m3_store_bits(y_tail / scale, NATIVE), mask=tail_mask)

    def _row_split(n: int) -> tuple[int, int]:
        """(HEAD, TAIL) lanes for a row of ``n`` values: a tail only where it saves over a quarter of
        the lanes that one padded power-of-two block would take."""
        block = triton.next_power_of_2(n)
        head = block // 2
        if n <= head + head // 2 and n > head:
            return head, triton.next_power_of_2(n - head)
        return block, 0

    @torch.library.triton_op("revise::gelu_quantize_rows", mutates_args=())
    def _gelu_quantize_op(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the bits of the e4m3 values (uint8) [M, N], float32 scales [M, 1])."""
        rows, n = x.shape
        q = torch.empty(rows, n, device=x.device, dtype=torch.uint8)
        scale = torch.empty(rows, 1, device=x.device, dtype=torch.float32)
        # the block sizes and warps are compile-time constants: a row length that torch.compile made
        # dynamic (after a second width) is specialised here, else Inductor would emit symbolic
        # expressions for them that its generated code cannot evaluate
        head, tail = _row_split(int(n))
        # an 8192-lane head: 8 warps, 32 values a thread (on an H100 103 us a call at the released
        # shapes against 111 us with 16 warps and 108 with 4: benchmarks/fp8_kernel_configs.py)
        warps = max(1, min(8, head // 1024))
        torch.library.wrap_triton(_gelu_quantize_kernel)[(rows,)](
            x, q, scale, n, x.stride(0), HEAD=head, TAIL=tail, NATIVE=native_cast(x), num_warps=warps)
        return q, scale


def kernel_applies(x: torch.Tensor) -> bool:
    """Whether :func:`gelu_quantize_rows` runs the Triton kernel: CUDA (or Triton's interpreter), rows
    with a dense last dimension of up to 65536 values, and no gradient wanted (it has no backward)."""
    return (x.dim() == 2 and x.stride(-1) == 1 and 0 < x.shape[-1] <= 65536
            and not (torch.is_grad_enabled() and x.requires_grad)
            and triton_runs_on(x))


def gelu_quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gelu_quantize_rows_reference`, in one kernel launch where :func:`kernel_applies`."""
    if not kernel_applies(x):
        return gelu_quantize_rows_reference(x)
    q, scale = _gelu_quantize_op(x)
    return q.view(E4M3), scale


class Fp8FeedForward(nn.Module):
    """``up`` (an :class:`Fp8Linear`, its bias in the matmul), tanh-GELU and the row quantization of
    its output in one pass (:func:`gelu_quantize_rows`), then ``down`` on the e4m3 rows. With
    ``gelu_epilogue`` (:meth:`use_gelu_epilogue`) ``up`` and the GELU are one matmul writing e4m3 at one
    scale from a bound (:func:`gelu_row_scales` of the weights' ``bound_weights``), its input and
    weight at one scale each."""

    gelu_epilogue = False

    def __init__(self, up: Fp8Linear, down: Fp8Linear):
        super().__init__()
        self.up, self.down = up, down
        self.register_buffer("bound_weights", output_bound_weights(up), persistent=False)

    def use_gelu_epilogue(self) -> bool:
        """Run ``up`` and the GELU as one cuBLASLt matmul (``fp8_gelu_matmul.gelu_matmul``) from now on,
        where ``up`` has a bias (Wan's do; returns whether it does). Requantizes ``up``'s weight at one
        scale (:meth:`Fp8Linear.one_scale_`), which stays when the module is used otherwise."""
        if self.up.bias is None:
            return False
        self.up.one_scale_()
        self.bound_weights.copy_(output_bound_weights(self.up))
        self.gelu_epilogue = True
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gelu_epilogue:
            x8, x_descale = quantize_tensor(x.reshape(-1, self.up.in_features))
            descale = gelu_row_scales(x, self.bound_weights).amax().reshape(1)
            q = gelu_matmul(x8, x_descale.reshape(1), self.up.weight_fp8, self.up.weight_scale.reshape(-1)[:1],
                            self.up.bias.to(self.up.out_dtype), 1.0 / descale, self.up.fast_accum)
            return self.down.forward_quantized(q, descale).view(*x.shape[:-1], self.down.out_features)
        h = self.up(x)
        q, scale = gelu_quantize_rows(h.reshape(-1, h.shape[-1]))
        return self.down.forward_quantized(q, scale).view(*x.shape[:-1], self.down.out_features)


def _up_and_down(ffn: nn.Module) -> tuple[Fp8Linear, Fp8Linear] | None:
    """(up, down) of a diffusers ``FeedForward`` that is tanh-GELU between two FP8 linears with
    nothing else that computes (dropouts of p = 0, as in every Wan block), else None."""
    net = getattr(ffn, "net", None)
    if not isinstance(net, nn.ModuleList) or len(net) < 2:
        return None
    first, rest = net[0], list(net[1:])
    up, down = getattr(first, "proj", None), rest[-1] if rest else None
    tanh = getattr(first, "approximate", None) == "tanh"
    inert = all(isinstance(m, nn.Dropout) and m.p == 0 for m in rest[:-1])
    if tanh and inert and isinstance(up, Fp8Linear) and isinstance(down, Fp8Linear):
        return up, down
    return None


def use_gelu_epilogues(transformer: nn.Module) -> int:
    """:meth:`Fp8FeedForward.use_gelu_epilogue` on each FP8 feed-forward of ``transformer``; returns how
    many took it. On a GPU it needs nvmath-python (``enable_fp8(gelu_epilogue=...)`` checks)."""
    return sum(m.use_gelu_epilogue() for m in transformer.modules() if isinstance(m, Fp8FeedForward))


def fp8_feed_forwards(transformer: nn.Module) -> int:
    """Swap each feed-forward of ``transformer.blocks`` whose linears are already FP8
    (:func:`fp8.fp8_linears`) for an :class:`Fp8FeedForward`; returns how many."""
    swapped = 0
    for parent in list(transformer.blocks.modules()):
        for name, child in list(parent.named_children()):
            pair = _up_and_down(child)
            if pair is not None:
                setattr(parent, name, Fp8FeedForward(*pair))
                swapped += 1
    return swapped
