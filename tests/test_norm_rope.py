"""The one-pass q/k preparation (RMSNorm, RoPE) against diffusers' computation."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from revise.models.norm_rope import norm_rope_reference


def diffusers_prepare(x, norm, heads, freqs_cos=None, freqs_sin=None):
    """What diffusers' WanAttnProcessor does to a projected q (or k) before attention."""
    x = norm(x).unflatten(2, (heads, -1))
    if freqs_cos is not None:
        x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
        cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
        x = out.type_as(x)
    return x                                   # [B, L, heads, head_dim]


def inputs(heads=3, head_dim=8, frames=2, h=4, w=6, dtype=torch.float32, device="cpu"):
    """A fused Q/K/V projection [B, L, 3d], q's and k's RMSNorms, diffusers' RoPE tables."""
    torch.manual_seed(0)
    d = heads * head_dim
    length = frames * (h // 2) * (w // 2)
    qkv = torch.randn(2, length, 3 * d, dtype=dtype, device=device)
    norms = [torch.nn.RMSNorm(d, eps=1e-6).to(device, dtype) for _ in range(2)]
    with torch.no_grad():
        for n in norms:
            n.weight.uniform_(0.5, 1.5)
    cos, sin = WanRotaryPosEmbed(head_dim, (1, 2, 2), 64).to(device)(torch.empty(1, 4, frames, h, w, device=device))
    return qkv, norms, cos, sin


@pytest.mark.parametrize("rope", [True, False])
def test_reference_is_diffusers_norm_rope_and_layout(rope):
    qkv, (norm_q, norm_k), cos, sin = inputs()
    d = norm_q.weight.numel()
    tables = (cos, sin) if rope else ()
    q, k = norm_rope_reference(qkv[..., :2 * d], [norm_q.weight, norm_k.weight], 1e-6, 3, *tables)
    assert q.shape == (2, qkv.shape[1], 3, 8) and q.is_contiguous() and k.is_contiguous()
    torch.testing.assert_close(q, diffusers_prepare(qkv[..., :d], norm_q, 3, *tables))
    torch.testing.assert_close(k, diffusers_prepare(qkv[..., d:2 * d], norm_k, 3, *tables))


KERNEL_CHECK = textwrap.dedent("""
    import torch
    from tests.test_norm_rope import inputs
    from revise.models import norm_rope as nr, triton_e4m3

    torch.set_grad_enabled(False)              # the kernel's domain (with gradients: the reference)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        qkv, norms, cos, sin = inputs(dtype=dtype, device=DEVICE)
        d = norms[0].weight.numel()
        weights = [n.weight for n in norms]
        for x, ws in ((qkv[..., :2 * d], weights), (qkv[..., d:2 * d], weights[1:])):   # q and k; k alone
            for tables in ((cos, sin), ()):
                assert nr.kernel_applies(x, 3, len(ws), *tables)
                want = nr.norm_rope_reference(x, ws, 1e-6, 3, *tables)
                runs = [nr.norm_rope(x, ws, 1e-6, 3, *tables)]
                if DEVICE == "cuda":
                    runs.append(torch.compile(lambda t: nr.norm_rope(t, ws, 1e-6, 3, *tables), fullgraph=True)(x))
                for got in runs:
                    assert len(got) == len(ws)
                    for g, w in zip(got, want):
                        assert g.dtype == dtype and g.shape == w.shape and g.is_contiguous()
                        torch.testing.assert_close(g.float(), w.float(), atol=tol, rtol=tol)
                # FP8 output (revise/models/fp8_attention.py): times a scale, in e4m3, within its rounding;
                # on CUDA with either encoding (triton_e4m3.py)
                scales = torch.tensor([448 / (d ** 0.5 * w.abs().max().item()) for w in ws], device=DEVICE)
                for native in ((False, True) if DEVICE == "cuda" else (False,)):
                    triton_e4m3.NATIVE_CAST = native
                    fp8 = [nr.norm_rope(x, ws, 1e-6, 3, *tables, out_scales=scales)]
                    if DEVICE == "cuda":
                        torch._dynamo.reset()
                        fp8.append(torch.compile(lambda t: nr.norm_rope(t, ws, 1e-6, 3, *tables, out_scales=scales),
                                                 fullgraph=True)(x))
                    for got in fp8:
                        for g, w, s in zip(got, want, scales):
                            assert g.dtype == torch.float8_e4m3fn and g.shape == w.shape and g.is_contiguous()
                            torch.testing.assert_close(g.float() / s, w.float(), rtol=0.07,
                                                       atol=2 ** -9 / s.item())
                    # padded to more rows (FP8 self-attention, attention_ops.padded_length): the same rows,
                    # then zeros
                    length = x.shape[1]
                    for got in (nr.norm_rope(x, ws, 1e-6, 3, *tables, out_scales=scales, pad_to=length + 5),
                                nr.norm_rope_reference(x, ws, 1e-6, 3, *tables, out_scales=scales, pad_to=length + 5)):
                        for g, w in zip(got, fp8[0]):
                            assert g.shape == (w.shape[0], length + 5, *w.shape[2:]) and g.is_contiguous()
                            assert torch.equal(g[:, :length].view(torch.uint8), w.view(torch.uint8))
                            assert not g[:, length:].view(torch.uint8).any()
    print("kernel ok")
""")


def run_triton_check(script: str, done: str) -> None:
    """``script`` with ``DEVICE`` set, on CUDA as it is, elsewhere in Triton's interpreter on the CPU (in a
    subprocess, since the interpreter is chosen when a kernel is defined); it must print ``done``."""
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TRITON_INTERPRET="0" if device == "cuda" else "1",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as tmp:      # a file: Triton reads a jit function's source from it
        path = os.path.join(tmp, "triton_check.py")
        with open(path, "w") as f:
            f.write(f"DEVICE = {device!r}\n" + script)
        res = subprocess.run([sys.executable, path], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and done in res.stdout, (res.stdout + res.stderr)[-3000:]


def test_triton_kernel_matches_the_reference():
    """On CUDA the kernel itself (eager and compiled); elsewhere in Triton's interpreter."""
    run_triton_check(KERNEL_CHECK, "kernel ok")


E4M3_CHECK = textwrap.dedent("""
    import torch, triton, triton.language as tl
    from revise.models.triton_e4m3 import e4m3_store_bits

    @triton.jit
    def encode(x_ptr, o_ptr, n, BLOCK: tl.constexpr, NATIVE: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(o_ptr + i, e4m3_store_bits(tl.load(x_ptr + i, mask=i < n, other=0.0), NATIVE), mask=i < n)

    torch.manual_seed(0)
    every = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()   # each finite e4m3 >= 0
    ties = (every[1:] + every[:-1]) / 2                                                  # halfway between two
    x = torch.cat([torch.randn(20000) * 10.0 ** torch.randint(-5, 3, (20000,)).float(), every, -every, ties, -ties,
                   torch.tensor([449.0, 464.0, 465.0, -1e6, 1e-12, -1e-12, 0.0, -0.0])]).to(DEVICE)
    want = x.clamp(-448, 448).to(torch.float8_e4m3fn).view(torch.uint8)
    # integer arithmetic everywhere; the GPU's own conversion on CUDA (the interpreter's rounds otherwise)
    for native in ((False, True) if DEVICE == "cuda" else (False,)):
        got = torch.empty(x.numel(), dtype=torch.uint8, device=DEVICE)
        encode[(triton.cdiv(x.numel(), 1024),)](x, got, x.numel(), BLOCK=1024, NATIVE=native)
        bad = (got != want).nonzero().flatten()[:5].tolist()
        assert not bad, (native, [(x[i].item(), got[i].item(), want[i].item()) for i in bad])
    print("encoding ok")
""")


def test_e4m3_encoding_is_torchs_cast():
    """The kernels' float32 -> e4m3 encodings (integer arithmetic on the bits; on CUDA also the GPU's
    conversion) give the bits of PyTorch's saturating cast for every e4m3 value, the ties between them,
    subnormals, zeros of both signs, values past 448 and random values over eight decades."""
    run_triton_check(E4M3_CHECK, "encoding ok")


def test_gradients_take_the_reference_path():
    """The kernel has no backward: with gradients wanted, norm_rope is the differentiable reference."""
    from revise.models.norm_rope import norm_rope

    qkv, (norm_q, norm_k), cos, sin = inputs()
    x = qkv[..., :48].detach().requires_grad_()
    q, k = norm_rope(x, [norm_q.weight, norm_k.weight], 1e-6, 3, cos, sin)
    (q.square().sum() + k.sum()).backward()
    assert x.grad is not None and norm_q.weight.grad is not None and norm_k.weight.grad is not None
    assert x.grad.abs().sum() > 0
