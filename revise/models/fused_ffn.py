"""The DiT feed-forward's first matmul, its bias and its tanh-GELU as one cuBLASLt call on the GPU.

Wan's feed-forward is ``Linear(d, 4.4d) -> GELU(tanh) -> Linear(4.4d, d)``. Compiled, the GELU is
still its own kernel: it reads and writes the widest activation of the block (tokens x 8960 at the
released shapes), 4% of a denoising step on an H100 (`docs/performance.md`). cuBLASLt applies bias
and tanh-GELU in the matmul's epilogue, while the result is still in registers; PyTorch exposes it as
``torch._addmm_activation(bias, x, w.t(), use_gelu=True)``, which ``torch.compile`` calls as it is.

Off the GPU that op computes the exact (erf) GELU, so there the module keeps the stock computation.
The projection keeps its name (``proj``), so the state dict is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.activations import GELU
from torch import nn


class FusedLinearGELU(nn.Module):
    """diffusers' ``GELU(approximate="tanh")`` block (a Linear, then the activation), fused on CUDA."""

    def __init__(self, block: GELU):
        super().__init__()
        if block.approximate != "tanh" or block.proj.bias is None:
            raise ValueError("only a biased Linear followed by the tanh GELU can be fused")
        self.proj = block.proj
        self.approximate = "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda or type(self.proj) is not nn.Linear:     # off the GPU, or FP8 linears (models/fp8.py)
            return F.gelu(self.proj(x), approximate="tanh")
        out = torch._addmm_activation(self.proj.bias, x.reshape(-1, x.shape[-1]), self.proj.weight.t(), use_gelu=True)
        return out.view(*x.shape[:-1], out.shape[-1])


def fuse_ffn_gelu(transformer: nn.Module) -> int:
    """Swap every tanh-GELU feed-forward entry block of ``transformer`` for ``FusedLinearGELU``;
    returns how many were swapped."""
    swapped = 0
    for module in transformer.modules():
        net = getattr(module, "net", None)
        if isinstance(net, nn.ModuleList) and net and isinstance(net[0], GELU) and net[0].approximate == "tanh":
            net[0] = FusedLinearGELU(net[0])
            swapped += 1
    return swapped
