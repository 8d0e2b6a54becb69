"""The internal critic on the tiny preset: P(Yes) in (0, 1), differentiable in the candidate."""

import torch

from revise.critic import DIMENSIONS, Critic


def test_p_yes_is_a_probability_and_differentiable(tiny_model, clip):
    critic = Critic(tiny_model.understanding)
    source = clip.unsqueeze(0)
    candidate = (clip.flip(-1)).unsqueeze(0).requires_grad_(True)
    p = critic.p_yes(source, candidate, ["make it night"])
    assert p.shape == (1,) and 0 < p.item() < 1
    p.sum().backward()
    assert candidate.grad is not None and candidate.grad.abs().sum() > 0


def test_score_has_no_gradient_and_matches_p_yes(tiny_model, clip):
    critic = Critic(tiny_model.understanding)
    s, c = clip.unsqueeze(0), clip.unsqueeze(0)
    score = critic.score(s, c, ["make it night"])
    assert not score.requires_grad
    torch.testing.assert_close(score, critic.p_yes(s, c, ["make it night"]).detach())


def test_each_dimension_has_its_own_question(tiny_model, clip):
    critic = Critic(tiny_model.understanding)
    prompts = {d: critic.prompt("make it night", d) for d in DIMENSIONS}
    assert len(set(prompts.values())) == 4
    assert all(p.count("<video>") == 2 for p in prompts.values())


def test_reasoning_then_answer_runs(tiny_model, clip):
    critic = Critic(tiny_model.understanding)
    p = critic.score(clip.unsqueeze(0), clip.unsqueeze(0), ["make it night"], reason=True, max_reasoning_tokens=4)
    assert p.shape == (1,) and 0 < p.item() < 1


def test_change_clip_critic_sees_the_difference_and_keeps_its_flag(tmp_path, clip):
    """With critic_change_clip the critic is shown (candidate - source) / 2 as a third clip: zero for
    an unedited candidate; gradients reach the candidate through both clips; the flag is saved."""
    from revise import ReviseModel
    from revise.models.understanding import UnderstandingModel

    u = ReviseModel.from_preset("tiny", seed=0).understanding
    u.critic_change_clip = True
    critic = Critic(u)
    assert all(critic.prompt("make it night", d).count("<video>") == 3 for d in (None, *DIMENSIONS))
    source, candidate = clip.unsqueeze(0), clip.flip(-1).unsqueeze(0)
    shown = critic.clips(source, candidate)[0]
    assert len(shown) == 3 and torch.equal(shown[2], (candidate[0] - source[0]) / 2)
    assert critic.clips(source, source)[0][2].abs().max() == 0
    cand = candidate.clone().requires_grad_(True)
    p = critic.p_yes(source, cand, ["make it night"])
    assert 0 < p.item() < 1
    p.sum().backward()
    assert cand.grad.abs().sum() > 0
    assert critic.score(source, candidate, ["make it night"], reason=True, max_reasoning_tokens=2).shape == (1,)
    u.save_pretrained(tmp_path / "u")
    assert UnderstandingModel.from_pretrained(tmp_path / "u").critic_change_clip is True
    u.critic_change_clip = False
    u.save_pretrained(tmp_path / "v")
    assert UnderstandingModel.from_pretrained(tmp_path / "v").critic_change_clip is False
