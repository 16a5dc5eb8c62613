"""One endpoint's instances (worker processes) and its job queue, as the local engine sees them."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from openesd.execution._batching import job_checkpoints
from openesd.execution.base import EndpointSpec, JobSpec, ModelFile
from openesd.execution.events import StopInstance

_SPAWN = multiprocessing.get_context("spawn")
# os.environ is process-wide: hold this while a child is spawned with its own CUDA_VISIBLE_DEVICES.
_ENV_LOCK = threading.Lock()


@dataclass
class Instance:
    process: Any
    conn: Any
    gpu: int | None
    started_at: float = field(default_factory=time.monotonic)
    ready: bool = False
    error: str | None = None
    jobs: list[JobSpec] = field(default_factory=list)  # running: one job, or a batch of compatible ones
    job_since: float = 0.0
    stopping: bool = False
    # Ids of the checkpoints its model cache has held (preloaded, or loaded by a job): model-affinity routing.
    checkpoints: set[str] = field(default_factory=set)

    @property
    def job(self) -> JobSpec | None:
        return self.jobs[0] if self.jobs else None

    @property
    def busy(self) -> bool:
        return bool(self.jobs)


def spawn_instance(
    settings_values: dict[str, Any], gpu: int | None, preload: list[ModelFile] | None = None
) -> Instance:
    """Start one worker process, pinned to `gpu` (or to the CPU when None), loading `preload` before it is ready."""
    from openesd.execution import _endpoint_process

    parent, child = _SPAWN.Pipe()
    device = "cuda" if gpu is not None else "cpu"
    process = _SPAWN.Process(
        target=_endpoint_process.main,
        args=(child, settings_values, device, list(preload or [])),
        name="openesd-worker",
        daemon=True,
    )
    start_pinned(process, gpu)
    child.close()
    return Instance(process, parent, gpu)


def warmest(idle: list[Instance], job: JobSpec) -> Instance:
    """The idle instance to run `job`: one that already holds the job's checkpoint, else the first one."""
    wanted = job_checkpoints(job)
    if wanted:
        for instance in idle:
            if wanted & instance.checkpoints:
                return instance
    return idle[0]


def start_pinned(process: Any, gpu: int | None) -> None:
    """Start a spawned process that sees only `gpu` (none: no GPU). The child's CUDA_VISIBLE_DEVICES is
    set through this process's environment, so every start goes through one lock."""
    with _ENV_LOCK:
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
        try:
            process.start()
        finally:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved


def stop_instance(instance: Instance) -> None:
    """Ask politely, then kill: a stopped endpoint must not keep a GPU busy."""
    instance.stopping = True
    try:
        instance.conn.send(StopInstance())
    except (OSError, ValueError):
        pass
    instance.process.join(1.0)
    if instance.process.is_alive():
        instance.process.kill()
        instance.process.join(5.0)
    instance.conn.close()


@dataclass
class Pool:
    spec: EndpointSpec
    instances: list[Instance] = field(default_factory=list)
    queue: deque[JobSpec] = field(default_factory=deque)
    ever_ready: bool = False
    failed: bool = False
    start_failures: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    reported_count: int = -1

    @property
    def floor(self) -> int:
        """Instances kept even when idle: min with autoscaling, initial without; real-time keeps one."""
        floor = self.spec.min if self.spec.autoscaling else self.spec.initial
        return max(floor, 1) if self.spec.endpoint_type == "Real-time" else floor

    @property
    def ceiling(self) -> int:
        return max(self.spec.max, self.spec.initial, 1) if self.spec.autoscaling else max(self.spec.initial, 1)

    def busy_count(self) -> int:
        return sum(1 for i in self.instances if i.busy)

    def running_jobs(self) -> int:
        """Jobs in the instances' hands: a batch counts each of its jobs (the scale-out backlog)."""
        return sum(len(i.jobs) for i in self.instances)

    def starting(self) -> bool:
        return any(not i.ready for i in self.instances)

    def idle_ready(self) -> list[Instance]:
        return [i for i in self.instances if i.ready and not i.busy]
