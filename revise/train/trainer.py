"""The trainer: one readable loop for SFT, RWO, USO and critic (understanding) training.

accelerate handles devices, mixed precision, gradient accumulation and multi-GPU wrapping (launch
with ``accelerate launch`` and an FSDP or DeepSpeed config for several GPUs). Each step's noise,
noise levels and condition dropout come from a generator seeded by (seed, step), and the data
order from (seed, epoch), so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..critic import QA_PROMPT, Critic
from ..errors import storage_error
from ..models.context import assemble_batch
from ..models.understanding import MEDIA_TOKEN
from ..models.revise_model import ReviseModel
from . import objectives as obj
from .config import TrainConfig
from .data import DataCursor, TripletData, clips_to_device

log = logging.getLogger("revise.train")
CHECKPOINT_PREFIX = "checkpoint-"
FEATURES_ON_DEVICE_BYTES = 2 * 2**30     # cached features up to this size live on the training device


class TrainStep(nn.Module):
    """One objective's loss as a module forward, so DDP/FSDP wrappers see every parameter used.

    ``batch`` holds the clips (``source``, ``target`` [B, 3, F, H, W]) and/or their cached features
    (``source_latents``, ``target_latents``, ``vlm_hidden`` + ``vlm_mask``), the ``instructions``,
    and the step's random draws (``noise``, ``sigmas``, ``drop``; ``vae_noise`` for the VAE).
    """

    def __init__(self, model: ReviseModel, cfg: TrainConfig, text_cache: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.critic = Critic(model.understanding)
        self.text_cache = text_cache

    def text_tokens(self, instructions: list[str]) -> list[torch.Tensor]:
        if self.text_cache is None:
            return self.model.encode_text(instructions)
        dev = self.model.transformer.device
        return [self.text_cache[i].to(dev) for i in instructions]

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m, cfg = self.model, self.cfg
        if cfg.objective == "critic":
            return self._critic_loss(batch)
        if cfg.objective == "qa":
            return self._qa_loss(batch)
        if cfg.objective == "vae":
            return self._vae_loss(batch)
        with torch.no_grad():
            x0 = batch["target_latents"] if "target_latents" in batch else m.encode_video(batch["target"])
            source_latents = batch["source_latents"] if "source_latents" in batch else m.encode_video(batch["source"])
        x0, noise, sigmas = x0.float(), batch["noise"], batch["sigmas"]
        context = self._context(source_latents, batch)
        x_t = obj.add_noise(x0, noise, sigmas)
        dit = m.transformer
        v = dit(x_t.to(dit.dtype), sigmas * 1000, context, return_dict=False)[0].float()
        metrics: dict[str, torch.Tensor] = {}
        source, instructions = batch.get("source"), batch["instructions"]
        if cfg.objective == "sft":
            loss = obj.sft_loss(v, x0, noise)
        elif cfg.objective == "rwo":
            with torch.no_grad():
                edit = m.decode_latents(obj.x0_estimate(x_t, v, sigmas))
                p = self.critic.p_yes(source, edit, instructions)
            loss = obj.rwo_loss(v, x0, noise, p, batch.get("baseline"))
            metrics["p_yes"] = p.mean()
        else:  # uso: the semantic loss's gradient flows through the decoded x0 estimate
            edit = m.decode_latents(obj.x0_estimate(x_t, v, sigmas), checkpointed=cfg.gradient_checkpointing)
            p = self.critic.p_yes(source, edit, instructions)
            loss = obj.uso_loss(v, x0, noise, p, lam=cfg.uso_lambda, sigmas=sigmas, max_sigma=cfg.uso_max_sigma)
            metrics["p_yes"] = p.detach().mean()
        metrics["fm"] = obj.flow_matching_per_sample(v.detach(), x0, noise).mean()
        return loss, metrics

    def _critic_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Yes/No cross-entropy of the critic's answer, each sample asked its own question."""
        logits = self.critic.logits(batch["source"], batch["target"], batch["instructions"],
                                    batch.get("dimensions")).float()
        answers = batch["answers"]
        margin = logits[:, 0] - logits[:, 1]
        nll = nn.functional.binary_cross_entropy_with_logits(margin, answers, reduction="none")
        w = batch.get("weights")
        loss = nll.mean() if w is None else (nll * w).sum() / w.sum()
        acc = ((margin > 0).float() == answers).float().mean()
        return loss, {"accuracy": acc.detach(), "p_yes": torch.sigmoid(margin).mean().detach()}

    def _qa_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Short answers (teacher-forced cross-entropy) to questions about the source and candidate."""
        vlm = self.model.understanding
        prompts = [vlm.chat(QA_PROMPT.format(media=MEDIA_TOKEN, instruction=i, question=q))
                   for i, q in zip(batch["instructions"], batch["questions"])]
        clips = [[s, c] for s, c in zip(batch["source"], batch["target"])]
        loss = vlm.answer_loss(prompts, clips, batch["answer_texts"])
        return loss, {}

    def _vae_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction (L1 + MSE, plus the focus term) of source and target clips through a
        posterior sample (or, without ``vae_sample``, its mean: what ``encode_video`` gives the DiT),
        plus a small KL term toward N(0, 1)."""
        vae = self.model.vae
        x = torch.cat([batch["source"], batch["target"]]).to(vae.dtype)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * batch["vae_noise"].to(post.mean.dtype) if self.cfg.vae_sample else post.mean
        rec = vae.decode(z).sample.float()
        l1, mse = (rec - x.float()).abs().mean(), ((rec - x.float()) ** 2).mean()
        kl = 0.5 * (post.mean.float() ** 2 + post.var.float() - 1 - post.logvar.float()).mean()
        loss = l1 + mse + self.cfg.vae_kl_weight * kl
        metrics = {"l1": l1.detach(), "kl": kl.detach()}
        if self.cfg.vae_focus > 0:
            focus = obj.focus_l1(rec, x, self.cfg.vae_focus)
            loss = loss + focus
            metrics["focus_l1"] = focus.detach()
        return loss, metrics

    def _context(self, source_latents: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Mixed context per sample; dropped samples get the unconditional text and VLM tokens."""
        m, instructions, drop = self.model, batch["instructions"], batch["drop"]
        special = m.context_tokens.special_dict()
        visual = m.source_tokens(source_latents)
        if "vlm_hidden" in batch:
            hidden = batch["vlm_hidden"].to(m.vision_head.dtype)
            vlm = list(m.adapter(m.vision_head(hidden, batch["vlm_mask"])))
        else:
            vlm = list(m.vlm_tokens(batch["source"], instructions))
        text = self.text_tokens(instructions)
        if drop.any():
            uncond_vlm = m.uncond_vlm_tokens()[0]
            vlm = [uncond_vlm if d else t for d, t in zip(drop.tolist(), vlm)]
            text = [m.context_tokens.uncond_context if d else t for d, t in zip(drop.tolist(), text)]
        ctx = assemble_batch(special, visual, vlm, text, m.context_config.max_context_len)
        return ctx.to(m.transformer.dtype)


def set_trainable(model: ReviseModel, modules: list[str]) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the named modules; "lm_head" is the critic's answer head."""
    # (ReviseModel attribute names; "vae" is the autoencoder, trained by the "vae" objective)
    model.requires_grad_(False)
    for name in modules:
        if name == "lm_head":
            model.understanding.llm.get_output_embeddings().requires_grad_(True)
        else:
            getattr(model, name).requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


class Trainer:
    def __init__(self, cfg: TrainConfig, accelerator=None):
        from accelerate import Accelerator

        self.cfg = cfg
        self.acc = accelerator or Accelerator(mixed_precision=cfg.mixed_precision,
                                              gradient_accumulation_steps=cfg.grad_accum,
                                              cpu=not torch.cuda.is_available())
        self.out = Path(cfg.out)
        # Frozen weights live in the compute dtype; trained ones keep float32 master copies.
        low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.mixed_precision)
        model = ReviseModel.load(cfg.model, seed=cfg.seed, device=self.acc.device, dtype=low)
        # Frozen modules stay in eval mode (no dropout: UMT5 has some); the LM and vision tower go to
        # train mode when checkpointed, as transformers checkpoints only then (neither has dropout).
        model.eval()
        for name in cfg.train_modules:
            (model.understanding.llm if name == "lm_head" else getattr(model, name)).train()
        if cfg.gradient_checkpointing:
            model.transformer.enable_gradient_checkpointing()
            for m in (model.understanding.llm, model.understanding.vision_tower):
                m.gradient_checkpointing_enable()
                m.train()
        for p in set_trainable(model, cfg.train_modules):
            p.data = p.data.float()
        head = {id(p) for p in model.understanding.llm.get_output_embeddings().parameters() if p.requires_grad}
        main = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
        head_params = [p for p in model.parameters() if id(p) in head]
        groups = [{"params": main, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
        if head_params:
            groups.append({"params": head_params, "lr": cfg.lm_head_lr, "weight_decay": cfg.lm_head_weight_decay})
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        warmup = max(1, cfg.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
        self.model = model
        self.data = TripletData(cfg.data, cfg.num_frames, cfg.height, cfg.width)
        # the clips a step needs: none when cached features stand for them, the source alone for the
        # critic of RWO/USO
        self.clip_parts: tuple[str, ...] = ("source", "target")
        self.features = None
        if cfg.cache_features:
            from .features import feature_cache

            self.clip_parts = ("source",) if cfg.objective in ("rwo", "uso") else ()
            vlm_frozen = not {"understanding", "lm_head"} & set(cfg.train_modules)
            cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else self.out / "cache"
            features = feature_cache(model, self.data, cache_dir, cfg.model, vlm=vlm_frozen,
                                     write=self.acc.is_main_process, preload_workers=cfg.preload_workers)
            # on the device when small (tens of MB at mini scale), else read from host memory each step
            small = sum(v.numel() * v.element_size() for v in features.values()) <= FEATURES_ON_DEVICE_BYTES
            self.features = {k: v.to(self.acc.device) for k, v in features.items()} if small else features
        self._loaded = None if self.features is None else self.features["ok"].tolist()   # items whose clips loaded
        if (cfg.preload or cfg.cache_features) and self.clip_parts:
            self.data.preload(cfg.preload_workers, progress=self.acc.is_main_process, parts=self.clip_parts)
        self.class_weights = None
        answers = self.data.answers() if cfg.objective == "critic" and cfg.critic_balance else None
        if answers:
            yes = sum(answers) / len(answers)
            if 0 < yes < 1:
                self.class_weights = (0.5 / yes, 0.5 / (1 - yes))
        text_cache = self._text_cache() if cfg.cache_text else None
        self.step_module, self.optimizer, self.scheduler = self.acc.prepare(
            TrainStep(model, cfg, text_cache), optimizer, scheduler)
        self.main_params, self.head_params = main, head_params
        if text_cache is not None:           # prepare() moved every module to the device: send T5 back
            model.text_encoder.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.cursor = DataCursor(len(self.data), cfg.seed)
        self.step, self.nonfinite_steps, self.baseline = 0, 0, None
        self.stopped_early = False
        self._log_file = None

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
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(".tmp-" + path.name)
                save_file({keys[t]: v for t, v in cache.items()}, str(tmp))
                os.replace(tmp, path)
                index.write_text(json.dumps(keys))
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
                         "baseline": self.baseline, "skipped_samples": len(self.data.skipped),
                         "config": self.cfg.to_dict()}
                (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
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
        self.step, self.nonfinite_steps, self.baseline = state["step"], state["nonfinite_steps"], state["baseline"]
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
        samples = self.next_batch()
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        f, h, w = cfg.num_frames, cfg.height, cfg.width
        latent_shape = (self.model.vae.config.z_dim, (f - 1) // 4 + 1, h // 8, w // 8)   # Wan VAE: 4x8x8
        b = len(samples)
        batch: dict[str, Any] = {
            **{part: clips_to_device([s[part] for s in samples], dev) for part in self.clip_parts},
            "instructions": [s["instruction"] for s in samples],
            "noise": torch.randn((b, *latent_shape), generator=g).to(dev),
            "sigmas": obj.sample_sigmas(b, generator=g, scheme=cfg.timestep_scheme, mean=cfg.timestep_mean,
                                        std=cfg.timestep_std, mode_scale=cfg.mode_scale, shift=cfg.flow_shift,
                                        device=dev),
            "drop": torch.rand(b, generator=g) < cfg.cond_dropout,
            "answers": torch.tensor([s.get("answer", 1.0) for s in samples], device=dev),
            "dimensions": [s.get("dimension") for s in samples],
            "questions": [s.get("question") for s in samples],
            "answer_texts": [s.get("answer_text") for s in samples],
            "baseline": self.baseline,
        }
        if cfg.objective == "vae":
            batch["vae_noise"] = torch.randn((2 * b, *latent_shape), generator=g).to(dev)
        if self.class_weights is not None:
            batch["weights"] = torch.tensor([self.class_weights[0] if s.get("answer", 1.0) else self.class_weights[1]
                                             for s in samples], device=dev)
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
        if "p_yes" in out and cfg.objective == "rwo":
            m = cfg.rwo_baseline_momentum
            self.baseline = out["p_yes"] if self.baseline is None else m * self.baseline + (1 - m) * out["p_yes"]
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
            bar.set_postfix({k: f"{v:.4g}" for k, v in last.items() if k in ("loss", "p_yes", "accuracy")} | {"samples/s": f"{rate:.2f}"})
            if writer is not None and self.step % cfg.log_every == 0:
                writer(self.step, {**last, "lr": self.scheduler.get_last_lr()[0], "samples_per_s": rate,
                                   "nonfinite_steps": self.nonfinite_steps, "skipped_samples": len(self.data.skipped)})
            if self.step % cfg.save_every == 0 or self.step == end:
                self.save()
        bar.close()
        if cfg.objective == "vae":
            self.set_latent_stats()
        return last

    @torch.no_grad()
    def set_latent_stats(self, batches: int = 16) -> None:
        """Per-channel mean and std of the trained VAE's latents over training clips, written into
        its config (``latents_mean``/``latents_std``), so the DiT sees unit-scale latents."""
        vae = self.model.vae
        zs = []
        for i in range(batches):
            samples = [self.data.load(j) for j in range(i * 8, min(len(self.data), (i + 1) * 8))]
            samples = [s for s in samples if s is not None]
            if not samples:
                break
            x = torch.stack([s["target"] for s in samples] + [s["source"] for s in samples]).to(self.acc.device, vae.dtype)
            zs.append(vae.encode(x).latent_dist.mode().float().transpose(0, 1).flatten(1))
        z = torch.cat(zs, 1)
        vae.register_to_config(latents_mean=z.mean(1).tolist(), latents_std=z.std(1).clamp_min(1e-3).tolist())

    def save_model(self, path: str | Path) -> Path:
        """The trained weights as a model folder (``ReviseModel.from_pretrained`` loads it).

        Components that did not train are copied byte for byte from the starting model folder (when
        it is one), not re-saved from memory: frozen modules ran in the compute dtype, and a re-save
        would round them (and change what keys a later feature cache)."""
        model = self.acc.unwrap_model(self.step_module).model
        source = Path(self.cfg.model)
        if not source.is_dir():
            return model.save_pretrained(path)
        path = Path(path)
        building = model.save_pretrained(path.with_name(f".{path.name}.building"))
        for part in frozen_parts(self.cfg.train_modules):
            if (source / part).exists():
                target = building / part
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
                (shutil.copytree if (source / part).is_dir() else shutil.copy2)(source / part, target)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(building, path)
            shutil.rmtree(old)
        else:
            os.replace(building, path)
        return path


# model-folder parts written by each trainable module ("context_tokens": the two token files)
PARTS = {"transformer": ["transformer"], "visual_context_adapter": ["visual_context_adapter"],
         "adapter": ["adapter"], "vision_head": ["vision_head"], "vae": ["vae"],
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
