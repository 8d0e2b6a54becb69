"""The DiT's block linears in FP8 (e4m3) through ``torch._scaled_mm``, for GPUs with FP8 tensor cores.

Each ``nn.Linear`` inside the transformer's blocks (attention projections, fused or not, and the
feed-forward) becomes an :class:`Fp8Linear`: its weight is stored once as e4m3 with one float32
scale per output row (the row's largest magnitude maps to e4m3's largest value, 448), and at every
call the input is scaled per token the same way, cast to e4m3, and multiplied by ``_scaled_mm``
with both scales and the bias applied in its epilogue ("row-wise" scaling, the recipe of torchao's
``Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())``).
The matmul then runs at up to twice bf16's rate on Hopper, and the weights take half the memory.

The patch embedding, the time and text embedders and the output head stay in their dtype (they are
under 0.1% of the FLOPs, and the output head sets the velocity's precision). Only an NVIDIA GPU of
compute capability 8.9 or newer (Ada, Hopper, Blackwell) has FP8 matmuls; any other device is
refused with one line (:func:`check_fp8_device`). PyTorch also runs ``_scaled_mm`` on the CPU,
which the tests use (``allow_cpu``) to check the numerics; it is not meant for speed.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ReviseInputError

E4M3 = torch.float8_e4m3fn
E4M3_MAX = float(torch.finfo(E4M3).max)      # 448
_TINY = 1e-12


def fp8_supported(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` has FP8 matmuls, and if not, why (one line)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False, f"FP8 matmuls need an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper); {device} is not one"
    if not torch.cuda.is_available():
        return False, "FP8 matmuls need a CUDA GPU, and this machine has none"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        name = torch.cuda.get_device_name(device)
        return False, (f"FP8 matmuls need an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper); "
                       f"{name} is {major}.{minor}: use bf16 (no --quantize)")
    return True, ""


def check_fp8_device(device: torch.device | str, allow_cpu: bool = False) -> None:
    """Raise ``ReviseInputError`` when ``device`` cannot run FP8 matmuls (the CPU passes with ``allow_cpu``)."""
    if allow_cpu and torch.device(device).type == "cpu":
        return
    ok, why = fp8_supported(device)
    if not ok:
        raise ReviseInputError(why)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` [M, K] -> (e4m3 [M, K], float32 scales [M, 1]) with ``x ~= q * scale`` row by row."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=_TINY) / E4M3_MAX
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


def to_e4m3(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x`` times ``scale`` (one element, or one per row), in e4m3, kept within its range."""
    return (x.float() * scale.float()).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)


class Fp8Linear(nn.Module):
    """``nn.Linear`` with an e4m3 weight and row-wise scales; the input is quantized per token.
    ``fast_accum``: Hopper's fast FP8 accumulation (``use_fast_accum``: the tensor cores' partial sums
    are not periodically promoted to float32), faster and slightly less exact."""

    def __init__(self, linear: nn.Linear, fast_accum: bool = False):
        super().__init__()
        self.fast_accum = fast_accum
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight, scale = quantize_rows(linear.weight.detach())
        self.register_buffer("weight_fp8", weight)                       # [N, K], row-major
        self.register_buffer("weight_scale", scale.t().contiguous())     # [1, N]
        self.bias = linear.bias
        self.out_dtype = linear.weight.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        q, scale = quantize_rows(rows)
        return self._matmul(q, scale, x.dtype).view(*x.shape[:-1], self.out_features)

    def forward_quantized(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The layer on an input already in e4m3, the real input being ``x * scale`` with float32
        ``scale`` one element for all of it (e.g. FP8 attention's output, ``fp8_attention.py``) or one
        per row of ``x.reshape(-1, in_features)`` (e.g. ``fp8_ffn.py``); returns the layer's dtype."""
        rows = x.reshape(-1, self.in_features)
        scale = scale.float().reshape(-1, 1)
        if scale.shape[0] != rows.shape[0]:
            scale = scale.expand(rows.shape[0], 1).contiguous()
        return self._matmul(rows, scale, self.out_dtype).view(*x.shape[:-1], self.out_features)

    def _matmul(self, rows: torch.Tensor, scale: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        """e4m3 ``rows`` [M, K] with their scales [M, 1] times the weight, plus the bias: [M, N]. The
        bias is added in the matmul's epilogue: added after, it is a pass over the output of its own
        wherever the next op is not one Inductor fuses it into (the q/k norm+RoPE kernel is not). On
        the CPU (the tests' numerics) the scales and the bias are applied after the matmul instead."""
        if rows.device.type == "cpu":
            # torch 2.11's CPU backend takes only per-tensor scales: apply both in float32 after
            one = scale.new_ones(())
            out = torch._scaled_mm(rows, self.weight_fp8.t(), scale_a=one, scale_b=one, out_dtype=torch.float32)
            out = out * scale * self.weight_scale
            return (out + self.bias.float() if self.bias is not None else out).to(out_dtype)
        bias = self.bias.to(out_dtype) if self.bias is not None else None
        # mat2 must be column-major: the row-major [N, K] weight, transposed, is
        return torch._scaled_mm(rows, self.weight_fp8.t(), scale_a=scale, scale_b=self.weight_scale, bias=bias,
                                out_dtype=out_dtype, use_fast_accum=self.fast_accum)

    def one_scale_(self) -> None:
        """Requantize the weight, in place, at one scale for all its rows (its largest magnitude's):
        the form cuBLASLt's matmuls writing e4m3 take, which refuse row scales (``fp8_gelu_matmul``).
        ``weight_scale`` stays [1, N], each element that scale, so the row-wise path runs as before."""
        weight = self.weight_fp8.float() * self.weight_scale.t()
        scale = weight.abs().amax().clamp(min=_TINY) / E4M3_MAX
        self.weight_fp8.copy_(to_e4m3(weight, 1.0 / scale))
        self.weight_scale.fill_(float(scale))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, e4m3"


# An FP8 linear's outputs bounded before it runs, by Cauchy-Schwarz: |y_ij| <= ||x_i||_2 * ||w_j||_2 + |b_j|
# for the exact product. The matmul multiplies x rounded to e4m3 (each element within 2^-4 of itself)
# and rounds its output to bf16 (2^-8): this factor covers both with room for the accumulation's
# rounding. Used where a pass over the output to find its largest magnitude would cost more than the
# scale's looseness (``attention_ops.value_descale``, ``fp8_ffn.gelu_row_scales``); a value past a bound
# would saturate at 448, not overflow.
BOUND_MARGIN = (1 + 2 ** -4) * (1 + 2 ** -7)


def output_bound_weights(linear: Fp8Linear, rows: slice = slice(None)) -> torch.Tensor:
    """float32 [2]: the largest L2 norm of ``rows`` of an ``Fp8Linear``'s weight as it multiplies
    (e4m3 times its row scales), and the largest magnitude of those rows' bias (0 without one)."""
    weight = linear.weight_fp8[rows].float() * linear.weight_scale[0, rows, None]
    bias = linear.bias[rows].detach().float().abs().max() if linear.bias is not None else weight.new_zeros(())
    return torch.stack([weight.norm(dim=1).max(), bias])


def output_row_bounds(x: torch.Tensor, bound_weights: torch.Tensor) -> torch.Tensor:
    """float32 [..., 1]: no output element of the linear ``bound_weights`` describes
    (:func:`output_bound_weights`) on a row of ``x`` [..., K] exceeds this, for that row: its L2 norm
    times the largest weight row norm plus the largest |bias|, times :data:`BOUND_MARGIN`. A reduction
    over each row's squares, meant for ``torch.compile`` to fuse into the pass that already reads
    ``x`` (its row quantization)."""
    norm = x.float().square().sum(dim=-1, keepdim=True).sqrt()
    return (norm * bound_weights[0] + bound_weights[1]) * BOUND_MARGIN


def fp8_linears(transformer: nn.Module, device: torch.device | str | None = None, allow_cpu: bool = False,
                fast_accum: bool = False) -> int:
    """Swap every ``nn.Linear`` inside ``transformer.blocks`` for an :class:`Fp8Linear`; returns how
    many. Shapes ``_scaled_mm`` cannot take (a side not a multiple of 16) stay as they are.
    ``fast_accum`` is set on the new layers and on those already in FP8."""
    device = device if device is not None else next(transformer.parameters()).device
    check_fp8_device(device, allow_cpu)
    swapped = 0
    for parent in list(transformer.blocks.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.in_features % 16 == 0 and child.out_features % 16 == 0:
                setattr(parent, name, Fp8Linear(child, fast_accum))
                swapped += 1
            elif isinstance(child, Fp8Linear):
                child.fast_accum = fast_accum
    return swapped
