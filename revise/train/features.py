"""The offline feature cache: what frozen modules make of each training item, computed once.

For the generator objectives the VAE and (unless it trains) the understanding VLM are frozen, so
each item's source and target latents and the VLM's hidden states of (source clip, instruction)
never change during a run. :func:`feature_cache` computes them once in batches, stores them in
``out/cache/features.safetensors`` with a fingerprint of the data and the model, and reuses the file
while the fingerprint matches. Training then reads latents instead of running the VAE encoder and
the VLM every step. (The T5 features have their own cache, ``cache_text``.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..atomic import atomic_path, write_text
from ..models.revise_model import ReviseModel
from .data import TripletData


def fingerprint(data: TripletData, model_ref: str, vlm: bool) -> str:
    """Changes when the data, the clip shape, the cached parts or the weights that make them (the VAE
    and the understanding VLM of a model folder, by content; a preset by name) change."""
    h = hashlib.sha256()
    h.update(json.dumps([data.items, list(data.shape), vlm], sort_keys=True).encode())
    if not Path(model_ref).is_dir():
        h.update(str(model_ref).encode())     # a preset: its seeded weights
    folder = Path(model_ref)
    if folder.is_dir():       # only the components that make the features: other stages' DiTs share it
        for part in ("vae", "understanding"):
            for f in sorted((folder / part).rglob("*")):
                if f.is_file():
                    h.update(f"{f.relative_to(folder)}:{f.stat().st_size}:{_sha(f)}".encode())
    return h.hexdigest()


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def compute_features(model: ReviseModel, data: TripletData, vlm: bool, batch_size: int = 32,
                     progress: bool = True) -> dict[str, torch.Tensor]:
    """Per item: source/target latents [N, z, f, h, w] (bf16), and with ``vlm`` the VLM hidden states
    [N, L, D] (bf16, right-padded) with their mask [N, L]; ``ok`` [N] marks items whose clips loaded."""
    n = len(data)
    out: dict[str, list] = {"source_latents": [], "target_latents": [], "vlm_hidden": [], "ok": []}
    for start in tqdm(range(0, n, batch_size), desc="caching features", unit="batch", disable=not progress):
        samples = [data.load(i) for i in range(start, min(n, start + batch_size))]
        good = [s for s in samples if s is not None]
        out["ok"] += [s is not None for s in samples]
        if not good:
            continue
        dev = model.device
        src = torch.stack([s["source"] for s in good]).to(dev, model.vae.dtype)
        tgt = torch.stack([s["target"] for s in good]).to(dev, model.vae.dtype)
        out["source_latents"].append(model.encode_video(src).to(torch.bfloat16).cpu())
        out["target_latents"].append(model.encode_video(tgt).to(torch.bfloat16).cpu())
        if vlm:
            hidden, mask = model.vlm_hidden_states(src, [s["instruction"] for s in good])   # in its prompt style
            out["vlm_hidden"] += [h[m].to(torch.bfloat16).cpu() for h, m in zip(hidden, mask)]
    ok = torch.tensor(out["ok"])
    feats = {"ok": ok}
    index = torch.cumsum(ok.long(), 0) - 1          # item -> row among the loaded items
    for key in ("source_latents", "target_latents"):
        rows = torch.cat(out[key]) if out[key] else torch.zeros(0)
        feats[key] = _by_item(rows, ok, index)
    if vlm:
        length = max((h.shape[0] for h in out["vlm_hidden"]), default=1)
        dim = out["vlm_hidden"][0].shape[-1] if out["vlm_hidden"] else 1
        hidden = torch.zeros(len(out["vlm_hidden"]), length, dim, dtype=torch.bfloat16)
        mask = torch.zeros(len(out["vlm_hidden"]), length, dtype=torch.bool)
        for i, h in enumerate(out["vlm_hidden"]):
            hidden[i, : h.shape[0]], mask[i, : h.shape[0]] = h, True
        feats["vlm_hidden"], feats["vlm_mask"] = _by_item(hidden, ok, index), _by_item(mask, ok, index)
    return feats


def _by_item(rows: torch.Tensor, ok: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of the loaded items -> one row per item (zeros where an item did not load)."""
    full = torch.zeros(len(ok), *rows.shape[1:], dtype=rows.dtype)
    if len(rows):
        full[ok] = rows[index[ok]]
    return full


def feature_cache(model: ReviseModel, data: TripletData, cache_dir: Path, model_ref: str, vlm: bool,
                  write: bool = True, batch_size: int = 128, preload_workers: int | None = None) -> dict[str, torch.Tensor]:
    """The cached features of ``data`` (see :func:`compute_features`), from ``cache_dir`` when its
    fingerprint matches, else computed and (with ``write``) stored there atomically. With
    ``preload_workers``, the clips are decoded in parallel first, and only when the features must be
    computed."""
    path = Path(cache_dir) / "features.safetensors"
    key = fingerprint(data, model_ref, vlm)
    if path.is_file():
        stored = load_file(str(path))
        meta = json.loads((path.with_suffix(".json")).read_text()) if path.with_suffix(".json").is_file() else {}
        if meta.get("fingerprint") == key:
            return stored
    if preload_workers is not None and not data.preloaded:
        data.preload(preload_workers, progress=write)
    feats = compute_features(model, data, vlm, batch_size)
    if write:
        with atomic_path(path, path.suffix) as tmp:
            save_file({k: v.contiguous() for k, v in feats.items()}, str(tmp))
        write_text(path.with_suffix(".json"), json.dumps({"fingerprint": key, "items": len(data)}))
    return feats
