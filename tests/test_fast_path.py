"""The denoising loop's fast path: context K/V computed once, fused projections, compiled blocks.
Each must leave the edit as it was (up to float rounding)."""

import torch

from revise import ReviseEditPipeline, ReviseModel
from revise.models.context_kv import ContextKVProcessor, cached_context_kv

KW = dict(num_inference_steps=4, seed=3, progress=False)


def dit_inputs(model: ReviseModel):
    g = torch.Generator().manual_seed(0)
    c = model.transformer.config
    x = torch.randn(2, c.in_channels, 5, 8, 8, generator=g)
    context = torch.randn(2, model.context_config.max_context_len, c.text_dim, generator=g)
    return x, torch.tensor([900.0, 300.0]), context


def test_cached_context_kv_gives_the_same_forward_fused_or_not():
    model = ReviseModel.from_preset("tiny", seed=0)
    dit = model.transformer
    x, t, context = dit_inputs(model)
    with torch.no_grad():
        want = dit(x, t, context, return_dict=False)[0]
        embedder = dit.condition_embedder.text_embedder
        calls = []
        hook = embedder.register_forward_hook(lambda *a: calls.append(1))
        with cached_context_kv(dit, context):
            assert calls == [1]                     # the context embedded once, here
            assert all(b.attn2.processor.kv is not None for b in dit.blocks)
            # stored heads-major, so that an attention backend's [B, heads, C, d] view needs no copy
            assert all(t.permute(0, 2, 1, 3).is_contiguous() for b in dit.blocks for t in b.attn2.processor.kv)
            got = dit(x, t, context, return_dict=False)[0]
            again = dit(x, t * 0.5, context, return_dict=False)[0]
            assert calls == [1]                     # not again at each call
            dit(x, t, context.clone(), return_dict=False)   # another tensor is embedded as usual
            assert calls == [1, 1]
        hook.remove()
        assert dit.condition_embedder.text_embedder is embedder
        assert all(isinstance(b.attn2.processor, ContextKVProcessor) and b.attn2.processor.kv is None
                   for b in dit.blocks)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(again, dit(x, t * 0.5, context, return_dict=False)[0])
        for block in dit.blocks:
            block.attn1.fuse_projections()
            block.attn2.fuse_projections()
        with cached_context_kv(dit, context):
            fused = dit(x, t, context, return_dict=False)[0]
    torch.testing.assert_close(fused, want, atol=1e-5, rtol=1e-4)
    # a different context outside the block is not answered from the dropped cache
    with torch.no_grad():
        other = dit(x, t, context.flip(1), return_dict=False)[0]
    assert not torch.allclose(other, want)


def test_fast_path_without_compile_edits_the_same(clip):
    want = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0))(clip, "make it night", **KW).video
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0)).enable_fast_path(compile=False)
    got = pipe(clip, "make it night", **KW).video
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_compiled_fast_path_is_one_graph_for_all_blocks_and_edits_the_same(clip):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    want = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0))(clip, "make it night", **KW).video
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0)).enable_fast_path()
    got = pipe(clip, "make it night", **KW).video
    pipe(clip, "make it day", **KW)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)
    # the block graph with the cached K/V, compiled once for every block and step and both edits
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])


def test_fused_ffn_gelu_keeps_the_state_dict_and_the_forward():
    from revise.models.fused_ffn import FusedLinearGELU, fuse_ffn_gelu

    model = ReviseModel.from_preset("tiny", seed=0)
    dit = model.transformer
    x, t, context = dit_inputs(model)
    keys = set(dit.state_dict())
    with torch.no_grad():
        want = dit(x, t, context, return_dict=False)[0]
        assert fuse_ffn_gelu(dit) == len(dit.blocks)
        assert all(isinstance(b.ffn.net[0], FusedLinearGELU) for b in dit.blocks)
        assert set(dit.state_dict()) == keys
        torch.testing.assert_close(dit(x, t, context, return_dict=False)[0], want)
        if torch.cuda.is_available():                # the cuBLASLt epilogue itself
            layer = dit.blocks[0].ffn.net[0].cuda()
            h = torch.randn(2, 7, layer.proj.in_features, device="cuda")
            ref = torch.nn.functional.gelu(layer.proj(h), approximate="tanh")
            torch.testing.assert_close(layer(h), ref, atol=1e-4, rtol=1e-4)


def test_prepared_attention_processors_give_the_same_forward():
    """PreparedSelfAttnProcessor re-implements diffusers' self-attention (projections, q/k norms, RoPE);
    with the cached context K/V too, the DiT's output must not change (default SDPA off the GPU)."""
    from revise.models.attention_inputs import PreparedSelfAttnProcessor, use_prepared_attention_inputs

    model = ReviseModel.from_preset("tiny", seed=0)
    dit = model.transformer
    x, t, context = dit_inputs(model)
    with torch.no_grad():
        want = dit(x, t, context, return_dict=False)[0]
        use_prepared_attention_inputs(dit)
        assert all(isinstance(b.attn1.processor, PreparedSelfAttnProcessor) and b.attn2.processor.prepared
                   for b in dit.blocks)
        torch.testing.assert_close(dit(x, t, context, return_dict=False)[0], want)
        for block in dit.blocks:
            block.attn1.fuse_projections()
            block.attn2.fuse_projections()
        with cached_context_kv(dit, context):
            got = dit(x, t, context, return_dict=False)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_attention_backend_is_set_for_this_dit_alone(monkeypatch):
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0)).enable_fast_path(
        compile=False, attention="_native_math")
    backends = {b.attn1.processor._attention_backend for b in pipe.model.transformer.blocks}
    assert {str(getattr(b, "value", b)) for b in backends} == {"_native_math"}
    # diffusers would also have made it every model's default; other models keep theirs
    assert _AttentionBackendRegistry._active_backend == active
    # "auto" on a Hopper GPU: cuDNN's attention for a bf16 model, not for a float32 one (cuDNN has none)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    chosen = []
    monkeypatch.setattr("revise.pipelines.edit.set_attention_backend", lambda dit, name: chosen.append(name))
    for dtype in (torch.float32, torch.bfloat16):
        pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0, dtype=dtype))
        monkeypatch.setattr(type(pipe), "device", property(lambda self: torch.device("cuda")))
        pipe.enable_fast_path(compile=False, fuse_gelu=False)
    assert chosen == ["_native_cudnn"]
