"""Fuzzing the command line's numbers and instruction text (hypothesis, as tests/test_fuzz_readers.py).

Property: whatever number or text the user types, the checks either accept a value an edit can run
with or raise ``ReviseInputError`` (the CLI's one line and exit 2); never another exception, never a
silent substitute. The runs are derandomized; REVISE_FUZZ_EXAMPLES=2000 fuzzes longer.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revise.cli import build_parser
from revise.config import load_preset
from revise.errors import ReviseInputError
from revise.models.tokenizers import build_tokenizer, instruction_warnings, unknown_words
from revise.pipelines.sampling_options import (MAX_SIDE, MAX_STEPS, SOLVERS, check_instructions, resolve_device,
                                               resolve_sampling)

LONG = int(os.environ.get("REVISE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG or 150, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow])

NUMBER_TEXT = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e308", "0", "-0", "0x10", "1_000", "", " ", "17.0", "5e-324"]),
    st.text(max_size=12),
)


def parse_edit(flag: str, value: str):
    """The edit command's arguments with ``flag value``: the parsed namespace or argparse's exit 2."""
    args = ["edit", "--model", "tiny", "--video", "v.mp4", "--instruction", "x", "--out", "o.mp4", flag, value]
    return build_parser().parse_args(args)


def accepted(namespace) -> None:
    width, height = namespace.size or (None, None)
    o = resolve_sampling("tiny", frames=namespace.frames, height=height, width=width, steps=namespace.steps,
                         guidance=namespace.guidance, shift=namespace.shift, solver=namespace.solver,
                         seed=namespace.seed)
    assert o.num_frames >= 1 and (o.num_frames - 1) % 4 == 0
    assert 0 < o.height <= MAX_SIDE and 0 < o.width <= MAX_SIDE and o.height % 16 == 0 == o.width % 16
    assert 1 <= o.num_inference_steps <= MAX_STEPS
    assert math.isfinite(o.guidance_scale) and o.guidance_scale >= 0
    assert math.isfinite(o.shift) and o.shift > 0
    assert o.solver in SOLVERS and o.seed >= 0


@FUZZ
@given(flag=st.sampled_from(["--frames", "--steps", "--guidance", "--shift", "--seed", "--size"]), value=NUMBER_TEXT)
def test_number_arguments_are_valid_or_one_clear_error(flag, value):
    try:
        namespace = parse_edit(flag, value)
    except SystemExit as exit_:             # argparse: not a number at all
        assert exit_.code == 2
        return
    try:
        accepted(namespace)
    except ReviseInputError as err:
        assert "\n" not in str(err)


@FUZZ
@given(w=st.integers(-10**6, 10**6), h=st.integers(-10**6, 10**6), frames=st.integers(-100, 10**5),
       steps=st.integers(-10, 10**5), guidance=st.floats(allow_nan=True), shift=st.floats(allow_nan=True))
def test_resolve_sampling_on_any_numbers(w, h, frames, steps, guidance, shift):
    try:
        o = resolve_sampling("tiny", frames=frames, height=h, width=w, steps=steps, guidance=guidance, shift=shift)
    except ReviseInputError:
        return
    assert (o.num_frames, o.height, o.width, o.num_inference_steps) == (frames, h, w, steps)
    assert math.isfinite(o.guidance_scale) and o.guidance_scale >= 0 and math.isfinite(o.shift) and o.shift > 0


@FUZZ
@given(device=st.one_of(st.text(max_size=12), st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:-1", "cpu:0", "mps",
                                                                "meta", "CUDA", "cuda:1:2", "xla"])),
       dtype=st.one_of(st.none(), st.sampled_from(["float32", "bfloat16", "float16", "float64", "int8", ""])))
def test_device_and_dtype_are_valid_or_one_clear_error(device, dtype):
    try:
        name, torch_dtype = resolve_device(device, dtype)
    except ReviseInputError as err:
        assert "\n" not in str(err)
        return
    assert name.startswith(("cpu", "cuda", "mps")) and torch_dtype.is_floating_point


@pytest.fixture(scope="module")
def mini_tokenizer():
    return build_tokenizer("t5", load_preset("mini")["tokenizer"])


@FUZZ
@given(text=st.one_of(st.text(max_size=300),
                      st.text(st.characters(codec=None, exclude_categories=()), max_size=60),
                      st.binary(max_size=80).map(lambda b: b.decode("utf-8", "surrogateescape"))))
def test_instruction_text_is_taken_or_one_clear_error(text, mini_tokenizer):
    try:
        check_instructions([text])
    except ReviseInputError as err:
        assert "\n" not in str(err)
        return
    text.encode("utf-8")                    # what passes, the tokenizers can take
    for word in unknown_words(text, mini_tokenizer):
        assert word == word.lower() and word.strip()
    assert set(unknown_words(text)) == set(unknown_words(text, mini_tokenizer))
    for note in instruction_warnings(text, mini_tokenizer, 32):
        assert "\n" not in note
