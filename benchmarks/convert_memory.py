"""Peak memory of `revise convert wan` on a checkpoint with the released Wan2.1-1.3B shapes.

Writes an original-layout folder with the official sizes (DiT dim 1536 x 30 layers in float32,
the base-96 VAE, the UMT5-XXL encoder in bfloat16: about 17.5 GB on disk, zeros for speed; values
do not change memory), then converts it in a child process and samples that process's memory:

- RssAnon: anonymous memory (what the conversion itself holds); the target is under 6 GiB;
- VmHWM: resident peak including memory-mapped checkpoint pages (page cache the kernel can drop).

    python benchmarks/convert_memory.py [--workdir /tmp/revise-convert-bench] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

GIB = 1024**3


def make_checkpoint(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKLWan
    from safetensors.torch import save_file

    from revise.convert.synthetic import original_dit, original_t5, original_vae_from

    folder.mkdir(parents=True)
    dit, config = original_dit(dim=1536, heads=12, layers=30, ffn=8960, text_dim=4096, freq_dim=256,
                               init=lambda *s: torch.zeros(*s))
    config["text_len"] = 512
    save_file(dit, str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    del dit
    torch.save(original_vae_from(AutoencoderKLWan()), folder / "Wan2.1_VAE.pth")
    t5 = original_t5(vocab=256384, d=4096, heads=64, layers=24, ff=10240, init=lambda *s: torch.zeros(*s, dtype=torch.bfloat16))
    torch.save(t5, folder / "models_t5_umt5-xxl-enc-bf16.pth")


def measure(src: Path, dst: Path) -> dict[str, float]:
    code = ("import sys; from revise.convert.wan import convert_wan; "
            "convert_wan(sys.argv[1], sys.argv[2])")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(src), str(dst)])
    peak = {"RssAnon": 0, "VmHWM": 0}

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in peak:
                        peak[key] = max(peak[key], int(value.split()[0]) * 1024)
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    proc.wait()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"conversion failed with exit code {proc.returncode}")
    return {"seconds": time.perf_counter() - start, "rss_anon_gib": peak["RssAnon"] / GIB,
            "vm_hwm_gib": peak["VmHWM"] / GIB}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/revise-convert-bench")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoints afterwards")
    args = ap.parse_args()
    work = Path(args.workdir)
    src, dst = work / "wan2.1-1.3b-original", work / "converted"
    if dst.exists():
        shutil.rmtree(dst)
    if not src.exists():
        t = time.perf_counter()
        make_checkpoint(src)
        print(f"made {src} ({sum(f.stat().st_size for f in src.iterdir()) / 1e9:.1f} GB) in {time.perf_counter() - t:.0f} s")
    src_bytes = sum(f.stat().st_size for f in src.iterdir())
    r = measure(src, dst)
    print()
    print("| checkpoint | on disk | time | peak RssAnon | peak VmHWM (with mapped pages) | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| Wan2.1-1.3B shapes (DiT fp32, VAE fp32, UMT5-XXL bf16) | {src_bytes / GIB:.1f} GiB | {r['seconds']:.0f} s "
          f"| {r['rss_anon_gib']:.2f} GiB | {r['vm_hwm_gib']:.2f} GiB | RssAnon < 6 GiB: "
          f"{'met' if r['rss_anon_gib'] < 6 else 'NOT met'} |")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
