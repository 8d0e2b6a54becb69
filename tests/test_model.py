"""Presets and components: the official shapes, the VLM's roles, the summary."""

import pytest
import torch

from revise import ReviseInputError, ReviseModel
from revise.config import load_preset, preset_names
from revise.models.summary import summarize
from revise.models.understanding import MLPDownsampleProjector


def test_presets_are_files():
    assert {"tiny", "wan2.1-1.3b"} <= set(preset_names())
    with pytest.raises(ReviseInputError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_official_shapes_on_the_meta_device():
    m = ReviseModel.from_preset("wan2.1-1.3b", device="meta")
    t = m.transformer.config
    assert (t.num_attention_heads * t.attention_head_dim, t.num_layers, t.num_attention_heads, t.ffn_dim, t.text_dim) \
        == (1536, 30, 12, 8960, 4096)
    assert m.vae.config.z_dim == 16 and m.vae.config.base_dim == 96
    assert m.understanding.llm.config.hidden_size == 4096
    assert m.text_encoder.config.d_model == 4096 and m.text_encoder.config.num_layers == 24
    assert m.vision_head.decoder_query.shape == (1, 4, 1152)
    assert m.adapter.decoder_query.shape == (1, 256, 4096)
    assert m.visual_context_adapter.patch_embedding.weight.shape == (1536, 16, 1, 4, 4)
    assert m.context_tokens.special["img_st"].shape == (6, 4096)
    assert m.context_config.max_context_len == 2560
    # Wan2.1-T2V-1.3B has 1.42 B parameters
    assert 1.40e9 < m.parameter_counts()["transformer"] < 1.44e9
    assert m.transformer.patch_embedding.weight.is_meta


def test_released_context_lengths_on_the_meta_device():
    """352x640x17 -> latents [16, 5, 44, 80] -> 1100 source tokens; 4 x 256 VLM tokens."""
    m = ReviseModel.from_preset("wan2.1-1.3b", device="meta")
    latents = torch.empty(1, 16, 5, 44, 80, device="meta")
    assert m.source_tokens(latents).shape == (1, 1100, 4096)
    assert m.uncond_vlm_tokens().shape == (1, 1024, 4096)


def test_projector_merges_2x2_blocks_in_vila_order():
    x = torch.arange(9, dtype=torch.float32).view(1, 9, 1)  # a 3x3 grid, one channel
    merged = MLPDownsampleProjector.merge_2x2(x)
    # odd sides get a zero row and column; each token holds [x(r,c), x(r,c+1), x(r+1,c), x(r+1,c+1)],
    # and tokens run down the rows first (VILA's reshape/permute order)
    assert merged.shape == (1, 4, 4)
    assert merged[0].tolist() == [[0, 1, 3, 4], [6, 7, 0, 0], [2, 0, 5, 0], [8, 0, 0, 0]]


def test_vlm_answer_logits_and_generation(tiny_model, clip):
    u = tiny_model.understanding
    prompt = u.chat("<video>\n<video>\nDoes the second clip follow 'make it night'? Answer Yes or No.")
    logits = u.answer_logits([prompt], [[clip, clip]])
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    # the answer logits are the LM's own logits at the answer position
    embeds, mask = u.embed_prompts([prompt], [[clip, clip]])
    full = u.llm(inputs_embeds=embeds).logits[0, -1]
    torch.testing.assert_close(logits[0], full[u.answer_token_ids()], atol=1e-5, rtol=1e-5)
    text = u.generate(prompt, [clip, clip], max_new_tokens=3)
    assert isinstance(text, str)


def test_vlm_batched_prompts_match_one_at_a_time(tiny_model, clip):
    """One batched embedding of prompts with different lengths and clip counts equals each prompt
    embedded alone, zero-padded, with the clips' embeddings in their places."""
    u = tiny_model.understanding
    other = clip.flip(1)
    prompts = [u.chat("<video>\n<video>\nsame?"), u.chat("a long question with <video> in it, then more words"),
               u.chat("no clip at all")]
    clips = [[clip, other], [other], []]
    embeds, mask = u.embed_prompts(prompts, clips)
    for i, (prompt, cl) in enumerate(zip(prompts, clips)):
        alone, alone_mask = u.embed_prompts([prompt], [cl])
        n = alone.shape[1]
        assert mask[i].sum() == n and mask[i, :n].all()
        torch.testing.assert_close(embeds[i, :n], alone[0])
        assert (embeds[i, n:] == 0).all()
    first = u.embed_videos([clip])[0]
    start = len(u.tokenizer(prompts[0].split("<video>")[0], add_special_tokens=False).input_ids)
    torch.testing.assert_close(embeds[0, start:start + first.shape[0]], first.to(embeds.dtype))


def test_vlm_gradients_reach_the_clip(tiny_model, clip):
    """The critic's path must be differentiable down to the pixels of a decoded clip."""
    u = tiny_model.understanding
    x = clip.clone().requires_grad_(True)
    u.answer_logits([u.chat("<video>\nIs it night?")], [[x]])[0, 0].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_summary_of_preset_and_folder_agree(tiny_model, tmp_path):
    path = tiny_model.save_pretrained(tmp_path / "model")
    from_folder = {r[0]: r[2] for r in summarize(path)["components"]}
    from_preset = {r[0]: r[2] for r in summarize("tiny")["components"]}
    for name in ("transformer", "vae", "text_encoder", "understanding", "vision_head", "adapter",
                 "visual_context_adapter"):
        assert from_folder[name] == from_preset[name], name


def test_checkpointed_decode_equals_plain_decode_in_value_and_gradient(tiny_model):
    z = torch.randn(1, 16, 3, 4, 4, requires_grad=True)
    a = tiny_model.decode_latents(z)
    (ga,) = torch.autograd.grad(a.square().mean(), z)
    b = tiny_model.decode_latents(z, checkpointed=True)
    (gb,) = torch.autograd.grad(b.square().mean(), z)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)
