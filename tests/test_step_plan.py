"""The sampler read off as fixed linear coefficients must step exactly as the scheduler does."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from revise import ReviseEditPipeline, ReviseModel
from revise.pipelines.edit import make_scheduler
from revise.pipelines.step_plan import StepPlan


@pytest.mark.parametrize("solver,steps", [("unipc", 40), ("unipc", 3), ("euler", 40)])
def test_plan_follows_the_scheduler(solver, steps):
    sched = make_scheduler(solver, shift=5.0)
    sched.set_timesteps(steps)
    plan = StepPlan.from_scheduler(sched)
    assert plan is not None and len(plan) == steps
    assert sched.step_index is None                 # the scheduler itself was not stepped

    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 2, 3, 3, generator=g)
    history = [x]
    for k, t in enumerate(sched.timesteps):
        v = torch.sin(3 * x) + 0.1 * x.flip(-1)     # a nonlinear stand-in for the DiT
        x = sched.step(v, t, x, return_dict=False)[0]
        history.append(v)
        torch.testing.assert_close(plan.apply(k, torch.stack(history)), x, atol=1e-5, rtol=1e-5)


def test_a_stochastic_sampler_has_no_plan_and_the_loop_steps_it(clip):
    sched = FlowMatchEulerDiscreteScheduler(shift=5.0, stochastic_sampling=True)
    sched.set_timesteps(4)
    assert StepPlan.from_scheduler(sched) is None

    pipe = ReviseEditPipeline(ReviseModel.from_preset("tiny", seed=0))
    m = pipe.model
    with torch.no_grad():
        latents = m.encode_video(clip.unsqueeze(0))
        cond, uncond = m.build_context(latents, clip.unsqueeze(0), ["make it night"])
        out = pipe.denoise(torch.randn(latents.shape), torch.cat([cond, uncond]), sched, guidance=3.0)
    assert out.shape == latents.shape and torch.isfinite(out).all()
    assert sched.step_index == 4                    # stepped by its own step()


def test_plans_are_kept_per_scheduler_settings():
    def plan(shift, steps, solver="unipc"):
        sched = make_scheduler(solver, shift=shift)
        sched.set_timesteps(steps)
        return StepPlan.from_scheduler(sched)

    first = plan(5.0, 7)
    assert plan(5.0, 7) is first                    # the same settings: the kept plan
    for other in (plan(3.0, 7), plan(5.0, 8), plan(5.0, 7, "euler")):
        assert other is not first and not torch.equal(other.coefficients[-1, :2], first.coefficients[-1, :2])
    sched = make_scheduler("unipc", shift=5.0)
    sched.set_timesteps(7)
    torch.testing.assert_close(StepPlan._build(sched, 1e-5).coefficients, first.coefficients)
