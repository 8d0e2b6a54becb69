"""Best-of-N: N seeds, the critic's favourite kept, and the kept clip is exactly that seed's edit."""

import pytest
import torch

from revise.critic import DIMENSIONS, Critic
from revise.errors import ReviseInputError
from revise.pipelines.best_of import critic_scores, edit_best_of
from revise.pipelines.edit import ReviseEditPipeline

SAMPLING = dict(num_frames=5, height=32, width=32, num_inference_steps=2)


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return ReviseEditPipeline(tiny_model)


@pytest.fixture
def small_clip(clip):
    return clip[:, :5, :32, :32]


def test_keeps_the_candidate_the_critic_rates_highest(pipe, small_clip):
    seen = []
    out = edit_best_of(pipe, small_clip, "make it night", 3, seed=5, progress=lambda f, s: seen.append((f, s)),
                       **SAMPLING)
    assert [c["seed"] for c in out.candidates] == [5, 6, 7]
    best = max(out.candidates, key=lambda c: c["p_yes"])
    assert out.seed == best["seed"]
    assert out.scores["overall"] == pytest.approx(best["p_yes"], abs=1e-6)
    plain = pipe(small_clip, "make it night", seed=out.seed, progress=False, **SAMPLING).video[0]
    torch.testing.assert_close(out.video, plain)          # the kept clip is that seed's own edit
    assert set(out.scores) == {"overall", *DIMENSIONS}
    assert all(0 < p < 1 for p in out.scores.values())
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("candidate 2 of 3: denoising step 2 of 2" == s for _, s in seen)


def test_one_candidate_is_the_plain_edit_with_scores(pipe, small_clip):
    out = edit_best_of(pipe, small_clip, "x", 1, seed=3, **SAMPLING)
    torch.testing.assert_close(out.video, pipe(small_clip, "x", seed=3, progress=False, **SAMPLING).video[0])
    assert out.candidates == [{"seed": 3, "p_yes": out.scores["overall"]}]
    again = critic_scores(Critic(pipe.model.understanding), out.source, out.video, "x")
    assert again == pytest.approx(out.scores)


@pytest.mark.parametrize("n", [0, 17, 2.0, True])
def test_bad_n(pipe, small_clip, n):
    with pytest.raises(ReviseInputError, match="best-of must be a whole number from 1 to 16"):
        edit_best_of(pipe, small_clip, "x", n, **SAMPLING)


def test_cli_best_of(tmp_path, capsys):
    from revise.cli import EXAMPLES_DIR, main

    clip = sorted(EXAMPLES_DIR.glob("*.mp4"))[0]
    out = tmp_path / "e.mp4"
    args = ["edit", "--video", str(clip), "--instruction", "later", "--out", str(out), "--steps", "2",
            "--frames", "5", "--size", "32x32"]
    assert main(args + ["--best-of", "2", "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    assert "best of 2: seed " in printed and "4: 0." in printed and "5: 0." in printed
    assert "edit_accuracy 0." in printed and out.is_file()
    out.unlink()
    assert main(args + ["--best-of", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["revise: error: --best-of must be from 1 to 16, not 0"] and not out.exists()
