"""Wan's q/k preparation at the released shapes: compiled PyTorch against the one-pass kernel.

Input: one [B, L, 3d] fused Q/K/V projection (B = 2 for CFG, L = 4400 tokens of a 17x352x640 clip,
d = 1536, 12 heads of 128), diffusers' RoPE tables. Output: q and k RMS-normed and RoPE'd, in the
layout each path hands cuDNN's attention (diffusers: [B, heads, L, head_dim] copies; ours:
[B, L, heads, head_dim], read through strides). Rows:

- "diffusers, compiled": ``norm_q``/``norm_k``, diffusers' ``apply_rotary_emb`` and the backend's
  ``permute(0, 2, 1, 3).contiguous()``, under ``torch.compile``;
- "norm_rope reference, compiled": ``revise.models.norm_rope.norm_rope_reference`` under ``torch.compile``;
- "norm_rope kernel": the Triton kernel, q and k in a launch each or both in one, eager and compiled.

GB/s counts the bytes each row must move at least: q and k read and written once (bf16); the tables
are under 1% and left out.

    python benchmarks/norm_rope.py [--tokens 4400] [--iters 200]
"""

from __future__ import annotations

import argparse

import torch


def diffusers_prepare(qkv, norm_q, norm_k, heads, freqs_cos, freqs_sin):
    def rope(x):
        x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
        cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
        return out.type_as(x)

    q, k, _ = qkv.chunk(3, dim=-1)
    q = rope(norm_q(q).unflatten(2, (heads, -1)))
    k = rope(norm_k(k).unflatten(2, (heads, -1)))
    return q.permute(0, 2, 1, 3).contiguous(), k.permute(0, 2, 1, 3).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4400)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--dim", type=int, default=1536)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/norm_rope.py needs a CUDA GPU")

    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    from revise.models.norm_rope import kernel_applies, norm_rope, norm_rope_reference

    dev, dtype = torch.device("cuda"), torch.bfloat16
    b, L, d, h = args.batch, args.tokens, args.dim, args.heads
    qkv = torch.randn(b, L, 3 * d, device=dev, dtype=dtype)
    norm_q = torch.nn.RMSNorm(d, eps=1e-6).to(dev, dtype)
    norm_k = torch.nn.RMSNorm(d, eps=1e-6).to(dev, dtype)
    with torch.no_grad():
        norm_q.weight.uniform_(0.5, 1.5)
        norm_k.weight.uniform_(0.5, 1.5)
    rope = WanRotaryPosEmbed(d // h, (1, 2, 2), 1024).to(dev)
    frames = max(1, L // (22 * 40))
    cos, sin = rope(torch.empty(1, 16, frames, 44, 80, device=dev))
    L = cos.shape[1]
    qkv = qkv[:, :L]
    assert kernel_applies(qkv[..., :2 * d], h, 2, cos, sin), "the kernel does not apply to these inputs"

    def separately(fn):          # q, then k: one launch each
        def run(qkv):
            return (fn(qkv[..., :d], [norm_q.weight], 1e-6, h, cos, sin)[0],
                    fn(qkv[..., d:2 * d], [norm_k.weight], 1e-6, h, cos, sin)[0])
        return run

    def together(fn):            # q and k side by side: one launch
        return lambda qkv: fn(qkv[..., :2 * d], [norm_q.weight, norm_k.weight], 1e-6, h, cos, sin)

    rows = {
        "diffusers, compiled": torch.compile(lambda x: diffusers_prepare(x, norm_q, norm_k, h, cos, sin)),
        "norm_rope reference, compiled": torch.compile(together(norm_rope_reference)),
        "norm_rope kernel, q and k separately, compiled": torch.compile(separately(norm_rope)),
        "norm_rope kernel, q and k in one launch": together(norm_rope),
        "norm_rope kernel, q and k in one launch, compiled": torch.compile(together(norm_rope)),
    }
    want = together(norm_rope_reference)(qkv)
    moved = 2 * 2 * b * L * d * qkv.element_size()          # q and k, each read and written once
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; B={b} L={L} d={d} heads={h}, "
          f"{moved / 1e6:.0f} MB moved at least per call")
    print("| q/k preparation | us per call | GB/s | max abs diff vs reference |")
    print("| --- | --- | --- | --- |")
    with torch.no_grad():
        for name, fn in rows.items():
            for _ in range(3):
                got = fn(qkv)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(args.iters):
                fn(qkv)
            end.record()
            torch.cuda.synchronize()
            us = start.elapsed_time(end) * 1e3 / args.iters
            diff = max((g.float() - (w if g.shape == w.shape else w.transpose(1, 2)).float()).abs().max().item()
                       for g, w in zip(got, want))
            print(f"| {name} | {us:.1f} | {moved / us / 1e3:.0f} | {diff:.3g} |", flush=True)


if __name__ == "__main__":
    main()
