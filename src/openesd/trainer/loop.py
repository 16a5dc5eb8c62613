"""`train(job)`: a kohya-configured LoRA on an SD 1.x or SDXL checkpoint, with diffusers, peft and accelerate.

Speed choices, each because a GPU step of SD is short enough for overheads to show: latents and
frozen text embeddings are cached on the device; diffusers' default attention is PyTorch SDPA;
frozen weights run in half precision under autocast while the LoRA parameters stay fp32; the loss
reaches the host only when progress is reported; torch.compile stays off (minutes of compile for
a job of minutes, and bucket shapes change between batches).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from openesd.trainer import _batches, _models, _optim, dataset as ds, lora_format
from openesd.trainer.errors import TrainingError
from openesd.trainer.types import TrainingJob, TrainingProgress, TrainingResult

PROGRESS_EVERY = 10  # optimizer steps between progress reports (plus the first, epoch ends, the last)


@dataclass
class _Plan:
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    total_epochs: int


def train(
    job: TrainingJob,
    progress: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train, writing `<output_name>.safetensors` (and intermediate epochs) to job.output_dir."""
    config = job.config
    warnings: list[str] = []
    # 1. Validate what the user controls before loading anything large.
    dataset = _load_dataset(job, warnings)
    plan = _plan(config, dataset)
    # 2. Device, precision and seed.
    accelerator, weight_dtype = _accelerator(job, warnings)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    # 3. Model with LoRA adapters.
    parts = _models.load(job.base_model, job.model_type)
    _models.freeze_and_place(parts, accelerator.device, weight_dtype)
    _seed_everything(seed)
    trained = _models.add_adapters(parts, config)
    _enable_checkpointing(config, parts, trained)
    # 4. Optimizer and schedule.
    optimizer, scheduler = _optimization(config, trained, accelerator, plan, warnings)
    # 5. The loop.
    loop = _Loop(job, parts, trained, accelerator, optimizer, scheduler, plan, dataset, seed, warnings)
    return loop.run(progress, should_stop)


def _load_dataset(job: TrainingJob, warnings: list[str]) -> ds.Dataset:
    config = job.config
    dataset = ds.scan(job.dataset_dir, config.caption_extension)
    warnings.extend(dataset.warnings)
    buckets = None
    if config.enable_bucket:
        buckets = ds.bucket_resolutions(
            config.resolution, config.min_bucket_reso, config.max_bucket_reso, config.bucket_reso_steps
        )
    return ds.assign_buckets(dataset, config.resolution, buckets)


def _plan(config: Any, dataset: ds.Dataset) -> _Plan:
    """kohya's step arithmetic: max_train_epochs, when given, overrides max_train_steps."""
    batches = ds.batches_per_epoch(dataset, config.train_batch_size)
    steps = math.ceil(batches / config.gradient_accumulation_steps)
    if config.max_train_epochs:
        return _Plan(batches, steps, steps * config.max_train_epochs, config.max_train_epochs)
    return _Plan(batches, steps, config.max_train_steps, math.ceil(config.max_train_steps / steps))


def _accelerator(job: TrainingJob, warnings: list[str]) -> tuple[Any, Any]:
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cuda = torch.cuda.is_available() and job.device != "cpu"
    precision = job.config.mixed_precision
    if precision != "no" and not cuda:
        warnings.append(f"mixed_precision {precision} needs a CUDA device; trained in fp32 on the CPU")
        precision = "no"
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        warnings.append("mixed_precision bf16 is not supported by this GPU; trained with fp16")
        precision = "fp16"
    # One worker process runs job after job; accelerate keeps the precision in a process-wide singleton.
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision, cpu=not cuda)
    dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return accelerator, dtype


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _enable_checkpointing(config: Any, parts: _models.Parts, trained: dict[str, Any]) -> None:
    for module in trained.values():
        module.train()  # diffusers and transformers checkpoint only in training mode
    if not config.gradient_checkpointing:
        return
    parts.unet.enable_gradient_checkpointing()
    for name, module in trained.items():
        if name != "unet":
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _optimization(
    config: Any, trained: dict[str, Any], accelerator: Any, plan: _Plan, warnings: list[str]
) -> tuple[Any, Any]:
    groups = []
    for name, module in trained.items():
        lr = config.unet_lr if name == "unet" else config.text_encoder_lr
        params = [p for p in module.parameters() if p.requires_grad]
        groups.append({"params": params, "lr": lr if lr is not None else config.learning_rate})
    optimizer = _optim.build_optimizer(config.optimizer_type, groups, accelerator.device.type == "cuda", warnings)
    scheduler = _optim.build_scheduler(config, optimizer, plan.total_steps)
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    return optimizer, scheduler


class _Loop:
    """The epoch/step loop, its progress reports and its LoRA files."""

    def __init__(
        self,
        job: TrainingJob,
        parts: _models.Parts,
        trained: dict[str, Any],
        accelerator: Any,
        optimizer: Any,
        scheduler: Any,
        plan: _Plan,
        dataset: ds.Dataset,
        seed: int,
        warnings: list[str],
    ):
        import torch
        from diffusers import DDPMScheduler

        self.job, self.config, self.parts, self.trained = job, job.config, parts, trained
        self.accelerator, self.optimizer, self.scheduler = accelerator, optimizer, scheduler
        self.plan, self.dataset, self.warnings = plan, dataset, warnings
        self.device = accelerator.device
        self.rng = random.Random(seed)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        noise_config = dict(parts.scheduler_config)
        if self.config.v_parameterization:
            noise_config["prediction_type"] = "v_prediction"
        self.noise_scheduler = DDPMScheduler.from_config(noise_config)
        self.cond = _batches.Conditioning(
            parts, self.device, self.generator, self.rng, self.config, train_text="text_encoder" in trained
        )
        self.params = [p for m in trained.values() for p in m.parameters() if p.requires_grad]
        self.files: list[Path] = []
        self.step = 0
        self.started = 0.0

    def run(self, progress: Callable | None, should_stop: Callable | None) -> TrainingResult:
        if self.config.cache_latents:
            self._cache_latents()
        self.started = time.perf_counter()
        for epoch in range(1, self.plan.total_epochs + 1):
            outcome = self._epoch(epoch, progress, should_stop)
            if outcome == "stopped":
                return self._result(stopped=True)
            if outcome == "done" or epoch == self.plan.total_epochs:
                self._save(self._path(None), epoch)
                return self._result(stopped=False)
            if self.config.save_every_n_epochs and epoch % self.config.save_every_n_epochs == 0:
                self._save(self._path(epoch), epoch)
                self._drop_old_epochs()
        return self._result(stopped=False)

    def _cache_latents(self) -> None:
        """Encode every image once up front, then move the VAE off the GPU: it is not needed again."""
        import torch

        for item in self.dataset.items:
            self.cond.latents_for([item])
        self.parts.vae.to("cpu")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _epoch(self, epoch: int, progress: Callable | None, should_stop: Callable | None) -> str:
        batches = ds.epoch_batches(self.dataset, self.config.train_batch_size, self.rng)
        accumulate = self.config.gradient_accumulation_steps
        loss = None
        for index, batch in enumerate(batches):
            if should_stop is not None and should_stop():
                return "stopped"
            loss = self._forward_backward(batch, accumulate)
            if (index + 1) % accumulate and index + 1 != len(batches):
                continue
            self._optimizer_step()
            self.step += 1
            last = self.step == self.plan.total_steps
            if progress and (self.step == 1 or self.step % PROGRESS_EVERY == 0 or last or index + 1 == len(batches)):
                progress(self._progress(epoch, loss))
            if last:
                return "done"
        return "epoch"

    def _forward_backward(self, batch: list[ds.ImageItem], accumulate: int) -> Any:
        with self.accelerator.autocast():
            loss = self._loss(batch)
        # Gradients add up over accumulated batches, so each carries its share of the mean.
        self.accelerator.backward(loss / accumulate)
        return loss.detach()

    def _optimizer_step(self) -> None:
        if self.config.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _loss(self, batch: list[ds.ImageItem]) -> Any:
        import torch
        import torch.nn.functional as F

        latents = self.cond.latents_for(batch)
        noise = torch.randn(latents.shape, generator=self.generator, device=self.device, dtype=latents.dtype)
        if self.config.noise_offset:
            # Lets the model learn very dark and very bright images (kohya's noise_offset).
            noise = noise + self.config.noise_offset * torch.randn(
                (latents.shape[0], latents.shape[1], 1, 1), generator=self.generator, device=self.device
            )
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), generator=self.generator, device=self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        embeds, pooled = self.cond.text_for(batch)
        extra = None
        if self.parts.family == "sdxl":
            extra = {"text_embeds": pooled, "time_ids": self.cond.time_ids_for(batch)}
        pred = self.parts.unet(noisy, timesteps, embeds, added_cond_kwargs=extra).sample
        target = noise
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
        return (per_sample * self._snr_weights(timesteps)).mean()

    def _snr_weights(self, timesteps: Any) -> Any:
        """min-SNR-gamma weighting (Hang et al. 2023), as kohya's --min_snr_gamma; 1 when off."""
        import torch

        if not self.config.min_snr_gamma:
            return torch.ones_like(timesteps, dtype=torch.float32)
        alphas = self.noise_scheduler.alphas_cumprod.to(self.device)[timesteps]
        snr = alphas / (1 - alphas)
        weight = torch.clamp(snr, max=self.config.min_snr_gamma) / snr
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            weight = torch.clamp(snr, max=self.config.min_snr_gamma) / (snr + 1)
        return weight.float()

    def _progress(self, epoch: int, loss: Any) -> TrainingProgress:
        value = float(loss.item())  # the one host sync, once per report
        if not math.isfinite(value):
            raise TrainingError(
                f"loss became {value} at step {self.step}; lower the learning rate "
                f"(unet_lr/text_encoder_lr/learning_rate) or use mixed_precision bf16 or no"
            )
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.step * (self.plan.total_steps - self.step)
        return TrainingProgress(
            step=self.step,
            total_steps=self.plan.total_steps,
            epoch=epoch,
            total_epochs=self.plan.total_epochs,
            loss=value,
            eta_seconds=eta,
        )

    def _path(self, epoch: int | None) -> Path:
        suffix = "" if epoch is None else f"-{epoch:06d}"
        return Path(self.job.output_dir) / f"{self.config.output_name}{suffix}.safetensors"

    def _save(self, path: Path, epoch: int) -> None:
        import torch
        from peft.utils import get_peft_model_state_dict

        dtype = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.config.save_precision]
        states = {name: (module, get_peft_model_state_dict(module)) for name, module in self.trained.items()}
        tensors = lora_format.kohya_state_dict(states, self.parts.family, self.config.network_alpha, dtype)
        meta = lora_format.metadata(
            self.config,
            self.parts.family,
            epoch=epoch,
            steps=self.step,
            base_model=self.job.base_model,
            images=self.dataset.image_count,
        )
        self.files.append(lora_format.save(path, tensors, meta))

    def _drop_old_epochs(self) -> None:
        keep = self.config.save_last_n_epochs
        epochs = [f for f in self.files if f.stem != self.config.output_name]
        if keep and len(epochs) > keep:
            for old in epochs[:-keep]:
                old.unlink(missing_ok=True)
                self.files.remove(old)

    def _result(self, stopped: bool) -> TrainingResult:
        return TrainingResult(
            files=list(self.files),
            steps=self.step,
            stopped=stopped,
            ignored_keys=list(self.config.ignored_keys),
            warnings=list(self.warnings),
        )
