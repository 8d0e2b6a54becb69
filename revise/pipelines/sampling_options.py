"""The one place sampling settings and the device are resolved and checked.

:func:`resolve_sampling` takes each setting from the explicit argument, else the model folder's
recorded defaults (``revise_config.json``), else the preset's, and checks every number before
anything is allocated: a bad value is one :class:`~revise.errors.ReviseInputError`, never a silent
substitute (``--steps 0`` is an error, not 40). :func:`resolve_device` turns ``--device`` and
``--dtype`` into a torch device and dtype the machine has. :func:`check_memory` refuses an edit
whose rough memory need exceeds what the device has free, before the model or clip is loaded.

The command line, the bench harness, the web page and the pipeline itself all call these.
"""

from __future__ import annotations

import dataclasses
import math
import resource
from pathlib import Path
from typing import Any, Sequence

from ..config import SamplingConfig, load_preset
from ..errors import ReviseInputError

SOLVERS = ("unipc", "euler")
DTYPES = ("float32", "bfloat16", "float16")
#: Bounds on what one edit may ask for (memory is checked separately, per machine).
MAX_SIDE = 8192
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1 - 64          # room for best-of's SEED+N-1
#: The longest instruction taken: the VLM reads every token of it (the text encoder only its first
#: ``max_text_len``), so 100,000 characters would need ~100 GB of attention memory.
MAX_INSTRUCTION_CHARS = 2000


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """Checked settings of one edit."""

    num_frames: int
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    shift: float
    solver: str
    seed: int
    fps: int

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``ReviseEditPipeline.__call__`` (the seed apart)."""
        return dict(num_frames=self.num_frames, height=self.height, width=self.width,
                    num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                    shift=self.shift, solver=self.solver)


def sampling_defaults(model: str | Path | SamplingConfig) -> SamplingConfig:
    """A model folder's recorded defaults, a preset's, or ``model`` itself if it already is one."""
    if isinstance(model, SamplingConfig):
        return model
    from ..models.revise_model import sampling_defaults as read_defaults
    return read_defaults(model)


def resolve_sampling(model: str | Path | SamplingConfig, *, frames: int | None = None, height: int | None = None,
                     width: int | None = None, steps: int | None = None, guidance: float | None = None,
                     shift: float | None = None, solver: str | None = None, seed: int | None = 0) -> SamplingOptions:
    """Each setting from its argument when not None, else from the model's defaults; all checked."""
    d = sampling_defaults(model)

    def pick(value, default):
        return default if value is None else value

    options = SamplingOptions(
        num_frames=pick(frames, d.num_frames), height=pick(height, d.height), width=pick(width, d.width),
        num_inference_steps=pick(steps, d.num_inference_steps), guidance_scale=pick(guidance, d.guidance_scale),
        shift=pick(shift, d.shift), solver=pick(solver, "unipc"), seed=pick(seed, 0), fps=d.fps)
    check_sampling(options)
    return options


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ReviseInputError(f"{name} must be a whole number, not {value!r}")
    return value


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ReviseInputError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def check_sampling(o: SamplingOptions) -> None:
    """Raise ``ReviseInputError`` for any setting no edit can run with (or would run with only to
    write garbage: a NaN guidance or a shift of 0 or less gives an all-black clip)."""
    frames = _whole("frames", o.num_frames)
    if frames < 1 or (frames - 1) % 4:
        raise ReviseInputError(f"frames must be 4n+1 (5, 9, 13, 17, ...), not {frames}")
    height, width = _whole("height", o.height), _whole("width", o.width)
    if height <= 0 or width <= 0 or height % 16 or width % 16:
        raise ReviseInputError(f"size must be a positive multiple of 16 on each side, not {width}x{height}")
    if max(height, width) > MAX_SIDE:
        raise ReviseInputError(f"size must be at most {MAX_SIDE} on each side, not {width}x{height}")
    steps = _whole("steps", o.num_inference_steps)
    if not 1 <= steps <= MAX_STEPS:
        raise ReviseInputError(f"steps must be at least 1 and at most {MAX_STEPS}, not {steps}")
    if _real("guidance", o.guidance_scale) < 0:
        raise ReviseInputError(f"guidance must be 0 (off) or more, not {o.guidance_scale}")
    if _real("shift", o.shift) <= 0:
        raise ReviseInputError(f"shift must be more than 0, not {o.shift}")
    if o.solver not in SOLVERS:
        raise ReviseInputError(f"unknown solver {o.solver!r}: choose one of {', '.join(SOLVERS)}")
    seed = _whole("seed", o.seed)
    if not 0 <= seed <= MAX_SEED:
        raise ReviseInputError(f"seed must be from 0 to {MAX_SEED}, not {seed}")


def check_instructions(instructions: Sequence[str]) -> None:
    """Each instruction must be non-empty text that UTF-8 can encode (a command line with an invalid
    UTF-8 byte reaches Python as a lone surrogate, which no tokenizer takes), of at most
    :data:`MAX_INSTRUCTION_CHARS` characters."""
    if not instructions:
        raise ReviseInputError("the instruction is empty")
    for text in instructions:
        if not isinstance(text, str) or not text.strip():
            raise ReviseInputError("the instruction is empty")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ReviseInputError(f"the instruction is not valid UTF-8 text (a stray byte at character "
                                   f"{err.start + 1})") from None
        if "\x00" in text:
            raise ReviseInputError("the instruction contains a NUL character")
        if len(text) > MAX_INSTRUCTION_CHARS:
            raise ReviseInputError(f"the instruction is {len(text):,} characters long; at most "
                                   f"{MAX_INSTRUCTION_CHARS:,} are taken")


# ---- device and dtype -----------------------------------------------------------------------------
def resolve_device(device: Any = None, dtype: Any = None) -> tuple[str, Any]:
    """``(device, torch dtype)``: ``device`` None means cuda when a GPU is visible, else cpu;
    ``dtype`` None means bfloat16 on a GPU and float32 elsewhere. A device this machine lacks or a
    name torch does not know is a ``ReviseInputError``."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ReviseInputError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ReviseInputError(f"device {device!r}: this machine has no usable CUDA GPU (use --device cpu)")
        if dev.index is not None and dev.index >= count:
            raise ReviseInputError(f"device {device!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ReviseInputError(f"device {device!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ReviseInputError(f"device {device!r} is not supported: use cpu, cuda or cuda:N")
    if dtype is None:
        torch_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    elif isinstance(dtype, torch.dtype):
        torch_dtype = dtype
    elif dtype in DTYPES:
        torch_dtype = getattr(torch, dtype)
    else:
        raise ReviseInputError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return str(device), torch_dtype


# ---- memory ---------------------------------------------------------------------------------------
def _architecture(model: str | Path) -> dict[str, Any]:
    """The few shapes the memory estimate needs, from a folder's config files or a preset."""
    import json

    path = Path(model)
    if path.is_dir():
        def read(rel: str) -> dict[str, Any]:
            try:
                return json.loads((path / rel).read_text())
            except (OSError, ValueError):
                return {}
        return {"transformer": read("transformer/config.json"), "vae": read("vae/config.json")}
    return load_preset(model)


#: Components whose weights ``encoder_weights="int8"`` stores in 8 bits (``revise/models/quantize.py``).
INT8_COMPONENTS = ("understanding", "text_encoder")


def component_bytes(model: str | Path, itemsize: int, encoder_weights: str | None = None) -> dict[str, int]:
    """Bytes of each component's weights at ``itemsize`` bytes a parameter (1 for the encoders with
    ``encoder_weights="int8"``; their embeddings stay wider, so this is a lower bound)."""
    from ..models.summary import summarize

    sizes = {name: n for name, _, n in summarize(model)["components"] if not name.startswith(" ")}
    return {name: n * (1 if encoder_weights == "int8" and name in INT8_COMPONENTS else itemsize)
            for name, n in sizes.items()}


def estimate_memory(model: str | Path, options: SamplingOptions, itemsize: int,
                    offload: str | None = None, keep: Sequence[str] = (),
                    encoder_weights: str | None = None) -> dict[str, int]:
    """A rough lower bound, in bytes, of what one edit holds at once: the weights (with
    ``offload="stages"`` the components in ``keep`` plus the largest stage's others), the clips, the
    VAE's full-resolution activations and the DiT's token activations. Ignores the attention's own
    workspace, so a refusal is certain to be right; passing is no promise."""
    from .stages import stage_peak

    sizes = component_bytes(model, itemsize, encoder_weights)
    weights = sum(sizes.values()) if offload is None else stage_peak(sizes, keep)
    arch = _architecture(model)
    dit, vae = arch.get("transformer", {}), arch.get("vae", {})
    f, h, w = options.num_frames, options.height, options.width
    pixels = f * h * w
    latent_frames = (f - 1) // 4 + 1
    tokens = latent_frames * (h // 16) * (w // 16)
    branches = 2 if options.guidance_scale != 0 else 1
    dim = dit.get("num_attention_heads", 12) * dit.get("attention_head_dim", 128)
    latents = vae.get("z_dim", 16) * latent_frames * (h // 8) * (w // 8)
    return {
        "weights": weights,
        "clips": 3 * pixels * 4 * 3,                                        # source, edit (float32), uint8 copies
        "vae": vae.get("base_dim", 96) * 4 * h * w * itemsize * 2,          # 4 frames of the widest full-res stage
        "dit": branches * tokens * (dit.get("ffn_dim", 4 * dim) + 4 * dim) * itemsize,
        "latents": (options.num_inference_steps + 3) * latents * 4,        # the sampler's history (float32)
    }


@dataclasses.dataclass(frozen=True)
class OffloadPlan:
    """How an edit places the model: ``offload`` None (all on the device) or "stages", and the
    components that stay on the device for good (``keep``) within ``budget`` bytes of weights."""

    offload: str | None
    keep: tuple[str, ...] = ()
    budget: int | None = None


def plan_offload(model: str | Path, options: SamplingOptions, device: str, dtype: Any, requested: str | None,
                 copies: int = 1, encoder_weights: str | None = None, free: int | None = None) -> OffloadPlan:
    """The placement of an edit (:func:`~revise.pipelines.stages.choose_offload`): with ``"auto"`` the
    whole model stays on a GPU when it fits in the free memory (``free``, default: measured now), else
    the edit is offloaded stage by stage, keeping on the device what fits beside the activations
    (:func:`~revise.pipelines.stages.plan_residency`); ``"stages"`` keeps nothing there for good."""
    from .stages import OFFLOAD_CHOICES, choose_offload, plan_residency

    if requested is not None and requested not in OFFLOAD_CHOICES:
        raise ReviseInputError(f"unknown offload {requested!r}: choose one of {', '.join(OFFLOAD_CHOICES)}")
    if requested != "auto":
        return OffloadPlan(choose_offload(requested, device, 0, None))
    need = estimate_memory(model, options, dtype.itemsize, encoder_weights=encoder_weights)
    others = sum(need.values()) - need["weights"] + (copies - 1) * need["clips"]
    if free is None:
        free = available_memory(device)
    offload = choose_offload("auto", device, need["weights"] + others, free)
    if offload is None:
        return OffloadPlan(None)
    budget = max(0, free - others)
    sizes = component_bytes(model, dtype.itemsize, encoder_weights)
    return OffloadPlan(offload, plan_residency(sizes, budget), budget)


def available_memory(device: str) -> int | None:
    """Bytes free for the edit on ``device``: on a GPU its free memory, on the CPU the least of
    MemAvailable, the cgroup's limit less its use, and the address-space limit (ulimit -v) less what
    this process already maps. None if unknown."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    if dev.type != "cpu":
        return None
    limits = []
    meminfo = _read_kib("/proc/meminfo", "MemAvailable:")
    if meminfo is not None:
        limits.append(meminfo)
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            limits.append(max(0, limit - usage))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        mapped = _read_kib("/proc/self/status", "VmSize:")
        limits.append(max(0, soft - (mapped or 0)))
    return min(limits) if limits else None


def check_memory(model: str | Path, options: SamplingOptions, device: str, dtype: Any, copies: int = 1,
                 offload: str | None = None, keep: Sequence[str] = (), encoder_weights: str | None = None) -> None:
    """Refuse (``ReviseInputError``) an edit whose :func:`estimate_memory` exceeds the device's free
    memory; ``copies`` candidates are held at once (best-of keeps the best so far)."""
    need = estimate_memory(model, options, dtype.itemsize, offload, keep, encoder_weights)
    total = sum(need.values()) + (copies - 1) * need["clips"]
    free = available_memory(device)
    if free is not None and total > free:
        worst = max(need, key=need.get)
        raise ReviseInputError(
            f"{options.num_frames} frames of {options.width}x{options.height} need about {_gib(total)} on {device} "
            f"(mostly {worst}: {_gib(need[worst])}), which has {_gib(free)} free: use a smaller --size or "
            f"--frames, {'--offload stages, ' if offload is None else ''}or a smaller model")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_kib(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None



# ---- the call contract ----------------------------------------------------------------------------
#: ``output_type`` of ``ReviseEditPipeline.__call__``: the model's own tensor, diffusers' numpy and
#: PIL video forms, or the denoised latents undecoded.
OUTPUT_TYPES = ("pt", "np", "pil", "latent")


def check_call_options(output_type: Any, callback_on_step_end: Any, tensor_inputs: Any,
                       allowed_tensor_inputs: Sequence[str]) -> list[str]:
    """Check the diffusers-style arguments of an edit before any work; the tensor names the step-end
    callback is given (a diffusers ``PipelineCallback`` brings its own ``tensor_inputs``)."""
    if output_type not in OUTPUT_TYPES:
        raise ReviseInputError(f"unknown output_type {output_type!r}: choose one of {', '.join(OUTPUT_TYPES)}")
    if callback_on_step_end is None:
        return []
    if not callable(callback_on_step_end):
        raise ReviseInputError(f"callback_on_step_end must be callable, not {type(callback_on_step_end).__name__}")
    own = getattr(callback_on_step_end, "tensor_inputs", None)
    names = own if own is not None and tensor_inputs is None else tensor_inputs
    names = ["latents"] if names is None else names
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ReviseInputError(f"callback_on_step_end_tensor_inputs must be a list of names, not {names!r}")
    bad = [n for n in names if n not in allowed_tensor_inputs]
    if bad:
        raise ReviseInputError(f"callback_on_step_end_tensor_inputs {', '.join(map(repr, bad))} not offered: "
                               f"choose from {', '.join(allowed_tensor_inputs)}")
    return list(names)
