"""Each objective's value and gradients on hand-built tensors."""

import math

import pytest
import torch

from revise.train import objectives as obj


def test_noise_and_x0_estimate_are_inverse():
    x0, noise = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    s = torch.tensor([0.25, 0.9])
    xt = obj.add_noise(x0, noise, s)
    torch.testing.assert_close(xt[0], 0.75 * x0[0] + 0.25 * noise[0])
    torch.testing.assert_close(obj.x0_estimate(xt, noise - x0, s), x0)


def test_sft_loss_value_and_gradient():
    x0 = torch.zeros(1, 4)
    noise = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    v = torch.tensor([[1.0, 2.0, 3.0, 2.0]], requires_grad=True)   # error only in the last entry: -2
    loss = obj.sft_loss(v, x0, noise)
    assert loss.item() == pytest.approx(4.0 / 4)
    loss.backward()
    torch.testing.assert_close(v.grad, torch.tensor([[0.0, 0.0, 0.0, -1.0]]))   # 2 * (-2) / 4


def test_rwo_weights_normalise_by_the_batch_mean_and_carry_no_gradient():
    p = torch.tensor([0.2, 0.6], requires_grad=True)
    w = obj.rwo_weights(p)
    torch.testing.assert_close(w, torch.tensor([0.5, 1.5]))
    assert not w.requires_grad
    torch.testing.assert_close(obj.rwo_weights(p, baseline=0.4), torch.tensor([0.5, 1.5]))


def test_rwo_loss_weights_per_sample_losses():
    x0 = torch.zeros(2, 2)
    noise = torch.zeros(2, 2)
    v = torch.tensor([[1.0, 1.0], [2.0, 2.0]], requires_grad=True)      # per-sample losses 1 and 4
    p = torch.tensor([0.2, 0.6], requires_grad=True)
    loss = obj.rwo_loss(v, x0, noise, p)
    assert loss.item() == pytest.approx((0.5 * 1 + 1.5 * 4) / 2)
    loss.backward()
    assert p.grad is None, "no gradient reaches the critic through the weight"
    torch.testing.assert_close(v.grad, torch.tensor([[0.25, 0.25], [1.5, 1.5]]))  # w * 2v / 2 dims / 2 samples


def test_semantic_and_uso_loss():
    p = torch.tensor([0.5, 0.25], requires_grad=True)
    sem = obj.semantic_loss(p)
    assert sem.item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    sem.backward()
    torch.testing.assert_close(p.grad, torch.tensor([-1 / (2 * 0.5), -1 / (2 * 0.25)]))
    x0, noise = torch.zeros(2, 1), torch.zeros(2, 1)
    v = torch.ones(2, 1)
    total = obj.uso_loss(v, x0, noise, p.detach(), lam=0.1)
    assert total.item() == pytest.approx(1.0 + 0.1 * sem.item())
    # samples above max_sigma are left out of the semantic term
    only_first = obj.uso_loss(v, x0, noise, p.detach(), lam=0.1, sigmas=torch.tensor([0.3, 0.95]), max_sigma=0.9)
    assert only_first.item() == pytest.approx(1.0 + 0.1 * math.log(2))


@pytest.mark.parametrize("scheme", ["logit_normal", "mode", "uniform"])
def test_sigma_sampling_is_seeded_in_range_and_shifted(scheme):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = obj.sample_sigmas(4096, generator=g(), scheme=scheme, shift=1.0)
    b = obj.sample_sigmas(4096, generator=g(), scheme=scheme, shift=1.0)
    assert torch.equal(a, b) and a.min() > 0 and a.max() < 1
    shifted = obj.sample_sigmas(4096, generator=g(), scheme=scheme, shift=3.0)
    assert shifted.mean() > a.mean(), "a shift > 1 moves the noise levels up"
    torch.testing.assert_close(shifted, 3 * a / (1 + 2 * a))


def test_logit_normal_has_its_median_at_the_centre():
    s = obj.sample_sigmas(20000, generator=torch.Generator().manual_seed(1), shift=1.0)
    assert abs(s.median().item() - 0.5) < 0.02


def test_focus_l1_is_the_mean_error_of_the_worst_pixels():
    x = torch.zeros(2, 3, 1, 4, 5)                 # 20 pixels per clip
    rec = x.clone()
    rec[0, :, 0, 0, 0] = 1.0                       # one bad pixel in clip 0 (error 1 in every channel)
    rec[1, 0, 0, 1, :] = 0.3                       # a row of small errors in clip 1 (one channel of three)
    assert float(obj.focus_l1(rec, x, 0.05)) == pytest.approx((1.0 + 0.1) / 2)   # the worst 1 pixel of each
    assert float(obj.focus_l1(rec, x, 1.0)) == pytest.approx(float((rec - x).abs().mean()))
    # far above the plain mean, which hides a lost small object
    assert float(obj.focus_l1(rec, x, 0.05)) > 10 * float((rec - x).abs().mean())


@pytest.mark.parametrize("scheme", ["logit_normal", "mode", "uniform"])
def test_sigma_sampling_draws_what_the_sd3_densities_gave_before(scheme):
    """diffusers' compute_density_for_timestep_sampling draws, from the same seed, what the formulas
    written out here drew before it was used (logit-normal at the default mean 0, std 1)."""
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    if scheme == "logit_normal":
        u = torch.sigmoid(torch.randn(1000, generator=g()))
    elif scheme == "mode":
        u = torch.rand(1000, generator=g())
        u = 1 - u - 1.29 * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    else:
        u = torch.rand(1000, generator=g())
    u = u.clamp(1e-5, 1 - 1e-5)
    assert torch.equal(obj.sample_sigmas(1000, generator=g(), scheme=scheme, shift=3.0), 3 * u / (1 + 2 * u))
    with pytest.raises(ValueError, match="unknown timestep scheme"):
        obj.sample_sigmas(4, scheme="cosine")


def test_group_weights_are_normalised_within_each_group():
    from revise.train.objectives.rwo_group import group_advantages, group_weights

    r = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.2, 0.2, 0.2, 0.8], requires_grad=True)   # two groups of 4
    w = group_weights(r, 4)
    assert not w.requires_grad and (w >= 0).all()
    torch.testing.assert_close(w.view(2, 4).mean(1), torch.ones(2))
    # the better candidate of a group gets the larger weight, in the rewards' order
    assert torch.equal(w[:4].argsort(), r[:4].detach().argsort())
    assert w[7] > 1 > w[4] and w[4] == w[5] == w[6]
    # advantages: zero mean and unit (population) std per group
    a = group_advantages(r, 4).view(2, 4)
    torch.testing.assert_close(a.mean(1), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.std(1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    # a constant added to one group's rewards (or all of them scaled) changes nothing
    shifted = r.detach().clone()
    shifted[:4] += 0.37
    torch.testing.assert_close(group_weights(shifted, 4), w)
    torch.testing.assert_close(group_weights(r.detach() * 0.5, 4), w, atol=1e-3, rtol=0)
    # equal rewards: weight 1 each (plain flow matching); a lower temperature sharpens
    torch.testing.assert_close(group_weights(torch.full((6,), 0.4), 3), torch.ones(6))
    sharp = group_weights(r, 4, temperature=0.1)
    assert sharp[3] > w[3] and sharp[3] <= 4 and sharp[0] < w[0]
    torch.testing.assert_close(sharp.view(2, 4).mean(1), torch.ones(2))
