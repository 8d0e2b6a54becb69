"""The one-pass q/k preparation (RMSNorm, RoPE, heads-major layout) against diffusers' computation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from revise.models.norm_rope import norm_rope_reference


def diffusers_prepare(x, norm, heads, freqs_cos=None, freqs_sin=None):
    """What diffusers' WanAttnProcessor and its cuDNN backend do to a projected q (or k)."""
    x = norm(x).unflatten(2, (heads, -1))
    if freqs_cos is not None:
        x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
        cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
        x = out.type_as(x)
    return x.permute(0, 2, 1, 3).contiguous()


def inputs(heads=3, head_dim=8, frames=2, h=4, w=6, dtype=torch.float32, device="cpu"):
    torch.manual_seed(0)
    d = heads * head_dim
    length = frames * (h // 2) * (w // 2)
    qkv = torch.randn(2, length, 3 * d, dtype=dtype, device=device)
    x = qkv[..., d:2 * d]                                      # a strided slice, as of a fused projection
    norm = torch.nn.RMSNorm(d, eps=1e-6).to(device, dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    cos, sin = WanRotaryPosEmbed(head_dim, (1, 2, 2), 64).to(device)(torch.empty(1, 4, frames, h, w, device=device))
    return x, norm, cos, sin


@pytest.mark.parametrize("rope", [True, False])
def test_reference_is_diffusers_norm_rope_and_layout(rope):
    x, norm, cos, sin = inputs()
    tables = (cos, sin) if rope else ()
    got = norm_rope_reference(x, norm.weight, norm.eps, 3, *tables)
    want = diffusers_prepare(x, norm, 3, *tables)
    assert got.shape == (2, 3, x.shape[1], 8) and got.is_contiguous()
    torch.testing.assert_close(got, want)


KERNEL_CHECK = textwrap.dedent("""
    import torch
    from tests.test_norm_rope import inputs
    from revise.models import norm_rope as nr

    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        x, norm, cos, sin = inputs(dtype=dtype, device=DEVICE)
        for tables in ((cos, sin), ()):
            assert nr.kernel_applies(x, 3, *tables)
            got = nr.norm_rope(x, norm.weight, norm.eps, 3, *tables)
            want = nr.norm_rope_reference(x, norm.weight, norm.eps, 3, *tables)
            assert got.dtype == dtype and got.shape == want.shape and got.is_contiguous()
            torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)
            compiled = torch.compile(lambda t: nr.norm_rope(t, norm.weight, norm.eps, 3, *tables), fullgraph=True)
            if DEVICE == "cuda":
                torch.testing.assert_close(compiled(x).float(), want.float(), atol=tol, rtol=tol)
    print("kernel ok")
""")


def test_triton_kernel_matches_the_reference():
    """On CUDA the kernel itself (eager and compiled); elsewhere Triton's interpreter runs it on the CPU
    (in a subprocess, since the interpreter is chosen when the kernel is defined)."""
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    env = dict(os.environ, TRITON_INTERPRET="0" if device == "cuda" else "1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", f"DEVICE = {device!r}\n" + KERNEL_CHECK], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "kernel ok" in res.stdout, res.stdout + res.stderr
