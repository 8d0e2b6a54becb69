"""``ReviseEditPipeline``: one reason-informed edit, from a source clip and an instruction.

Knows the model and the sampler, nothing of training or the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from tqdm.auto import tqdm

from ..errors import ReviseInputError
from ..models.compiled_blocks import compile_blocks
from ..models.context_kv import cached_context_kv, release_kept_context
from ..models.fused_ffn import fuse_ffn_gelu
from ..models.lora import has_lora
from ..models.prompt_style import RELEASE_SKIP_FRAMES
from ..models.revise_model import ReviseModel
from ..models.attention_inputs import use_prepared_attention_inputs
from ..config import SamplingConfig
from .sampling_options import INT8_COMPONENTS, SOLVERS, check_call_options, check_instructions, resolve_sampling
from .stages import COMPONENTS, OFFLOAD_CHOICES, OFFLOAD_MODES, STAGES, Placement, module_bytes
from .cuda_graph import GraphedCall
from .step_plan import StepPlan

SIGMA_SCHEDULES = ("diffusers", "wan")


def make_scheduler(solver: str, shift: float, num_train_timesteps: int = 1000):
    """The flow-matching sampler: UniPC (the released default) or plain Euler, with time shift ``shift``."""
    if solver == "unipc":
        return UniPCMultistepScheduler(num_train_timesteps=num_train_timesteps, prediction_type="flow_prediction",
                                       use_flow_sigmas=True, flow_shift=shift)
    if solver == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift)
    raise ReviseInputError(f"unknown solver '{solver}': choose one of {', '.join(SOLVERS)}")


def set_timesteps(scheduler, steps: int, device: torch.device | str | None = None,
                  sigma_schedule: str = "diffusers") -> None:
    """``scheduler.set_timesteps`` with the flow sigmas of ``sigma_schedule``, before the shift.

    - ``"diffusers"``: diffusers' own, ``linspace(1, 1/N, steps + 1)[:-1]`` (N training timesteps).
    - ``"wan"``: Wan2.1's flow solvers (``FlowUniPCMultistepScheduler``), which the ReViSE release
      samples with: ``linspace(sigma_max, 0, steps + 1)[:-1]``, where sigma_max = 1 - 1/N is the
      first of its float32 training sigmas. The timesteps the DiT sees are the same integers
      (999, 833 for 2 steps at shift 5), but every step's sigma differs (0.99980 vs 0.99999 at the
      first step), so the solver's update differs too.
    """
    if sigma_schedule == "diffusers":
        scheduler.set_timesteps(steps, device=device)
    elif sigma_schedule == "wan":
        n = scheduler.config.num_train_timesteps
        sigma_max = float(np.float32(1.0 - 1.0 / n))
        scheduler.set_timesteps(sigmas=np.linspace(sigma_max, 0.0, steps + 1)[:-1], device=device)
    else:
        raise ReviseInputError(f"unknown sigma schedule '{sigma_schedule}': one of {', '.join(SIGMA_SCHEDULES)}")


def check_edit_args(num_frames: int, height: int, width: int, num_inference_steps: int,
                    instructions: Sequence[str]) -> None:
    """Raise ``ReviseInputError`` for arguments no edit can run with (the rest of the settings at the
    released defaults; :func:`~revise.pipelines.sampling_options.resolve_sampling` checks them all)."""
    resolve_sampling(SamplingConfig(), frames=num_frames, height=height, width=width, steps=num_inference_steps)
    check_instructions(instructions)


def read_source(path: str | Path, num_frames: int, height: int, width: int,
                prompt_style: str) -> tuple[torch.Tensor, np.ndarray | None]:
    """A source file as a model of ``prompt_style`` reads it: the clip [3, F, H, W] in [-1, 1], and
    for the ``release`` style also the frames its VLM sees (uint8 [1, h, w, 3] at the file's size).

    - ``revise``: ``num_frames`` frames spread evenly over the whole file; no VLM frames (the VLM
      samples the clip itself).
    - ``release``: as the released script reads it: the first frame skipped, then ``num_frames``
      consecutive frames (``--skip_num 1 --sampling_rate 1``; a shorter file is refused); the VLM
      sees the file's frame 0, of which the released code passes the tokens to the LM.
    """
    from ..video import read_frames, read_video

    if prompt_style != "release":
        return read_video(path, num_frames, height, width), None
    clip = read_video(path, num_frames, height, width, skip=RELEASE_SKIP_FRAMES)
    return clip, read_frames(path, [0])


QUANTIZE = ("fp8",)              # the DiT's linears (``quantize``)
ENCODER_WEIGHTS = ("int8",)      # the VLM's and T5's linears (``encoder_weights``)


def check_quantize_options(quantize: str | None, encoder_weights: str | None) -> None:
    if quantize is not None and quantize not in QUANTIZE:
        raise ReviseInputError(f"unknown quantize {quantize!r}: choose {', '.join(QUANTIZE)} (or none for the model's dtype)")
    if encoder_weights is not None and encoder_weights not in ENCODER_WEIGHTS:
        raise ReviseInputError(f"unknown encoder weights {encoder_weights!r}: choose {', '.join(ENCODER_WEIGHTS)} "
                               "(or none for the model's dtype)")


def _instruction_list(instruction: str | Sequence[str]) -> list[str]:
    instructions = [instruction] if isinstance(instruction, str) else list(instruction)
    check_instructions(instructions)
    return instructions


@dataclasses.dataclass
class ReviseEditOutput:
    video: Any                   # output_type "pt": [B, 3, F, H, W] in [-1, 1]; "np", "pil", "latent": see __call__
    source: torch.Tensor | None  # the source clip as the model saw it [B, 3, F, H, W]; None from precomputed contexts
    timings: dict[str, float]    # seconds per stage
    vlm_frames: np.ndarray | None = None   # release prompt style: the uint8 frames the VLM saw, [B, h, w, 3]


class ReviseEditPipeline:
    """``pipe(video=..., instruction=...)`` -> edited clip.

    Guidance follows the release: ``pred = cond + guidance_scale * (cond - uncond)``, i.e. the
    usual classifier-free guidance with scale ``guidance_scale + 1``; 0 turns it off.
    The conditional and unconditional branches run as one batched DiT call per step; the
    mixed contexts are computed once per call.
    """

    def __init__(self, model: ReviseModel):
        self.model = model
        self._fast_path = False
        self.lora_adapters: dict[str, dict] = {}     # the loaded LoRA adapters by name: {"path", "scale"}
        self._execution_device: torch.device | None = None   # set by enable_model_cpu_offload
        self._placement: Placement | None = None
        self.offload_keep: tuple[str, ...] = ()      # with offload: the components that stay on the device
        self.quantized: dict[str, str] = {}          # {"transformer": "fp8", "encoders": "int8"} once applied
        self.cuda_graph: bool | None = None   # the loop's DiT call from a CUDA graph; None: with FP8 (enable_fast_path)
        self._graph: tuple[tuple, GraphedCall] | None = None     # (what it was captured for, the graph)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, seed: int = 0, offload: Any = "auto",
                        quantize: str | None = None, encoder_weights: str | None = None) -> "ReviseEditPipeline":
        """The pipeline of a model folder or preset on ``device``.

        - ``offload``: "auto" (default) keeps the whole model on the device when it fits in the free
          memory at the model's own sampling settings, else runs stage by stage keeping what fits
          (:func:`~revise.pipelines.sampling_options.plan_offload`); "stages" loads the weights into
          host memory and runs each stage on ``device`` (:meth:`enable_model_cpu_offload`); None or
          "none" keeps everything on the device; or a ``sampling_options.OffloadPlan``.
        - ``quantize="fp8"``: the DiT's block linears in FP8 (:meth:`enable_fp8`).
        - ``encoder_weights="int8"``: the VLM's and T5's linears with 8-bit weights (:meth:`quantize_encoders`).
        """
        from .sampling_options import OffloadPlan, plan_offload, resolve_device, resolve_sampling

        check_quantize_options(quantize, encoder_weights)
        dev, torch_dtype = resolve_device(device, dtype)
        if isinstance(offload, OffloadPlan):        # planned already (the command line, for its memory check)
            plan = offload
        else:
            if offload is not None and offload not in OFFLOAD_CHOICES:
                raise ReviseInputError(f"unknown offload {offload!r}: choose {', '.join(OFFLOAD_MODES)}, auto or none")
            plan = plan_offload(name_or_path, resolve_sampling(name_or_path), dev, torch_dtype, offload,
                                encoder_weights=encoder_weights)
        staged = plan.offload is not None
        direct = not staged and encoder_weights is None
        pipe = cls(ReviseModel.load(name_or_path, device=device if direct else "cpu", dtype=dtype, seed=seed))
        if encoder_weights is not None:
            pipe.quantize_encoders(encoder_weights)
        if staged:
            pipe.enable_model_cpu_offload(dev, keep=plan.keep)
        elif not direct:
            pipe.model.to(dev)
        if quantize is not None:
            pipe.enable_fp8()
        return pipe

    @property
    def device(self) -> torch.device:
        """Where the edit runs (with offload, where each stage's components go for that stage)."""
        return self._execution_device if self._execution_device is not None else self.model.device

    def enable_model_cpu_offload(self, device: str | torch.device | None = None, keep: Sequence[str] | None = None,
                                 memory_budget: int | None = None) -> "ReviseEditPipeline":
        """Stage-by-stage placement: every component waits in host memory, and each stage of an edit
        moves only its own to ``device`` (default: cuda when there is a GPU) and lets go of them when
        done: the VAE encoder, the VLM, T5 and the context modules in turn, then the DiT for the
        denoising loop, then the VAE to decode (and the VLM for best-of's critic). The weights stay
        in pinned host memory, so nothing is copied back (``revise/pipelines/stages.py``).

        ``keep``: components that stay on the device for good (no copy per edit), e.g.
        ``("transformer", "vae")``; default: those :func:`~revise.pipelines.stages.plan_residency`
        picks for ``memory_budget`` bytes of weights at once, or none without a budget.
        The edit is the same."""
        from .stages import plan_residency

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        modules = {name: getattr(self.model, name) for name in COMPONENTS}
        if keep is None:
            keep = plan_residency({n: module_bytes(m) for n, m in modules.items()}, memory_budget)
        unknown = sorted(set(keep) - set(COMPONENTS))
        if unknown:
            raise ReviseInputError(f"unknown components to keep: {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
        if self._placement is not None:
            self._placement.offload(list(self._placement.on_device))
        self._placement = Placement(modules, device)
        self._execution_device = device
        self.offload_keep = tuple(keep)
        self._placement.onload(self.offload_keep)
        return self

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """With offload, ``STAGES[name]``'s components on the execution device for the block (those
        kept there stay), then back in host memory; without, nothing moves."""
        if self._placement is None:
            yield
            return
        parts = [p for p in STAGES[name] if p not in self.offload_keep]
        self._placement.onload(parts)
        try:
            yield
        finally:
            self._placement.offload(parts)

    def load_lora_weights(self, path: str | Path, adapter_name: str | None = None,
                          scale: float = 1.0) -> "ReviseEditPipeline":
        """Add a LoRA adapter to the DiT from ``path``: a diffusers-format file (what ``revise train``
        writes to ``out/lora/``, keys ``transformer.…``) or a folder holding
        ``pytorch_lora_weights.safetensors``. Adapters loaded before stay active; each adds its update
        times its ``scale`` (0 gives the model without it). Load adapters before ``enable_fast_path``."""
        from ..models.lora import load_lora, lora_file

        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ReviseInputError(f"LoRA scale must be a finite number, not {scale!r}")
        if self._fast_path:
            raise ReviseInputError("load LoRA weights before enable_fast_path (its fused projections "
                                   "would leave the adapter out)")
        self.release_graph()
        dit = self.model.transformer
        name = adapter_name if adapter_name is not None else f"default_{len(self.lora_adapters)}"
        load_lora(dit, path, name)
        self.lora_adapters[name] = {"path": str(lora_file(path)), "scale": float(scale)}
        dit.set_adapters(list(self.lora_adapters), weights=[a["scale"] for a in self.lora_adapters.values()])
        if self._placement is not None:          # the adapter's weights move with the DiT
            self._placement.refresh("transformer")
        return self

    def enable_fp8(self, allow_cpu: bool = False, attention: bool | str = False,
                   fast_accum: bool = False, gelu_epilogue: bool | str = "auto") -> "ReviseEditPipeline":
        """The DiT's block linears in FP8 (e4m3 weights and per-token activations, row-wise scales,
        ``torch._scaled_mm``: ``revise/models/fp8.py``) for GPUs with FP8 tensor cores (compute
        capability 8.9+), each feed-forward's GELU and the row quantization of its output done in one pass
        (``revise/models/fp8_ffn.py``); any other device is refused with one ``ReviseInputError`` line (the CPU
        runs it in emulation with ``allow_cpu``, for tests). LoRA adapters are merged in first. Call it
        after :meth:`enable_fast_path` when both are wanted (its fused projections become FP8 too, and
        the feed-forward's GELU is then applied after the FP8 matmul).

        ``attention``: attention in FP8 too (cuDNN's fused FP8 attention on Hopper and newer, through
        ``nvidia-cudnn-frontend``: ``revise/models/fp8_attention.py``), with q, k, v, the softmax
        probabilities and the output in e4m3, the output projected in FP8. It needs the fast path
        (after :meth:`enable_fast_path`). Off by default: its output is 8-12% off float32 attention
        (bf16's 0.5-0.8%), though in the loop on an H100 it took attention from 20.0 to 14.7 ms a step
        and changed the final latents' error against bf16 only from 2.2e-2 to 2.8e-2
        (`docs/performance.md`). ``"auto"`` uses it where all that holds, True
        requires it (else one ``ReviseInputError`` line), False leaves attention in bf16. A later
        call with ``attention=True`` adds it to FP8 linears already in place.

        ``fast_accum``: the FP8 matmuls with Hopper's fast accumulation (``torch._scaled_mm``'s
        ``use_fast_accum``), faster and slightly less exact; a later call can switch it.

        ``gelu_epilogue``: each feed-forward's up-projection, bias, GELU and e4m3 output in one
        cuBLASLt matmul (``fp8_ffn.use_gelu_epilogues``, through ``nvmath-python``), its input and
        weight at one scale each, instead of the one-pass GELU kernel: in the H100 loop it took
        1.754 s to 1.693-1.713 s at the same final-latent error (`docs/performance.md`, run 9). ``"auto"``
        uses it on CUDA where nvmath-python imports, True requires that (else one ``ReviseInputError``
        line; with ``allow_cpu`` the CPU runs its reference), False keeps the kernel. Once on, the
        up-projections' weights stay at one scale.

        With :meth:`enable_fast_path` and no offload, the loop's DiT call is then replayed from a CUDA
        graph unless ``cuda_graph=False`` was asked for there."""
        from ..models.attention_inputs import fp8_attention_applies, use_fp8_attention
        from ..models.fp8 import check_fp8_device, fp8_linears
        from ..models.fp8_ffn import fp8_feed_forwards, use_gelu_epilogues
        from ..models.fp8_gelu_matmul import nvmath_available
        from ..models.fp8_attention import fp8_attention_supported

        check_fp8_device(self.device, allow_cpu)
        if gelu_epilogue not in (True, False, "auto"):
            raise ReviseInputError(f"gelu_epilogue must be True, False or 'auto', not {gelu_epilogue!r}")
        self.release_graph()
        dit = self.model.transformer
        if has_lora(dit):
            dit.fuse_lora()
            dit.unload_lora()
        self._fast_path = True          # no LoRA loads after this: the FP8 weights would leave them out
        fp8_linears(dit, self.device, allow_cpu=True, fast_accum=fast_accum)
        fp8_feed_forwards(dit)          # GELU + the second matmul's row quantization in one pass
        epilogue_ok = self.device.type == "cuda" and nvmath_available()
        if gelu_epilogue is True and not (epilogue_ok or (allow_cpu and self.device.type == "cpu")):
            raise ReviseInputError("enable_fp8(gelu_epilogue=True) needs a CUDA GPU and nvmath-python "
                                   "(pip install 'revise[fp8]')")
        if gelu_epilogue is True or (gelu_epilogue == "auto" and epilogue_ok):
            use_gelu_epilogues(dit)     # up-projection + GELU + e4m3 in one cuBLASLt matmul
        if attention:
            kernel_ok, why = fp8_attention_supported(self.device)
            if allow_cpu and self.device.type == "cpu":
                kernel_ok, why = True, ""               # the reference attention, for tests
            applies, why_not = fp8_attention_applies(dit)
            if attention == "auto":
                attention = kernel_ok and applies
            elif not (kernel_ok and applies):
                raise ReviseInputError(why or why_not)
        if attention:
            use_fp8_attention(dit)
            self.quantized["attention"] = "fp8"
        if self._placement is not None:         # the new modules' tensors get host copies like the rest
            self._placement.refresh("transformer")
        self.quantized["transformer"] = "fp8"
        return self

    def quantize_encoders(self, weights: str = "int8") -> "ReviseEditPipeline":
        """The VLM's and T5's linears with 8-bit weights and a scale per output row
        (``revise/models/int8.py``): half their memory, and half the bytes stage offload moves."""
        from ..models.int8 import int8_weights

        check_quantize_options(None, weights)
        for name in INT8_COMPONENTS:
            if self._placement is None:
                int8_weights(getattr(self.model, name))
                continue
            self._placement.onload([name])          # quantized where the arithmetic is fast
            int8_weights(getattr(self.model, name))
            self._placement.refresh(name)
            if name not in self.offload_keep:
                self._placement.offload([name])
        self.quantized["encoders"] = weights
        return self

    def enable_fast_path(self, compile: bool = True, attention: str | None = "auto",
                         fuse_projections: bool = True, fuse_gelu: bool = True, fuse_qk_norm_rope: bool = True,
                         compile_mode: str | None = None, cuda_graph: bool | None = None) -> "ReviseEditPipeline":
        """Make the denoising loop faster; the edits stay the same up to bf16 rounding.

        - ``fuse_projections``: one matmul for self-attention's Q, K, V and one for cross-attention's
          K, V (diffusers' ``fuse_projections``; the transformer then holds both forms: do not train or
          save it afterwards).
        - ``fuse_gelu``: on a GPU, each feed-forward's first matmul applies its bias and tanh-GELU in
          cuBLASLt's epilogue (``revise/models/fused_ffn.py``); the state dict is unchanged.
        - ``fuse_qk_norm_rope``: attention's q and k are RMS-normed, RoPE'd and laid out heads-major in
          one pass (a Triton kernel on the GPU, ``revise/models/norm_rope.py``) and v is handed to
          attention as a strided view (``revise/models/attention_inputs.py``): no layout copies.
        - ``attention``: a diffusers attention backend (``_native_cudnn``, ``_native_flash``, ...);
          "auto" takes cuDNN's fused attention on Hopper and newer GPUs for a bf16 or fp16 model, else
          PyTorch's default SDPA. Only this DiT's attention changes: diffusers' ``set_attention_backend``
          also makes it the default of every other model in the process, which is undone here.
        - LoRA adapters loaded before are merged into the DiT's weights at their scales.
        - ``compile``: ``torch.compile`` of the repeated DiT block (``compile_repeated_blocks``): one
          graph for all blocks, compiled on the first edit (10-20 s at the released shapes), with the
          LayerNorm rows reduced in one read (``revise/models/compiled_blocks.py``);
          ``compile_mode`` is ``torch.compile``'s ``mode`` (e.g. "max-autotune-no-cudagraphs", which
          also tries Triton matmuls with the elementwise work fused in, and compiles for minutes).
        - ``cuda_graph``: on a GPU without offload, the denoising loop's DiT call (both guidance
          branches) is captured as one CUDA graph at the second step of the first edit of a shape and
          replayed at every step after, in later edits of that shape too (``revise/pipelines/cuda_graph.py``),
          so the GPU never waits for Python to launch kernels. It holds one DiT call's activations and
          the context's K/V of every block (``cached_context_kv(keep=True)``) between edits; changing
          the DiT through the pipeline (``enable_fp8``, ``load_lora_weights``, ...) drops it, and so
          does an edit of another shape or guidance. None (the default): on once the DiT's linears are
          FP8 (:meth:`enable_fp8`), whose kernels are short enough for the host to fall behind (on an
          H100 the FP8 loop took 1.806 s with it, 2.015-2.227 s without), off in bf16 (2.494 against
          2.517 s): `docs/performance.md`, run 6.
        """
        self.release_graph()
        dit = self.model.transformer
        if has_lora(dit):                       # the fused projections need plain layers: adapters merged in
            dit.fuse_lora()
            dit.unload_lora()
        self._fast_path = True
        if fuse_projections:
            for block in dit.blocks:
                block.attn1.fuse_projections()
                block.attn2.fuse_projections()
        if fuse_gelu:
            fuse_ffn_gelu(dit)
        if fuse_qk_norm_rope:
            use_prepared_attention_inputs(dit)
        if attention == "auto":             # cuDNN's fused attention takes bf16 and fp16 only
            hopper = self.device.type == "cuda" and torch.cuda.get_device_capability(self.device)[0] >= 9
            attention = "_native_cudnn" if hopper and dit.dtype in (torch.bfloat16, torch.float16) else None
        if attention is not None:
            set_attention_backend(dit, attention)
        if compile:
            compile_blocks(dit, mode=compile_mode)
        self.cuda_graph = cuda_graph
        if self._placement is not None:          # fused projections are new weights: they move with the DiT
            self._placement.refresh("transformer")
        return self

    def prepare_inputs(self, video: torch.Tensor | str | Path, num_frames: int, height: int, width: int,
                       vlm_frames: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray | None]:
        """The source clip [B, 3, F, H, W] and the frames the VLM sees in the ``release`` prompt style:
        ``vlm_frames`` if given, else for a path its frame 0 (``read_source``), else None (the model
        then takes each clip's first frame)."""
        if isinstance(video, (str, Path)):
            video, frames = read_source(video, num_frames, height, width, self.model.prompt_style)
            vlm_frames = frames if vlm_frames is None else vlm_frames
        return self.prepare_video(video, num_frames, height, width), vlm_frames

    def prepare_video(self, video: torch.Tensor | str | Path, num_frames: int, height: int, width: int) -> torch.Tensor:
        """A path is read (``read_source``); a tensor [3, F, H, W] or [B, 3, F, H, W] in [-1, 1] must already fit."""
        if isinstance(video, (str, Path)):
            video = read_source(video, num_frames, height, width, self.model.prompt_style)[0]
        if video.dim() == 4:
            video = video.unsqueeze(0)
        if video.dim() != 5 or video.shape[1] != 3:
            raise ReviseInputError(f"video tensor must be [B, 3, F, H, W], got {list(video.shape)}")
        if tuple(video.shape[2:]) != (num_frames, height, width):
            raise ReviseInputError(f"video is {tuple(video.shape[2:])} (frames, height, width), "
                                   f"expected {(num_frames, height, width)}")
        return video.to(self.device, torch.float32)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """The latent shape of one clip: the Wan VAE's stride is 4 in time (4n+1 -> n+1), 8 in space."""
        return (self.model.vae.config.z_dim, (num_frames - 1) // 4 + 1, height // 8, width // 8)

    #: the tensors a ``callback_on_step_end`` may read and replace (diffusers' ``_callback_tensor_inputs``)
    _callback_tensor_inputs = ["latents"]

    @torch.no_grad()
    def encode_context(self, video: torch.Tensor | str | Path, instruction: str | Sequence[str], *,
                       num_frames: int | None = None, height: int | None = None, width: int | None = None,
                       vlm_frames: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditional and unconditional mixed contexts of an edit, each [B, max_context_len, text_dim]:
        what ``__call__`` computes before its denoising loop (VAE encode of the source, VLM, T5).

        ``pipe(context=cond, negative_context=uncond, num_frames=..., height=..., width=...)`` then edits
        without the encoders, e.g. with other seeds or settings; give it the size the contexts were
        encoded at (the source tokens depend on it)."""
        o = resolve_sampling(self.model.sampling_config, frames=num_frames, height=height, width=width)
        instructions = _instruction_list(instruction)
        source, vlm_frames = self.prepare_inputs(video, o.num_frames, o.height, o.width, vlm_frames)
        return self._encode(source, instructions, vlm_frames, {})

    def _encode(self, source: torch.Tensor, instructions: list[str], vlm_frames: np.ndarray | None,
                timings: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Both mixed contexts of clips ``source`` [B, 3, F, H, W]; seconds per stage into ``timings``."""
        if source.shape[0] != len(instructions):
            raise ReviseInputError(f"{source.shape[0]} clips but {len(instructions)} instructions")
        model = self.model
        clock = _Clock(self.device)             # with offload, each lap includes its stage's move to the device
        with self.stage("vae_encode"):
            source_latents = model.encode_video(source)
        timings["vae_encode"] = clock.lap()
        release = model.prompt_style == "release" and vlm_frames is not None
        vlm_images = model.understanding.preprocess_images(vlm_frames) if release else None
        with self.stage("vlm"):
            hidden, mask = model.vlm_hidden_states(source, instructions, vlm_images)
        timings["vlm"] = clock.lap()
        with self.stage("text"):
            text = model.encode_text(instructions)
        timings["text"] = clock.lap()
        with self.stage("context"):                 # the vision head and adapter turn the VLM's states into tokens
            vlm = model.vlm_from_hidden(hidden, mask)
            cond, uncond = model.assemble_contexts(source_latents, vlm, text)
        timings["context"] = clock.lap()
        return cond, uncond

    @torch.no_grad()
    def __call__(self, video: torch.Tensor | str | Path | None = None,
                 instruction: str | Sequence[str] | None = None, *,
                 num_frames: int | None = None, height: int | None = None, width: int | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 shift: float | None = None, seed: int | None = 0, solver: str = "unipc",
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None,
                 context: torch.Tensor | None = None, negative_context: torch.Tensor | None = None,
                 output_type: str = "pt", return_dict: bool = True,
                 callback_on_step_end: Callable[..., dict] | None = None,
                 callback_on_step_end_tensor_inputs: list[str] | None = None,
                 progress: bool = True, callback: Callable[[int, int], None] | None = None,
                 vlm_frames: np.ndarray | None = None) -> ReviseEditOutput | tuple:
        """Edit ``video`` by ``instruction``, or denoise with precomputed ``context`` and
        ``negative_context`` (:meth:`encode_context`) instead of both. Every setting is checked before
        any work.

        - Noise: drawn from ``generator`` (one, or a list of one per clip), else one seeded by
          ``seed``; or given as ``latents`` [B, *self.latent_shape(...)].
        - ``output_type``: "pt" the model's own tensor [B, 3, F, H, W] in [-1, 1]; "np" diffusers'
          float array [B, F, H, W, 3] in [0, 1]; "pil" a list per clip of PIL frames; "latent" the
          denoised latents [B, z, f, h, w], not decoded.
        - ``return_dict=False`` gives the tuple ``(video,)``.
        - ``callback_on_step_end(pipe, step_index, timestep, callback_kwargs) -> dict`` runs after
          each step with the tensors named in ``callback_on_step_end_tensor_inputs`` (default and only
          offer: "latents"); the latents of the dict it returns replace the loop's. With it the loop
          steps the scheduler itself (not the precomputed step plan), so a change takes effect.
        - ``callback(i, steps)`` is told after each step (i from 1); ``progress`` shows a bar.
        - ``vlm_frames`` (uint8 [B, h, w, 3], any size) are what the VLM sees in the ``release``
          prompt style (the file's frame 0 for a path, each clip's first frame for a tensor when not
          given).
        """
        o = resolve_sampling(self.model.sampling_config, frames=num_frames, height=height, width=width,
                             steps=num_inference_steps, guidance=guidance_scale, shift=shift, solver=solver,
                             seed=0 if seed is None else seed)
        num_frames, height, width = o.num_frames, o.height, o.width
        steps, guidance, shift = o.num_inference_steps, o.guidance_scale, o.shift
        tensor_inputs = check_call_options(output_type, callback_on_step_end, callback_on_step_end_tensor_inputs,
                                           self._callback_tensor_inputs)
        use_cfg = guidance != 0
        timings: dict[str, float] = {}
        if context is not None or negative_context is not None:
            if video is not None or instruction is not None:
                raise ReviseInputError("give either video and instruction, or context (and negative_context) "
                                       "from pipe.encode_context, not both")
            cond, uncond = self._check_contexts(context, negative_context, use_cfg)
            source, batch = None, cond.shape[0]
        else:
            if video is None or instruction is None:
                raise ReviseInputError("an edit needs video and instruction (or context from pipe.encode_context)")
            instructions = _instruction_list(instruction)
            source, vlm_frames = self.prepare_inputs(video, num_frames, height, width, vlm_frames)
            batch = source.shape[0]
            if batch != len(instructions):
                raise ReviseInputError(f"{batch} clips but {len(instructions)} instructions")
        shape = (batch, *self.latent_shape(num_frames, height, width))
        if latents is not None:
            if tuple(latents.shape) != shape:
                raise ReviseInputError(f"latents must have shape {list(shape)}, not {list(latents.shape)}")
            latents = latents.to(self.device, torch.float32)
        else:
            latents = self._noise(shape, generator, 0 if seed is None else seed)

        if source is not None:
            cond, uncond = self._encode(source, instructions, vlm_frames, timings)
        context = torch.cat([cond, uncond]) if use_cfg else cond
        scheduler = make_scheduler(solver, shift)
        set_timesteps(scheduler, steps, self.device, self.model.sampling_config.sigma_schedule)
        step_end = None if callback_on_step_end is None else self._step_end(callback_on_step_end, tensor_inputs)
        clock = _Clock(self.device)
        with self.stage("denoise"):
            latents = self.denoise(latents, context, scheduler, guidance, progress, callback, step_end)
        timings["denoise"] = clock.lap()
        video_out = self._output(latents, output_type, clock, timings)
        if not return_dict:
            return (video_out,)
        return ReviseEditOutput(video=video_out, source=source, timings=timings, vlm_frames=vlm_frames)

    def _step_end(self, callback_on_step_end: Callable[..., dict],
                  tensor_inputs: list[str]) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
        """The denoising loop's per-step hook around a diffusers-style ``callback_on_step_end``: its
        returned latents (checked) replace the loop's."""
        def step_end(i: int, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            returned = callback_on_step_end(self, i, t, {name: {"latents": x}[name] for name in tensor_inputs})
            if not isinstance(returned, dict):
                raise ReviseInputError(f"callback_on_step_end must return a dict, not {type(returned).__name__}")
            new = returned.get("latents", x)
            if not isinstance(new, torch.Tensor) or new.shape != x.shape:
                raise ReviseInputError(f"callback_on_step_end returned latents of shape "
                                       f"{list(getattr(new, 'shape', []))}, not {list(x.shape)}")
            return new.to(x.device, torch.float32)
        return step_end

    def _output(self, latents: torch.Tensor, output_type: str, clock: "_Clock", timings: dict[str, float]):
        """The denoised latents as ``output_type`` asks: themselves, or decoded (timed) as a tensor,
        numpy array or PIL frames."""
        if output_type == "latent":
            return latents
        with self.stage("decode"):
            video = self.model.decode_latents(latents).float()
        timings["vae_decode"] = clock.lap()
        if output_type != "pt":
            video = VideoProcessor(vae_scale_factor=8).postprocess_video(video, output_type)
        return video

    def _check_contexts(self, context: torch.Tensor | None, negative_context: torch.Tensor | None,
                        use_cfg: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Precomputed contexts as :meth:`encode_context` gives them: [B, max_context_len, text_dim]."""
        m = self.model
        want = (m.context_config.max_context_len, m.transformer.config.text_dim)
        if context is None:
            raise ReviseInputError("negative_context needs context too (both from pipe.encode_context)")
        if use_cfg and negative_context is None:
            raise ReviseInputError("guidance needs negative_context too (pipe.encode_context gives both), "
                                   "or guidance_scale=0")
        for name, t in (("context", context), ("negative_context", negative_context)):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor) or t.dim() != 3 or tuple(t.shape[1:]) != want:
                shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ReviseInputError(f"{name} must be a [B, {want[0]}, {want[1]}] tensor "
                                       f"(pipe.encode_context), not {shape}")
        if negative_context is not None and negative_context.shape != context.shape:
            raise ReviseInputError(f"negative_context is {list(negative_context.shape)}, context {list(context.shape)}")
        dtype = self.model.transformer.dtype
        return context.to(self.device, dtype), None if negative_context is None else negative_context.to(self.device, dtype)

    def _noise(self, shape: tuple[int, ...], generator, seed: int) -> torch.Tensor:
        """Starting noise [B, ...] float32 on the pipeline's device, drawn from ``generator`` (one, or one
        per clip; CPU or the pipeline's device) or from a CPU generator seeded by ``seed``."""
        if generator is None:
            generator = torch.Generator("cpu").manual_seed(seed)
        gens = generator if isinstance(generator, list) else [generator]
        if not gens or not all(isinstance(g, torch.Generator) for g in gens):
            raise ReviseInputError("generator must be a torch.Generator or a list of them, one per clip")
        if isinstance(generator, list) and len(generator) != shape[0]:
            raise ReviseInputError(f"{len(generator)} generators for {shape[0]} clip(s): give one, or one per clip")
        kinds = {g.device.type for g in gens}
        if len(kinds) > 1 or not kinds <= {"cpu", self.device.type}:
            raise ReviseInputError(f"generators on {', '.join(sorted(str(g.device) for g in gens))} cannot draw "
                                   f"noise for a pipeline on {self.device}: use CPU generators")
        return randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)

    def _step_graph(self, velocity: Callable, key: tuple) -> GraphedCall:
        """The CUDA graph of the guided velocity for ``key`` (shapes, dtypes, device, guidance): the one
        kept if it was made for ``key``, else a new one around ``velocity`` (run eagerly once, then
        captured). Its captured kernels read the context's K/V where ``cached_context_kv(keep=True)``
        keeps them."""
        if self._graph is None or self._graph[0] != key:
            self.release_graph()
            self._graph = (key, GraphedCall(velocity))
        call = self._graph[1]
        if call.graph is None:      # not captured yet: this edit's velocity (its context) is the one run
            call.fn = velocity
        return call

    def _graphed(self, latents: torch.Tensor) -> bool:
        """Whether this loop's DiT call is replayed from a CUDA graph (``enable_fast_path(cuda_graph=...)``):
        as asked, or by default where the DiT's linears are FP8; only on a GPU and without offload."""
        wanted = self.cuda_graph if self.cuda_graph is not None else self.quantized.get("transformer") == "fp8"
        return bool(wanted) and latents.is_cuda and self._placement is None

    def release_graph(self) -> None:
        """Drop the denoising step's CUDA graph and the context K/V kept for it (``cuda_graph``)."""
        if self._graph is not None:
            self._graph[1].release()
            self._graph = None
        release_kept_context(self.model.transformer)

    def denoise(self, latents: torch.Tensor, context: torch.Tensor, scheduler, guidance: float,
                progress: bool = False, callback: Callable[[int, int], None] | None = None,
                step_end: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The sampling loop over ``scheduler.timesteps``: ``context`` is [cond; uncond] (2B rows) when
        ``guidance`` is not 0, else [cond] (B rows); both branches run as one DiT call per step.
        ``step_end(i, t, latents)`` returns the latents the next step starts from; with it the
        scheduler steps itself (the step plan's history could not take the change)."""
        dit = self.model.transformer
        context = context.to(dit.dtype)
        steps = len(scheduler.timesteps)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            """The guided velocity at latents ``x`` [B, ...] and timestep ``t`` (0-dim)."""
            xx = torch.cat([x, x]) if guidance != 0 else x
            v = dit(xx.to(dit.dtype), t.expand(xx.shape[0]), context, return_dict=False)[0].float()
            if guidance != 0:
                v_cond, v_uncond = v.chunk(2)
                v = v_cond + guidance * (v_cond - v_uncond)
            return v

        graphed = self._graphed(latents)
        if graphed:     # replayed from the CUDA graph of this shape (captured at its second step)
            velocity = self._step_graph(velocity, (tuple(latents.shape), latents.dtype, tuple(context.shape),
                                                   context.dtype, latents.device, float(guidance)))
        elif self._graph is not None:
            self.release_graph()
        plan = StepPlan.from_scheduler(scheduler) if step_end is None else None
        # the context's cross-attention K/V, once; with the graph, where it reads them
        with cached_context_kv(dit, context, keep=graphed):
            timesteps = scheduler.timesteps.to(latents.device)
            if plan is None:                          # a sampler that is not linear: its own steps
                for i, t in enumerate(tqdm(timesteps, desc="denoising", disable=not progress, leave=False)):
                    v = velocity(latents, t)
                    v = v.clone() if graphed else v           # a graph's output is overwritten by its next replay
                    latents = scheduler.step(v, t, latents, return_dict=False)[0]
                    if step_end is not None:
                        latents = step_end(i, t, latents)
                    if callback is not None:
                        callback(i + 1, steps)
                return latents
            # the sampler's coefficients are on the GPU before the loop: no step waits on the host
            plan = plan.to(latents.device, torch.float32)
            history = latents.new_empty((steps + 1, *latents.shape), dtype=torch.float32)
            history[0] = latents
            for i in tqdm(range(steps), desc="denoising", disable=not progress, leave=False):
                history[i + 1] = velocity(latents, timesteps[i])
                latents = plan.apply(i, history)
                if callback is not None:
                    callback(i + 1, steps)
        return latents


def set_attention_backend(dit, backend: str) -> None:
    """diffusers' ``dit.set_attention_backend(backend)`` for ``dit``'s attention alone: diffusers also
    makes ``backend`` the process-wide default (its registry's active backend), so that e.g. a model on
    the CPU in the same process would then call cuDNN; the default is put back."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    dit.set_attention_backend(backend)
    _AttentionBackendRegistry.set_active_backend(active)


class _Clock:
    """Wall-clock laps, synchronising the GPU so that each lap holds its own work."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.last = self._now()

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self) -> float:
        now = self._now()
        lap, self.last = now - self.last, now
        return lap
