import pytest
import torch

from revise import ReviseModel


@pytest.fixture(scope="session")
def tiny_model() -> ReviseModel:
    """The tiny preset with seeded random weights (built once per session; do not modify it)."""
    return ReviseModel.from_preset("tiny", seed=0)


@pytest.fixture
def clip() -> torch.Tensor:
    """A 17-frame 64x64 clip in [-1, 1]: a bright square moving right over a gradient."""
    f, h, w = 17, 64, 64
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    video = torch.stack([xx * 0.5, yy * 0.5, -xx * 0.3]).unsqueeze(1).repeat(1, f, 1, 1)
    for t in range(f):
        x0 = 4 + 2 * t
        video[:, t, 24:40, x0:x0 + 16] = torch.tensor([0.9, -0.8, 0.2]).view(3, 1, 1)
    return video
