"""The FP8 Wan block with each matmul input made in one pass: residual add, LayerNorm, modulation, quantization.

diffusers' ``WanTransformerBlock.forward`` builds each sub-layer's input as bf16 (``norm1`` modulated,
``norm2`` after the self-attention's gated residual, ``norm3`` modulated after the cross-attention's
residual), and each FP8 linear (``fp8.py``) then quantizes it row by row. :func:`fused_block_forward`
is the same computation with those steps done by :func:`~revise.models.norm_quantize.norm_quantize`:
the stream is updated and the e4m3 rows and their scales are written in one kernel, and they reach the
linears as :class:`~revise.models.fp8.QuantizedRows`. The feed-forward's output is added to the stream
as diffusers does (Inductor fuses that add at memory speed).

:func:`fused_fp8_blocks` gives every block where that is the same computation this forward: Wan's
norms (no affine on ``norm1``/``norm3``), the fast path's attention processors (fused Q/K/V), FP8
linears and the FP8 feed-forward. A block called outside ``cached_context_kv`` (the cross-attention
computing its own K/V) or with a per-token timestep (Wan 2.2 TI2V) runs diffusers' forward.
"""

from __future__ import annotations

import types

import torch
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanTransformerBlock

from .attention_inputs import PreparedSelfAttnProcessor
from .attention_ops import has_rms_norms
from .context_kv import ContextKVProcessor
from .fp8 import Fp8Linear, QuantizedRows
from .fp8_ffn import Fp8FeedForward
from .norm_quantize import norm_quantize


def fused_block_forward(self: WanTransformerBlock, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                        temb: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``WanTransformerBlock.forward`` with its three matmul inputs made by ``norm_quantize``."""
    if temb.ndim == 4 or self.attn2.processor.kv is None:
        return WanTransformerBlock.forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb)
    shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
        self.scale_shift_table + temb.float()).chunk(6, dim=1)
    shape = hidden_states.shape

    _, q, s = norm_quantize(hidden_states, self.norm1.eps, scale=scale_msa, shift=shift_msa)
    attn_output = self.attn1(QuantizedRows(q, s, shape), None, None, rotary_emb)

    norm2 = self.norm2
    hidden_states, q, s = norm_quantize(hidden_states, norm2.eps, residual=attn_output, gate=gate_msa,
                                        weight=norm2.weight, bias=norm2.bias)
    attn_output = self.attn2(QuantizedRows(q, s, shape), encoder_hidden_states, None, None)

    hidden_states, q, s = norm_quantize(hidden_states, self.norm3.eps, residual=attn_output, scale=c_scale_msa,
                                        shift=c_shift_msa)
    ff_output = self.ffn(QuantizedRows(q, s, shape))
    return (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)


def fused_forward_applies(block: torch.nn.Module) -> bool:
    """Whether :func:`fused_block_forward` computes what ``block``'s own forward does (see the module)."""
    def layer_norm(m, affine: bool) -> bool:
        return (isinstance(m, FP32LayerNorm) and (m.weight is not None) == affine
                and (m.bias is not None) == affine)

    a1, a2 = getattr(block, "attn1", None), getattr(block, "attn2", None)
    return (isinstance(block, WanTransformerBlock)
            and layer_norm(block.norm1, False) and layer_norm(block.norm2, True) and layer_norm(block.norm3, False)
            and isinstance(a1.processor, PreparedSelfAttnProcessor) and a1.add_k_proj is None and has_rms_norms(a1)
            and a1.processor._parallel_config is None and isinstance(getattr(a1, "to_qkv", None), Fp8Linear)
            and isinstance(a2.processor, ContextKVProcessor) and a2.add_k_proj is None
            and isinstance(a2.to_q, Fp8Linear) and isinstance(block.ffn, Fp8FeedForward))


def fused_fp8_blocks(transformer: torch.nn.Module) -> int:
    """Give each block of ``transformer`` where it applies :func:`fused_block_forward` as its forward
    (an instance attribute: the state dict and the class stay); returns how many."""
    count = 0
    for block in transformer.blocks:
        if fused_forward_applies(block):
            block.forward = types.MethodType(fused_block_forward, block)
            count += 1
    return count
