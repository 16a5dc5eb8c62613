"""Which queued jobs an endpoint instance runs as one UNet batch, and which checkpoints a job wants (model-affinity
routing). Both engines use them: the local engine's dispatch and each Ray replica take the first queued job and the
queued jobs compatible with it, up to the settings' caps (docs: batching)."""

from __future__ import annotations

import json
import re
import time
from collections import deque
from typing import Any

from openesd.execution.base import JobSpec

# What each row of a UNet batch carries on its own; every other payload field must be equal.
PER_JOB = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt", "seed", "subseed", "cfg_scale", "n_iter")
PROMPTS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
# Jobs with these run alone: their adapters call the UNet themselves, or have per-job model state.
ALONE_FIELDS = ("script_name", "alwayson_scripts", "refiner_checkpoint")
EXTRA_NETWORK = re.compile(r"<([^:<>]+):([^<>]*)>")  # <lora:name:weight>: the LoRA set is the model's state
SCAN = 64  # queued jobs looked at for one batch: the supervisor's tick stays short behind a long queue
LATENT_SIDE = 8  # SD's VAE factor: the cap counts latent pixels of real models


class Batcher:
    """Batch keys of queued jobs, parsed once per job, and the time each was queued (the wait to fill)."""

    def __init__(self, max_jobs: int, max_latent_pixels: int, wait_s: float):
        self.max_jobs, self.max_latent_pixels, self.wait_s = max_jobs, max_latent_pixels, wait_s
        self._seen: dict[str, tuple[float, str | None, int]] = {}

    def take(self, queue: deque[JobSpec], now: float | None = None) -> list[JobSpec]:
        """Pop the first queued job and those compatible with it; [] while the batch waits to fill."""
        now = time.monotonic() if now is None else now
        first = queue[0]
        queued_at, key, pixels = self._describe(first)
        if key is None or self.max_jobs < 2:
            return [self._pop(queue, first)]
        mates = [job for job in list(queue)[1:SCAN] if self._describe(job)[1] == key]
        if self.wait_s > 0 and len(mates) + 1 < self.max_jobs and now - queued_at < self.wait_s:
            return []
        batch, budget = [self._pop(queue, first)], self.max_latent_pixels - pixels
        for job in mates:
            size = self._describe(job)[2]
            if len(batch) >= self.max_jobs:
                break
            if size <= budget:
                batch.append(self._pop(queue, job))
                budget -= size
        return batch

    def _describe(self, job: JobSpec) -> tuple[float, str | None, int]:
        known = self._seen.get(job.id)
        if known is None:
            if len(self._seen) > 4096:  # cancelled and dropped jobs never taken: forget them all at once
                self._seen.clear()
            known = self._seen[job.id] = (time.monotonic(), *batch_key(job))
        return known

    def _pop(self, queue: deque[JobSpec], job: JobSpec) -> JobSpec:
        queue.remove(job)
        self._seen.pop(job.id, None)
        return job


def job_checkpoints(job: JobSpec) -> set[str]:
    """Ids of the Stable-diffusion checkpoints a job uses (the models it loads)."""
    return {entry["id"] for entry in job.models.get("Stable-diffusion", [])}


def main_checkpoint(job: JobSpec) -> str | None:
    """The id of the checkpoint whose UNet the job samples with (the first one named); None for a job without one."""
    entries = job.models.get("Stable-diffusion", []) if job.models else []
    return entries[0]["id"] if entries else None


def batch_key(job: JobSpec) -> tuple[str | None, int]:
    """(key, latent pixels): jobs with equal keys differ only in what a row of a UNet batch carries (prompts,
    seeds, CFG, batch size, n_iter); None for a job that always runs alone."""
    if job.task != "txt2img" or job.payload_string is None:
        return None, 0
    try:
        payload = json.loads(job.payload_string)
    except ValueError:  # the worker reports the bad payload on the job
        return None, 0
    if not isinstance(payload, dict) or any(payload.get(name) for name in ALONE_FIELDS):
        return None, 0
    shared = {k: v for k, v in payload.items() if k not in PER_JOB and k != "batch_size"}
    networks = sorted({tag for p in PROMPTS for tag in EXTRA_NETWORK.findall(str(payload.get(p) or ""))})
    key = json.dumps([shared, networks, job.models], sort_keys=True, default=str)
    return key, latent_pixels(payload)


def latent_pixels(payload: dict[str, Any]) -> int:
    """Latent pixels the job's rows hold at its largest pass (the hires pass when enabled)."""
    try:
        width, height = float(payload.get("width") or 512), float(payload.get("height") or 512)
        rows = max(int(payload.get("batch_size") or 1), 1)
        if payload.get("enable_hr"):
            width, height = hires_size(payload, width, height)
    except (TypeError, ValueError, ZeroDivisionError):  # the worker refuses the value by name
        return 0
    return int(width // LATENT_SIDE) * int(height // LATENT_SIDE) * rows


def hires_size(payload: dict[str, Any], width: float, height: float) -> tuple[float, float]:
    """The hires pass's size as the WebUI derives it: hr_resize_x/y (one of them 0: the aspect kept), else hr_scale."""
    x, y = int(payload.get("hr_resize_x") or 0), int(payload.get("hr_resize_y") or 0)
    if x and y:
        return x, y
    if x:
        return x, height * x / width
    if y:
        return width * y / height, y
    scale = float(payload.get("hr_scale") or 2.0)
    return width * scale, height * scale
