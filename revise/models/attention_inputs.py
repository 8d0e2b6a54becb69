"""Wan attention whose inputs reach cuDNN without extra passes over memory.

diffusers' ``_native_cudnn`` backend makes q, k and v contiguous in [B, heads, L, head_dim] before
every call (``x.permute(0, 2, 1, 3).contiguous()``), after the q/k RMSNorm and RoPE have each made
their own passes: at the released shapes these copies and passes take about 5 ms of a 68 ms step on
an H100 (`docs/performance.md`). Here

- q and k come from :func:`~revise.models.norm_rope.norm_rope`: RMSNorm and RoPE in one kernel (a
  Triton kernel on CUDA, PyTorch elsewhere), token-major [B, L, heads, head_dim];
- v stays a strided view of the fused Q/K/V projection: :func:`~revise.models.attention_ops.attend` calls PyTorch's SDPA with the
  cuDNN kernel on [B, heads, L, head_dim] views, whose last dimension is dense, and cuDNN writes its
  output in q's order, so it flattens back to [B, L, d] as a view; with any other backend it is
  diffusers' ``dispatch_attention_fn`` unchanged.

:class:`PreparedSelfAttnProcessor` is diffusers' ``WanAttnProcessor`` for self-attention (Q/K/V,
q/k RMSNorm, RoPE, attention, output projection) done this way; it defers to the stock processor for
cross-attention, image context, masks, context parallelism and other q/k norms. The cached-context
cross-attention (``context_kv.py``) prepares its query the same way.
"""

from __future__ import annotations

import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanAttnProcessor

from . import attention_ops
from .attention_ops import attend, attend_fp8, has_rms_norms, padded_length, prepare, static_fp8_scales, value_descale
from .context_kv import ContextKVProcessor
from .fp8 import Fp8Linear, output_bound_weights
from .fp8_attention import quantize_tensor


class PreparedSelfAttnProcessor(WanAttnProcessor):
    fp8 = False             # FP8 attention (use_fp8_attention)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if (encoder_hidden_states is not None or attention_mask is not None or attn.add_k_proj is not None
                or self._parallel_config is not None or not has_rms_norms(attn)):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        if self.fp8:    # q, k in e4m3 at static scales; v at its own, per call; padded as PAD_MULTIPLE says
            qkv = attn.to_qkv(hidden_states)
            descale_v = value_descale(hidden_states, attn.fp8_value_bound) if attention_ops.VALUE_BOUND else None
            s = attn.fp8_scales
            length = qkv.shape[1]
            padded = padded_length(length)
            query, key = prepare(qkv[..., :2 * attn.inner_dim], (attn.norm_q, attn.norm_k), attn.heads, rotary_emb,
                                 out_scales=s[0:2], pad_to=padded)
            value = qkv[..., 2 * attn.inner_dim:]
            if padded > length:
                value = F.pad(value, (0, 0, 0, padded - length))
            value, descale_v = quantize_tensor(value, descale_v)
            return attend_fp8(attn, query, key, value.unflatten(2, (attn.heads, -1)), s[2:3], s[3:4], descale_v,
                              length=length)
        if getattr(attn, "fused_projections", False):      # q and k side by side: one launch for both
            qkv = attn.to_qkv(hidden_states)
            query, key = prepare(qkv[..., :2 * attn.inner_dim], (attn.norm_q, attn.norm_k), attn.heads, rotary_emb)
            value = qkv[..., 2 * attn.inner_dim:]
        else:
            query, = prepare(attn.to_q(hidden_states), (attn.norm_q,), attn.heads, rotary_emb)
            key, = prepare(attn.to_k(hidden_states), (attn.norm_k,), attn.heads, rotary_emb)
            value = attn.to_v(hidden_states)
        out = attend(query, key, value.unflatten(2, (attn.heads, -1)), self._attention_backend)
        return attn.to_out[1](attn.to_out[0](out.flatten(2, 3).type_as(query)))


def use_prepared_attention_inputs(transformer) -> None:
    """Every block's self-attention gets :class:`PreparedSelfAttnProcessor`, and its cross-attention a
    ``ContextKVProcessor`` that attends the same way (backends kept)."""
    for block in transformer.blocks:
        for attn, cls in ((block.attn1, PreparedSelfAttnProcessor), (block.attn2, ContextKVProcessor)):
            old = attn.processor
            new = old if isinstance(old, cls) else cls()
            new._attention_backend = getattr(old, "_attention_backend", None)
            new._parallel_config = getattr(old, "_parallel_config", None)
            if cls is ContextKVProcessor:
                new.prepared = True
            attn.set_processor(new)


def fp8_attention_applies(transformer) -> tuple[bool, str]:
    """Whether :func:`use_fp8_attention` can apply: the prepared processors, fused Q/K/V and FP8
    linears in every block (``enable_fast_path()``, then ``enable_fp8()``); if not, why."""
    for block in transformer.blocks:
        a1, a2 = block.attn1, block.attn2
        if not (isinstance(a1.processor, PreparedSelfAttnProcessor) and isinstance(a2.processor, ContextKVProcessor)
                and a2.processor.prepared and getattr(a1, "fused_projections", False)):
            return False, "FP8 attention needs the fast path's attention inputs: call enable_fast_path() first"
        if not (has_rms_norms(a1) and has_rms_norms(a2) and a1.add_k_proj is None and a2.add_k_proj is None):
            return False, "FP8 attention needs Wan's RMS-normed q and k and no image cross-attention"
        if not all(isinstance(a.to_out[0], Fp8Linear) and isinstance(q, Fp8Linear)
                   for a, q in ((a1, a1.to_qkv), (a2, a2.to_q))):
            return False, "FP8 attention feeds FP8 output projections: the block linears must be FP8 (enable_fp8())"
    return True, ""


def use_fp8_attention(transformer) -> None:
    """Every block's self- and cross-attention in FP8 (``fp8_attention.py``): q and k prepared in
    e4m3 at static scales (``static_fp8_scales``, kept on the attention module as ``fp8_scales``),
    v (and the cached context K/V) at a scale found per call (for self-attention's v, with
    ``attention_ops.VALUE_BOUND``, from the weight norms kept as ``fp8_value_bound``), the output
    projected in FP8."""
    ok, why = fp8_attention_applies(transformer)
    if not ok:
        raise ValueError(why)
    for block in transformer.blocks:
        for attn, norms in ((block.attn1, (block.attn1.norm_q, block.attn1.norm_k)), (block.attn2, (block.attn2.norm_q,))):
            attn.register_buffer("fp8_scales", static_fp8_scales(norms), persistent=False)
            attn.processor.fp8 = True
        v_rows = slice(2 * block.attn1.inner_dim, 3 * block.attn1.inner_dim)
        block.attn1.register_buffer("fp8_value_bound", output_bound_weights(block.attn1.to_qkv, v_rows),
                                    persistent=False)
