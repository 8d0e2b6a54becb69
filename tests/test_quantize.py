"""FP8 linears for the DiT (revise/models/fp8.py) and 8-bit encoder weights (revise/models/int8.py):
numerics on the CPU (PyTorch runs ``torch._scaled_mm`` there too), the device check, and the
pipeline options."""

import pytest
import torch

from revise import ReviseEditPipeline
from revise.errors import ReviseInputError
from revise.models.fp8 import E4M3, Fp8Linear, check_fp8_device, fp8_linears, fp8_supported, quantize_rows
from revise.models.int8 import Int8WeightLinear, int8_weights

KW = dict(num_frames=5, height=32, width=32, num_inference_steps=2, progress=False)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


def test_quantize_rows_maps_each_rows_largest_value_to_e4m3s_largest():
    x = torch.randn(6, 32) * torch.logspace(-3, 3, 6).unsqueeze(1)     # rows of very different sizes
    q, scale = quantize_rows(x)
    assert q.dtype == E4M3 and scale.shape == (6, 1)
    assert torch.equal(q.float().abs().amax(1), torch.full((6,), 448.0))
    assert rel(q.float() * scale, x) < 0.05          # e4m3 keeps 3 mantissa bits: ~2% per value


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_linear_is_close_to_the_linear(dtype):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48).to(dtype)
    x = torch.randn(2, 10, 64, dtype=dtype)
    y = Fp8Linear(linear)(x)
    assert y.dtype == dtype and y.shape == (2, 10, 48)
    assert rel(y, linear(x)) < 0.06


def test_fp8_linears_swap_the_blocks_linears_only(tiny_model):
    import copy

    dit = copy.deepcopy(tiny_model.transformer)
    n_block_linears = sum(type(m) is torch.nn.Linear for m in dit.blocks.modules())
    assert fp8_linears(dit, "cpu", allow_cpu=True) == n_block_linears > 0
    assert not any(type(m) is torch.nn.Linear for m in dit.blocks.modules())
    assert type(dit.proj_out) is torch.nn.Linear          # the output head keeps its dtype
    torch.manual_seed(0)
    x, t = torch.randn(2, 16, 2, 4, 4), torch.tensor([500, 500])
    ctx = torch.randn(2, 128, dit.config.text_dim)
    want = tiny_model.transformer(x, t, ctx, return_dict=False)[0]
    assert rel(dit(x, t, ctx, return_dict=False)[0], want) < 0.1
    # a second call swaps nothing more and sets fast accumulation on the layers already in FP8
    assert not any(m.fast_accum for m in dit.modules() if isinstance(m, Fp8Linear))
    assert fp8_linears(dit, "cpu", allow_cpu=True, fast_accum=True) == 0
    assert all(m.fast_accum for m in dit.modules() if isinstance(m, Fp8Linear))
    assert rel(dit(x, t, ctx, return_dict=False)[0], want) < 0.1


def test_fp8_is_refused_with_one_line_where_there_are_no_fp8_matmuls(monkeypatch):
    ok, why = fp8_supported("cpu")
    assert not ok and "compute capability 8.9" in why
    with pytest.raises(ReviseInputError, match="compute capability 8.9 or newer"):
        check_fp8_device("cpu")
    check_fp8_device("cpu", allow_cpu=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    with pytest.raises(ReviseInputError, match="A100-SXM4-80GB is 8.0: use bf16"):
        check_fp8_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    check_fp8_device("cuda:0")                              # Hopper


def test_int8_weight_linear_is_close_and_half_the_bytes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32)).to(torch.bfloat16)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    want = model(x)
    assert int8_weights(model) == 2
    assert isinstance(model[0], Int8WeightLinear) and model[0].weight_int8.dtype == torch.int8
    assert model[0].weight.dtype == torch.bfloat16 and model[0].weight.shape == (128, 64)
    assert rel(model(x), want) < 0.02
    model.float()                                           # the probe follows the module's dtype
    assert model[0].weight.dtype == torch.float32


# ---- the pipeline ---------------------------------------------------------------------------------
def test_pipeline_fp8_needs_an_fp8_device_then_edits_close_to_the_full_precision_edit(tiny_model, clip):
    from revise.models.fp8 import Fp8Linear

    clip = torch.nn.functional.interpolate(clip, size=(32, 32)).narrow(1, 0, 5)
    want = ReviseEditPipeline(tiny_model)(clip, "make it night", seed=1, output_type="latent", **KW).video
    with pytest.raises(ReviseInputError, match="compute capability 8.9"):
        ReviseEditPipeline.from_pretrained("tiny", device="cpu", quantize="fp8")
    pipe = ReviseEditPipeline.from_pretrained("tiny", device="cpu").enable_fp8(allow_cpu=True)
    assert pipe.quantized == {"transformer": "fp8"}
    assert any(isinstance(m, Fp8Linear) for m in pipe.model.transformer.modules())
    got = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    assert 0 < rel(got, want) < 0.1
    with pytest.raises(ReviseInputError, match="before enable_fast_path"):
        pipe.load_lora_weights("nowhere.safetensors")


def test_pipeline_int8_encoders_with_offload(tiny_model, clip):
    from revise.pipelines.stages import module_bytes

    clip = torch.nn.functional.interpolate(clip, size=(32, 32)).narrow(1, 0, 5)
    want = ReviseEditPipeline(tiny_model)(clip, "make it night", seed=1, output_type="latent", **KW).video
    pipe = ReviseEditPipeline.from_pretrained("tiny", device="cpu", offload="stages", encoder_weights="int8")
    assert pipe.quantized == {"encoders": "int8"} and pipe._placement is not None
    for name in ("understanding", "text_encoder"):
        assert any(isinstance(m, Int8WeightLinear) for m in getattr(pipe.model, name).modules())
        assert module_bytes(getattr(pipe.model, name)) < module_bytes(getattr(tiny_model, name))
    got = pipe(clip, "make it night", seed=1, output_type="latent", **KW).video
    assert 0 < rel(got, want) < 0.1
    assert pipe._placement.on_device == set()


@pytest.mark.parametrize("kwargs, match", [(dict(quantize="int4"), "unknown quantize 'int4'"),
                                           (dict(encoder_weights="fp4"), "unknown encoder weights 'fp4'")])
def test_unknown_quantize_options(kwargs, match):
    with pytest.raises(ReviseInputError, match=match):
        ReviseEditPipeline.from_pretrained("tiny", device="cpu", **kwargs)
