"""The trainer: one readable loop for every objective (``revise/train/objectives/``), named by none.

accelerate handles devices, mixed precision, gradient accumulation and multi-GPU wrapping (launch
with ``accelerate launch`` and an FSDP or DeepSpeed config for several GPUs). Each step's noise,
noise levels and condition dropout come from a generator seeded by (seed, step), and the data
order from (seed, epoch), so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..atomic import atomic_folder, atomic_path, replace_folder, write_text
from ..critic import Critic
from ..errors import storage_error
from ..models.lora import add_lora, has_lora, is_lora_parameter, save_lora
from ..models.revise_model import ReviseModel
from .config import TrainConfig
from .data import DataCursor, TripletData, clips_to_device
from .objectives import Objective, create

log = logging.getLogger("revise.train")
CHECKPOINT_PREFIX = "checkpoint-"
FEATURES_ON_DEVICE_BYTES = 2 * 2**30     # cached features up to this size live on the training device


class TrainStep(nn.Module):
    """The objective's loss as a module forward, so DDP/FSDP wrappers see every parameter used;
    also what objectives share: the model, its critic, the text features and the mixed context."""

    def __init__(self, model: ReviseModel, objective: Objective, text_cache: dict[str, torch.Tensor] | None = None,
                 critic_vlm: nn.Module | None = None):
        super().__init__()
        self.model, self.objective = model, objective
        # the model's own VLM, or (config critic_model) a separate frozen one, kept out of this
        # module's parameters so that wrappers neither shard nor synchronise it
        self.critic = Critic(model.understanding if critic_vlm is None else critic_vlm)
        self.text_cache = text_cache

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.objective.loss(self, batch)

    def text_tokens(self, instructions: list[str]) -> list[torch.Tensor]:
        if self.text_cache is None:
            return self.model.encode_text(instructions)
        dev = self.model.transformer.device
        return [self.text_cache[i].to(dev) for i in instructions]

    def context(self, source_latents: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Mixed context per sample; the samples in ``batch["drop"]`` get the unconditional text and
        VLM tokens. The VLM's hidden states come from the feature cache when it holds them."""
        m, instructions = self.model, batch["instructions"]
        if "vlm_hidden" in batch:
            hidden = batch["vlm_hidden"].to(m.vision_head.dtype)
            vlm = list(m.adapter(m.vision_head(hidden, batch["vlm_mask"])))
        else:
            vlm = list(m.vlm_tokens(batch["source"], instructions))
        return m.training_context(source_latents, vlm, self.text_tokens(instructions), batch["drop"].tolist())


def set_trainable(model: ReviseModel, modules: list[str]) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the named modules (:func:`trained_modules`); a transformer
    with a LoRA adapter trains only the adapter's weights."""
    model.requires_grad_(False)
    for name in modules:
        if name == "transformer" and has_lora(model.transformer):
            for key, p in model.transformer.named_parameters():
                p.requires_grad_(is_lora_parameter(key))
        else:
            for module in trained_modules(model, name):
                module.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def trained_modules(model: ReviseModel, name: str) -> list[nn.Module]:
    """The modules a ``train_modules`` name trains: a ReviseModel attribute, or "lm_head" (the critic's
    answer head) or "vae_decoder" (the VAE's decoder: the latent space, encoder and latent statistics,
    stays)."""
    if name == "lm_head":
        return [model.understanding.llm.get_output_embeddings()]
    if name == "vae_decoder":
        return [model.vae.post_quant_conv, model.vae.decoder]
    return [getattr(model, name)]


def compute_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype frozen weights are kept in: the mixed-precision dtype, else float32 (also for a model
    folder saved in float16, e.g. a shipped copy)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.mixed_precision, torch.float32)


def _load_model(cfg: TrainConfig, device: torch.device) -> ReviseModel:
    """The starting model: frozen weights in the compute dtype, trained ones as float32 master copies."""
    low = compute_dtype(cfg)
    model = ReviseModel.load(cfg.model, seed=cfg.seed, device=device, dtype=low)
    if cfg.lora is not None:              # the DiT trains through a LoRA adapter, its own weights frozen
        add_lora(model.transformer, cfg.lora, seed=cfg.seed)
    # Frozen modules stay in eval mode (no dropout: UMT5 has some); the LM and vision tower go to
    # train mode when checkpointed, as transformers checkpoints only then (neither has dropout).
    model.eval()
    for name in cfg.train_modules:
        for module in [model.understanding.llm] if name == "lm_head" else trained_modules(model, name):
            module.train()
    if cfg.gradient_checkpointing:
        model.transformer.enable_gradient_checkpointing()
        for m in (model.understanding.llm, model.understanding.vision_tower):
            m.gradient_checkpointing_enable()
            m.train()
    for p in set_trainable(model, cfg.train_modules):
        p.data = p.data.float()
    return model


def _load_critic(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """The VLM of the model folder ``cfg.critic_model``, frozen in eval mode, as the critic of rwo/uso."""
    low = compute_dtype(cfg)
    vlm = ReviseModel.load(cfg.critic_model, seed=cfg.seed, device=device, dtype=low).understanding
    vlm.eval().requires_grad_(False)
    return vlm


def _optimizer(model: ReviseModel, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, list[nn.Parameter], list[nn.Parameter]]:
    """AdamW over the trained parameters, the critic's LM head in a group of its own; with the two
    groups' parameters (clipped separately)."""
    head = {id(p) for p in model.understanding.llm.get_output_embeddings().parameters() if p.requires_grad}
    main = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    head_params = [p for p in model.parameters() if id(p) in head]
    groups = [{"params": main, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if head_params:
        groups.append({"params": head_params, "lr": cfg.lm_head_lr, "weight_decay": cfg.lm_head_weight_decay})
    return torch.optim.AdamW([g for g in groups if g["params"]]), main, head_params


class Trainer:
    def __init__(self, cfg: TrainConfig, accelerator=None):
        from accelerate import Accelerator

        self.cfg = cfg
        self.acc = accelerator or Accelerator(mixed_precision=cfg.mixed_precision,
                                              gradient_accumulation_steps=cfg.grad_accum,
                                              cpu=not torch.cuda.is_available())
        self.out = Path(cfg.out)
        self.objective = create(cfg)
        self.model = model = _load_model(cfg, self.acc.device)
        optimizer, self.main_params, self.head_params = _optimizer(model, cfg)
        warmup = max(1, cfg.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
        self.data = TripletData(cfg.data, cfg.num_frames, cfg.height, cfg.width)
        # the clips a step reads: fewer (or none) when cached features stand for them
        self.clip_parts: tuple[str, ...] = self.objective.clip_parts
        self.features = None
        if cfg.cache_features:
            self.clip_parts = self.objective.cached_clip_parts
            self.features = self._feature_cache()
        self._loaded = None if self.features is None else self.features["ok"].tolist()   # items whose clips loaded
        if (cfg.preload or cfg.cache_features) and self.clip_parts:
            self.data.preload(cfg.preload_workers, progress=self.acc.is_main_process, parts=self.clip_parts)
        self.objective.setup(self.data)
        text_cache = self._text_cache() if cfg.cache_text else None
        critic_vlm = _load_critic(cfg, self.acc.device) if cfg.critic_model else None
        self.step_module, self.optimizer, self.scheduler = self.acc.prepare(
            TrainStep(model, self.objective, text_cache, critic_vlm), optimizer, scheduler)
        if text_cache is not None:           # prepare() moved every module to the device: send T5 back
            model.text_encoder.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.cursor = DataCursor(len(self.data), cfg.seed)
        self.step, self.nonfinite_steps = 0, 0
        self.stopped_early = False

    def _feature_cache(self) -> dict[str, torch.Tensor]:
        """VAE latents (and frozen-VLM hidden states) of every item, computed once; on the device when
        small (tens of MB at mini scale), else read from host memory each step."""
        from .features import feature_cache

        cfg = self.cfg
        vlm_frozen = not {"understanding", "lm_head"} & set(cfg.train_modules)
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else self.out / "cache"
        features = feature_cache(self.model, self.data, cache_dir, cfg.model, vlm=vlm_frozen,
                                 write=self.acc.is_main_process, preload_workers=cfg.preload_workers)
        small = sum(v.numel() * v.element_size() for v in features.values()) <= FEATURES_ON_DEVICE_BYTES
        return {k: v.to(self.acc.device) for k, v in features.items()} if small else features

    def _text_cache(self) -> dict[str, torch.Tensor]:
        """UMT5 features of every instruction, computed once into ``out/cache/text_features.safetensors``
        (reused when it holds them all); then the text encoder leaves the GPU."""
        from safetensors.torch import load_file, save_file

        path = self.out / "cache" / "text_features.safetensors"
        wanted = sorted({item["instruction"] for item in self.data.items})
        keys = {text: f"{i}" for i, text in enumerate(wanted)}
        index = path.with_suffix(".json")
        if path.is_file() and index.is_file() and json.loads(index.read_text()) == keys:
            stored = load_file(str(path))
            cache = {text: stored[k] for text, k in keys.items()}
        else:
            cache = {}
            with torch.no_grad():
                for i in range(0, len(wanted), 16):
                    chunk = wanted[i:i + 16]
                    for text, feat in zip(chunk, self.model.encode_text(chunk)):
                        cache[text] = feat.detach().cpu().contiguous()
            if self.acc.is_main_process:
                with atomic_path(path, path.suffix) as tmp:
                    save_file({keys[t]: v for t, v in cache.items()}, str(tmp))
                write_text(index, json.dumps(keys))
        self.model.text_encoder.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {text: feat.to(self.acc.device) for text, feat in cache.items()}

    # ---- checkpoints ------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        found = [p for p in (self.out / "checkpoints").glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").is_file()]
        return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))

    def save(self) -> Path:
        """A complete checkpoint or none: written under a temporary name, renamed when done."""
        root = self.out / "checkpoints"
        final = root / f"{CHECKPOINT_PREFIX}{self.step}"
        tmp = root / f".tmp-{CHECKPOINT_PREFIX}{self.step}"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        self.acc.wait_for_everyone()
        try:
            self.acc.save_state(str(tmp))
            if self.acc.is_main_process:
                state = {"step": self.step, "cursor": self.cursor.state_dict(), "nonfinite_steps": self.nonfinite_steps,
                         "objective_state": self.objective.state_dict(), "skipped_samples": len(self.data.skipped),
                         "config": self.cfg.to_dict()}
                (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
                replace_folder(tmp, final)
        except Exception as err:  # a full disk shows up as OSError, SafetensorError or torch's RuntimeError
            if self.acc.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            done = self.checkpoints()
            raise storage_error(final, err, "nothing was written there; " + (
                f"resuming starts from {done[-1].name}" if done else "no complete checkpoint yet")) from err
        if self.acc.is_main_process:
            for old in self.checkpoints()[: -self.cfg.keep_checkpoints]:
                shutil.rmtree(old)
        self.acc.wait_for_everyone()
        return final

    def resume(self, path: str | Path | None = None) -> bool:
        """Load the given checkpoint, or the newest complete one under ``out``; False if none."""
        ckpt = Path(path) if path else (self.checkpoints() or [None])[-1]
        if ckpt is None:
            return False
        if self.acc.is_main_process:   # saves cut short by a crash: never complete, never read
            for stale in (self.out / "checkpoints").glob(f".tmp-{CHECKPOINT_PREFIX}*"):
                shutil.rmtree(stale, ignore_errors=True)
        self.acc.load_state(str(ckpt))
        state = json.loads((ckpt / "trainer_state.json").read_text())
        self.step, self.nonfinite_steps = state["step"], state["nonfinite_steps"]
        self.objective.load_state_dict(state.get("objective_state", state))   # (older checkpoints: top level)
        self.cursor.load_state_dict(state["cursor"])
        return True

    # ---- one step ---------------------------------------------------------------------------
    def next_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        ok = self._loaded
        for _ in range(10 * self.cfg.batch_size + len(self.data)):
            index = self.cursor.next()
            if ok is not None and not ok[index]:     # its clips did not load when the cache was made
                continue
            sample = self.data.load(index, self.clip_parts, raw=True)
            if sample is not None:
                batch.append(sample)
                if len(batch) == self.cfg.batch_size:
                    return batch
        raise RuntimeError(f"no readable samples in {self.cfg.data}")

    def train_step(self) -> dict[str, float]:
        cfg, dev = self.cfg, self.acc.device
        per_item = self.objective.samples_per_item
        samples = [s for s in self.next_batch() for _ in range(per_item)]
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        f, h, w = cfg.num_frames, cfg.height, cfg.width
        latent_shape = (self.model.vae.config.z_dim, (f - 1) // 4 + 1, h // 8, w // 8)   # Wan VAE: 4x8x8
        batch: dict[str, Any] = {
            **{part: clips_to_device([s[part] for s in samples], dev) for part in self.clip_parts},
            "instructions": [s["instruction"] for s in samples],
            "group": torch.arange(len(samples), device=dev) // per_item,     # the item each row is a copy of
            **self.objective.fields(samples, g, latent_shape, dev),
        }
        if self.features is not None:
            idx = torch.tensor([s["index"] for s in samples], device=self.features["ok"].device)
            for key in ("source_latents", "target_latents", "vlm_hidden", "vlm_mask"):
                if key in self.features:
                    batch[key] = self.features[key][idx].to(dev)
        with self.acc.accumulate(self.step_module):
            loss, metrics = self.step_module(batch)
            if not torch.isfinite(loss):
                self.nonfinite_steps += 1
                log.warning("step %d: non-finite loss, skipped (%d so far)", self.step, self.nonfinite_steps)
                self.optimizer.zero_grad(set_to_none=True)
                return {"loss": float("nan"), "skipped": 1.0}
            self.acc.backward(loss)
            if self.acc.sync_gradients:
                if self.main_params and cfg.grad_clip > 0:
                    self.acc.clip_grad_norm_(self.main_params, cfg.grad_clip)
                if self.head_params and cfg.lm_head_grad_clip > 0:
                    self.acc.clip_grad_norm_(self.head_params, cfg.lm_head_grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        out = {"loss": loss.item(), **{k: v.item() for k, v in metrics.items()}}
        self.objective.after_step(out)
        return out

    # ---- the loop ---------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> dict[str, float]:
        """Train to ``cfg.steps`` (or ``stop_after`` more steps), saving every ``save_every``."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        writer = _metrics_writer(self.out) if self.acc.is_main_process else None
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.objective}", disable=not self.acc.is_main_process)
        last: dict[str, float] = {}
        t0, samples = time.perf_counter(), 0
        while self.step < end:
            if cfg.time_limit_s and time.perf_counter() - t0 > cfg.time_limit_s:
                log.warning("time limit of %.0f s reached at step %d: stopping", cfg.time_limit_s, self.step)
                self.stopped_early = True
                self.save()
                break
            last = self.train_step()
            self.step += 1
            samples += cfg.batch_size * self.acc.num_processes
            rate = samples / (time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in last.items() if k in self.objective.shown} | {"samples/s": f"{rate:.2f}"})
            if writer is not None and self.step % cfg.log_every == 0:
                writer(self.step, {**last, "lr": self.scheduler.get_last_lr()[0], "samples_per_s": rate,
                                   "nonfinite_steps": self.nonfinite_steps, "skipped_samples": len(self.data.skipped)})
            if self.step % cfg.save_every == 0 or self.step == end:
                self.save()
        bar.close()
        self.objective.finish(self)
        return last

    def save_lora(self, folder: str | Path) -> Path:
        """The trained LoRA adapter in diffusers' format: ``folder/pytorch_lora_weights.safetensors``
        (``ReviseEditPipeline.load_lora_weights`` and ``revise edit --lora`` read it)."""
        model = self.acc.unwrap_model(self.step_module).model
        with atomic_folder(folder) as building:
            save_lora(model.transformer, building)
        return Path(folder) / "pytorch_lora_weights.safetensors"

    def save_model(self, path: str | Path) -> Path:
        """The trained weights as a model folder (``ReviseModel.from_pretrained`` loads it).

        Components that did not train are copied byte for byte from the starting model folder (when
        it is one), not re-saved from memory: frozen modules ran in the compute dtype, and a re-save
        would round them (and change what keys a later feature cache). A transformer trained through
        LoRA is saved with the adapter merged in (:meth:`save_lora` writes the adapter alone)."""
        model = self.acc.unwrap_model(self.step_module).model
        source = Path(self.cfg.model)
        if not source.is_dir():
            return model.save_pretrained(path)
        with atomic_folder(path) as building:
            model.save_pretrained(building)
            for part in frozen_parts(self.cfg.train_modules):
                if (source / part).exists():
                    target = building / part
                    shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
                    (shutil.copytree if (source / part).is_dir() else shutil.copy2)(source / part, target)
        return Path(path)


# model-folder parts written by each trainable module ("context_tokens": the two token files)
PARTS = {"transformer": ["transformer"], "visual_context_adapter": ["visual_context_adapter"],
         "adapter": ["adapter"], "vision_head": ["vision_head"], "vae": ["vae"], "vae_decoder": ["vae"],
         "understanding": ["understanding"], "lm_head": ["understanding"],
         "context_tokens": ["special_tokens.safetensors", "unconditioned_context.safetensors"],
         "text_encoder": ["text_encoder"]}


def frozen_parts(train_modules: list[str]) -> list[str]:
    """The model-folder parts no trained module writes (the tokenizer never trains)."""
    trained = {p for m in train_modules for p in PARTS[m]}
    return [p for parts in [*PARTS.values(), ["tokenizer"]] for p in parts if p not in trained]


def _metrics_writer(out: Path):
    """Metrics to ``metrics.jsonl`` always, and to TensorBoard when it is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        tb = SummaryWriter(str(out / "tensorboard"))
    except Exception:  # tensorboard is optional
        tb = None
    path = out / "metrics.jsonl"

    def write(step: int, values: dict[str, float]) -> None:
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"step": step, **{k: v for k, v in values.items() if not math.isnan(v)}}) + "\n")
        except OSError as err:
            raise storage_error(path, err) from err
        if tb is not None:
            for k, v in values.items():
                if not math.isnan(v):
                    tb.add_scalar(k, v, step)
            tb.flush()
    return write
