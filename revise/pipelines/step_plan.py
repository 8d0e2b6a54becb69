"""A sampler's whole trajectory as fixed linear coefficients, so the loop never waits on the host.

diffusers' multistep samplers (UniPC, Euler, DPM-Solver) combine the current latents and the model
outputs seen so far with coefficients that depend on the noise schedule alone. UniPC builds those
coefficients on the CPU at every step and copies them to the GPU, which makes the host wait for the
GPU to finish the step before it can launch the next one (10% of the loop at the released shapes,
`docs/performance.md`).

``StepPlan.from_scheduler`` runs the scheduler itself once, on the CPU in float64, on unit vectors
(``x_T`` and each step's model output as its own basis direction), which reads its coefficients off
exactly: after step k the latents are ``sum_j C[k, j] * h_j`` with ``h = [x_T, v_0, ..., v_k]``.
It then checks the plan against a second run of the scheduler on random inputs, and gives None for a
sampler that is not linear (a stochastic one, say); the caller then steps the scheduler as usual.
Both runs take tens of milliseconds of CPU time for 40 steps, during which the GPU waits, so plans are
kept per scheduler class, config and timesteps: the next edit with the same settings reuses its plan.
"""

from __future__ import annotations

import copy
import json

import torch

_PLANS: dict[tuple, "StepPlan | None"] = {}
_MAX_PLANS = 64


class StepPlan:
    """``coefficients[k, j]``: the weight of history entry j (``x_T``, then ``v_0 .. v_k``) after step k."""

    def __init__(self, coefficients: torch.Tensor):
        self.coefficients = coefficients

    def __len__(self) -> int:
        return self.coefficients.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "StepPlan":
        """The plan with its coefficients on ``device``: copy it there once, before the loop."""
        return StepPlan(self.coefficients.to(device, dtype))

    @staticmethod
    def _cpu_copy(scheduler):
        """A deep copy of ``scheduler`` in its state before the first step, its tensors on the CPU."""
        sched = copy.deepcopy(scheduler)
        for name, value in vars(sched).items():
            if isinstance(value, torch.Tensor):
                setattr(sched, name, value.cpu())
        return sched

    @staticmethod
    def _key(scheduler, tolerance: float) -> tuple | None:
        """What the plan depends on: the class, config and schedule (None if any of it can't be read)."""
        try:
            config = json.dumps(dict(scheduler.config), sort_keys=True, default=str)
            schedule = tuple(
                tuple(torch.as_tensor(getattr(scheduler, name)).flatten().tolist()) if getattr(scheduler, name, None) is not None else None
                for name in ("timesteps", "sigmas"))
            state = tuple(getattr(scheduler, name, None) for name in ("_step_index", "_begin_index"))
        except (AttributeError, TypeError, ValueError):
            return None
        return (type(scheduler).__module__, type(scheduler).__qualname__, config, schedule, state, tolerance)

    @classmethod
    def from_scheduler(cls, scheduler, tolerance: float = 1e-5) -> "StepPlan | None":
        """The plan of ``scheduler`` (after ``set_timesteps``, before its first step), or None if its
        steps are not a fixed linear map of the latents and model outputs. Plans are kept per
        scheduler class, config and schedule."""
        key = cls._key(scheduler, tolerance)
        if key is not None and key in _PLANS:
            return _PLANS[key]
        plan = cls._build(scheduler, tolerance)
        if key is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.pop(next(iter(_PLANS)))
            _PLANS[key] = plan
        return plan

    @classmethod
    def _build(cls, scheduler, tolerance: float) -> "StepPlan | None":
        n = len(scheduler.timesteps)
        sched = cls._cpu_copy(scheduler)
        x = torch.zeros(1, n + 1, dtype=torch.float64)
        x[0, 0] = 1.0
        rows = []
        for k, t in enumerate(sched.timesteps):
            v = torch.zeros(1, n + 1, dtype=torch.float64)
            v[0, k + 1] = 1.0
            x = sched.step(v, t, x, return_dict=False)[0].to(torch.float64)
            rows.append(x[0].clone())
        plan = cls(torch.stack(rows))
        return plan if plan._reproduces(cls._cpu_copy(scheduler), tolerance) else None

    def _reproduces(self, sched, tolerance: float) -> bool:
        """Whether the plan follows ``sched`` stepping random latents with a nonlinear stand-in model."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 4, dtype=torch.float64, generator=g)
        w = torch.randn(4, 4, dtype=torch.float64, generator=g)
        history = [x]
        for k, t in enumerate(sched.timesteps):
            v = torch.tanh(x @ w)
            x = sched.step(v, t, x, return_dict=False)[0].to(torch.float64)
            history.append(v)
            planned = self.apply(k, torch.stack(history))
            if not torch.allclose(planned, x, rtol=tolerance, atol=tolerance):
                return False
        return True

    def apply(self, k: int, history: torch.Tensor) -> torch.Tensor:
        """The latents after step ``k`` from ``history`` [>= k+2, ...] (``x_T``, ``v_0``, ...)."""
        c = self.coefficients[k, : k + 2].to(history.device, history.dtype)
        return torch.tensordot(c, history[: k + 2], dims=1)
