"""8-bit weights for the encoders (the VLM and T5): half the memory and half the bytes to move.

Each ``nn.Linear`` of a module becomes an :class:`Int8WeightLinear`: its weight stored as int8 with
one float32 scale per output row (symmetric, the row's largest magnitude maps to 127), turned back
into the input's dtype at each call and multiplied as before (weight-only quantization: the
activations keep their dtype). The VLM and T5 run once per edit on a few hundred tokens, so the
dequantization costs little; what counts is that their weights, 75% of the released model's, take
half the space on a small GPU and half the time to copy there with stage offload.

Why not torchao (``quantize_(model, Int8WeightOnlyConfig())``), which does the same: with the
pinned diffusers (0.42), importing diffusers imports an installed torchao and, for torchao 0.18 (the
first for torch >= 2.11), logs "Unable to import `torchao` Tensor objects" on every command, and
torchao's CPU wheel logs its missing CUDA libraries too, breaking the one-line error output of the
command line. Embeddings stay in their dtype (they are looked up, not multiplied).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_TINY = 1e-12


class Int8WeightLinear(nn.Module):
    """``nn.Linear`` whose weight is int8 with a float32 scale per output row."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach()
        scale = w.abs().amax(dim=1, keepdim=True).float().clamp(min=_TINY) / 127.0
        self.register_buffer("weight_int8", (w.float() / scale).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("weight_scale", scale)                   # [N, 1]
        # an empty tensor of the weight's dtype, which Module.to(dtype) casts as it would the weight
        self.register_buffer("dtype_probe", torch.empty(0, dtype=w.dtype, device=w.device), persistent=False)
        self.bias = linear.bias

    @property
    def weight(self) -> torch.Tensor:
        """The weight, dequantized to the dtype the Linear had (for code that reads ``.weight``)."""
        dtype = self.dtype_probe.dtype
        return self.weight_int8.to(dtype) * self.weight_scale.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_int8.to(x.dtype) * self.weight_scale.to(x.dtype)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8 weights"


def int8_weights(module: nn.Module) -> int:
    """Swap every ``nn.Linear`` under ``module`` for an :class:`Int8WeightLinear`; returns how many."""
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, Int8WeightLinear(child))
                swapped += 1
    return swapped
