"""Mixed-context assembly against hand-built tensors: order, truncation, zero padding."""

import torch

from revise.models.context import SPECIAL_TOKEN_NAMES, ContextTokens, assemble_batch, assemble_context


def _special(d: int = 3) -> dict[str, torch.Tensor]:
    # block i holds the value 100 + i, two tokens each
    return {n: torch.full((2, d), 100.0 + i) for i, n in enumerate(SPECIAL_TOKEN_NAMES)}


def _ramp(n: int, start: float, d: int = 3) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float32) + start).unsqueeze(1).repeat(1, d)


def test_order_and_zero_padding():
    special = _special()
    visual, vlm, text = _ramp(4, 10), _ramp(3, 20), _ramp(5, 30)
    ctx = assemble_context(special, visual, vlm, text, max_len=40)
    expected = torch.cat([
        special["<img_st>"], visual, special["<img_ed>"],
        special["<ipl_st>"], vlm, special["<ipl_ed>"],
        special["<prp_st>"], text, special["<prp_ed>"],
    ])
    assert ctx.shape == (40, 3)
    assert torch.equal(ctx[: len(expected)], expected)
    assert len(expected) == 24
    assert torch.equal(ctx[24:], torch.zeros(16, 3))


def test_truncation_cuts_the_tail():
    special = _special()
    visual, vlm, text = _ramp(4, 10), _ramp(3, 20), _ramp(5, 30)
    ctx = assemble_context(special, visual, vlm, text, max_len=17)
    # 2 + 4 + 2 (source) + 2 + 3 + 2 (vlm) + 2 (prp_st) = 17: the text and <prp_ed> are cut off
    assert ctx.shape == (17, 3)
    assert torch.equal(ctx[-2:], special["<prp_st>"])
    assert not (ctx >= 30).logical_and(ctx < 40).any()


def test_reference_block_follows_source():
    special = _special()
    ref = _ramp(2, 50)
    ctx = assemble_context(special, _ramp(1, 10), _ramp(1, 20), _ramp(1, 30), max_len=30, reference=ref)
    assert torch.equal(ctx[5:7], special["<img_st>"])
    assert torch.equal(ctx[7:9], ref)
    assert torch.equal(ctx[9:11], special["<img_ed>"])


def test_batch_keeps_each_samples_own_lengths():
    special = _special()
    visual = torch.stack([_ramp(2, 10), _ramp(2, 60)])
    ctx = assemble_batch(special, visual, [_ramp(1, 20), _ramp(3, 20)], [_ramp(4, 30), _ramp(1, 30)], max_len=32)
    assert ctx.shape == (2, 32, 3)
    # sample 0: 6 special blocks (12) + 2 + 1 + 4 = 19 tokens; sample 1: 12 + 2 + 3 + 1 = 18
    assert ctx[0, 18].abs().sum() > 0 and ctx[0, 19:].abs().sum() == 0
    assert ctx[1, 17].abs().sum() > 0 and ctx[1, 18:].abs().sum() == 0


def test_context_tokens_state_uses_released_key_names():
    tokens = ContextTokens.random(text_dim=8, lm_dim=4, special_len=3, uncond_text_len=5, uncond_vision_len=6)
    assert list(tokens.special_state()) == list(SPECIAL_TOKEN_NAMES)
    assert tokens.special_state()["<ipl_st>"].shape == (3, 8)
    assert tokens.uncond_state()["uncond_context"].shape == (5, 8)
    assert tokens.uncond_state()["uncond_ar_vision"].shape == (1, 6, 4)


def test_model_context_has_the_documented_layout(tiny_model, clip):
    m = tiny_model
    video = clip.unsqueeze(0)
    with torch.no_grad():
        latents = m.encode_video(video)
        cond, uncond = m.build_context(latents, video, ["make it night"])
        visual = m.source_tokens(latents)[0]
        vlm = m.vlm_tokens(video, ["make it night"])[0]
        text = m.encode_text(["make it night"])[0]
        uvlm = m.uncond_vlm_tokens()[0]
    special = m.context_tokens.special_dict()
    n = m.context_config.max_context_len
    assert cond.shape == uncond.shape == (1, n, m.transformer.config.text_dim)
    assert torch.allclose(cond[0], assemble_context(special, visual, vlm, text, n))
    assert torch.allclose(uncond[0], assemble_context(special, visual, uvlm, m.context_tokens.uncond_context, n))
    # the source-video block is the same in both branches; the rest differs
    k = 2 * m.context_config.special_token_len + visual.shape[0]
    assert torch.equal(cond[0, :k], uncond[0, :k])
    assert not torch.allclose(cond[0, k:], uncond[0, k:])
    # tiny: 20 source tokens, 4 vision tokens x 8 queries, the instruction's bytes + </s>
    assert visual.shape[0] == 20 and vlm.shape[0] == 32 and text.shape[0] == len("make it night") + 1
