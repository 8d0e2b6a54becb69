"""The stages of an edit and the components each runs, for stage-by-stage placement
(``ReviseEditPipeline.enable_model_cpu_offload``, ``offload="stages"`` or ``"auto"``), which puts one
stage's components on the device at a time, and for the memory estimate of such an edit.

The encoders are separate stages (the VAE encoder, the VLM, T5, then the small context modules), so
that the device never holds both big encoders: at the released shapes the largest stage is the VLM
(8.5 B parameters, 15.8 GiB in bf16) where the encoders together would be 30.5 GiB.

:func:`plan_residency` picks which components may stay on the device for good (moving nothing) within
a memory budget, :func:`choose_offload` whether an edit is offloaded at all, and :class:`Placement`
moves the rest: each component's weights are kept in (pinned) host memory, a stage copies them to
the device and, when done, points the parameters back at the host copies, so nothing is copied back.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Mapping

import torch

#: The components (``ReviseModel`` attributes) each stage of an edit runs.
STAGES = {
    "vae_encode": ("vae",),
    "vlm": ("understanding",),
    "text": ("text_encoder",),
    "context": ("vision_head", "adapter", "visual_context_adapter", "context_tokens"),
    "denoise": ("transformer",),
    "decode": ("vae",),
    "critic": ("understanding",),      # best-of's critic
}
COMPONENTS = tuple(dict.fromkeys(part for parts in STAGES.values() for part in parts))
OFFLOAD_MODES = ("stages",)
#: What ``offload`` may be asked for: "auto" offloads only when the whole model does not fit.
OFFLOAD_CHOICES = ("auto", "none", "stages")


def choose_offload(requested: str | None, device: str | torch.device, resident_need: int,
                   free: int | None) -> str | None:
    """The offload an edit runs with: ``"stages"`` or None (everything resident on the device).

    An explicit ``"stages"`` or ``"none"`` (None) is taken as it is. ``"auto"`` offloads only on a GPU
    whose ``free`` bytes are fewer than the whole model's ``resident_need``
    (``sampling_options.estimate_memory``); on a CPU, or when the free memory is unknown, nothing moves."""
    if requested is None or requested == "none":
        return None
    if requested == "stages":
        return "stages"
    if requested != "auto":
        raise ValueError(f"unknown offload {requested!r}: choose one of {', '.join(OFFLOAD_CHOICES)}")
    if torch.device(device).type != "cuda" or free is None:
        return None
    return "stages" if resident_need > free else None


def stage_peak(sizes: Mapping[str, int], keep: Iterable[str]) -> int:
    """Bytes of weights on the device at once: the kept components plus the largest stage's others."""
    keep = set(keep)
    moved = max((sum(sizes.get(p, 0) for p in parts if p not in keep) for parts in STAGES.values()), default=0)
    return sum(sizes.get(p, 0) for p in keep) + moved


def plan_residency(sizes: Mapping[str, int], budget: int | None) -> tuple[str, ...]:
    """The components to keep on the device for good, so that the fewest bytes move per edit while
    the weights on the device at once (:func:`stage_peak`) stay within ``budget`` bytes; None (no
    budget) keeps nothing. Ties keep the DiT first (it runs at every step). Every subset is tried
    (there are 8 components)."""
    if budget is None:
        return ()
    names = [c for c in COMPONENTS if c in sizes]
    best: tuple[int, int, tuple[str, ...]] | None = None
    for n in range(len(names) + 1):
        for keep in itertools.combinations(names, n):
            if stage_peak(sizes, keep) > budget:
                continue
            score = (sum(sizes[c] for c in keep), "transformer" in keep, keep)
            if best is None or score[:2] > best[:2]:
                best = score
    return best[2] if best is not None else ()


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor holds, its inner tensors for a tensor subclass (torchao's int8 weights)."""
    if type(t) in (torch.Tensor, torch.nn.Parameter) or not hasattr(t, "__tensor_flatten__"):
        return t.numel() * t.element_size()
    names, _ = t.__tensor_flatten__()
    return sum(tensor_bytes(getattr(t, name)) for name in names)


def module_bytes(module: torch.nn.Module) -> int:
    seen, total = set(), 0
    for t in itertools.chain(module.parameters(), module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total


def _plain(t: torch.Tensor) -> bool:
    return type(t) in (torch.Tensor, torch.nn.Parameter)


class Placement:
    """Moves components between their host copies and the execution ``device``.

    Plain parameters and buffers keep one host copy (pinned when ``device`` is a GPU, so the copies
    run at full PCIe speed and without blocking the host): :meth:`onload` copies them to the device,
    :meth:`offload` points them back at the host copy, which is still valid since an edit does not
    change weights, so no bytes flow back. A component holding tensor subclasses (torchao's int8
    weights) moves with ``Module.to`` both ways instead."""

    def __init__(self, modules: Mapping[str, torch.nn.Module], device: torch.device, pin: bool | None = None):
        self.modules, self.device = dict(modules), torch.device(device)
        self.pin = self.device.type == "cuda" if pin is None else pin
        self.on_device: set[str] = set()
        self._host: dict[str, list[tuple[torch.Tensor, torch.Tensor]] | None] = {}
        for name in self.modules:
            self._register(name)

    def _register(self, name: str) -> None:
        """Take host copies of component ``name``'s tensors (it is then in host memory)."""
        module = self.modules[name]
        tensors = list({id(t): t for t in itertools.chain(module.parameters(), module.buffers())}.values())
        if not all(_plain(t) for t in tensors):
            self._host[name] = None            # moved with Module.to
            module.to("cpu")
            return
        pairs = []
        for t in tensors:
            host = t.data
            if host.device.type != "cpu" or (self.pin and not host.is_pinned()):
                host = torch.empty(host.shape, dtype=host.dtype, device="cpu", pin_memory=self.pin).copy_(host)
            t.data = host
            pairs.append((t, host))
        self._host[name] = pairs

    def refresh(self, name: str) -> None:
        """Component ``name``'s modules changed (quantized, adapters merged): take new host copies,
        and put it back on the device if it was there."""
        was = name in self.on_device
        self.on_device.discard(name)
        self._register(name)
        release = getattr(torch._C, "_host_emptyCache", None)     # CUDA builds: the old copies' pinned pages
        if self.pin and release is not None:
            release()
        if was:
            self.onload([name])

    def onload(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.on_device:
                continue
            pairs = self._host[name]
            if pairs is None:
                self.modules[name].to(self.device)
            else:
                for t, host in pairs:
                    t.data = host.to(self.device, non_blocking=self.pin)
            self.on_device.add(name)

    def offload(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.on_device:
                continue
            pairs = self._host[name]
            if pairs is None:
                self.modules[name].to("cpu")
            else:
                for t, host in pairs:
                    t.data = host
            self.on_device.discard(name)
