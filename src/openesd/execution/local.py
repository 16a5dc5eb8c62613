"""The local engine: one worker process per endpoint instance on this machine (one GPU each, or CPU).

A supervisor thread owns every pool: it reads the workers' pipes, notices deaths, dispatches queued
jobs, scales pools and enforces the job deadline. Events go out on one ordered thread so that the
reporter's database writes never stall the supervisor.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from multiprocessing.connection import wait

from openesd.execution._batching import Batcher, job_checkpoints
from openesd.execution._pool import Instance, Pool, spawn_instance, stop_instance, warmest
from openesd.execution.base import EndpointSpec, EventOutbox, JobSpec, MergeSpec, TrainingSpec
from openesd.execution.events import (
    CancelJob,
    EndpointFailed,
    EndpointReady,
    EngineConsumers,
    InstanceReady,
    InstancesChanged,
    InstanceStartFailed,
    JobBatch,
    JobCancelled,
    JobFailed,
    JobLoading,
    JobProgress,
    JobStarted,
    JobSucceeded,
)
from openesd.execution.merge_runner import MergeRunner
from openesd.execution.training_runner import TrainingRunner
from openesd.settings import Settings

log = logging.getLogger("openesd.execution.local")
GPU_TYPES = (
    "gpu",
    *(f"ml.g4dn.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge")),
    *(
        f"ml.{f}.{s}"
        for f in ("g5", "g6")
        for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")
    ),
)
TICK_S = 0.1


def visible_gpus() -> int:
    """GPUs this process may use, counted without importing torch (the API runs without it)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    import os

    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    count = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        count = min(count, len([p for p in pinned.split(",") if p.strip()]))
    return count


def capacity_table(gpus: int, settings: Settings) -> dict[str, int]:
    """Default quota per instance type: instances_per_gpu per GPU for every GPU type, or the CPU count
    for every type on a machine (or cluster) without GPUs."""
    per_type = gpus * settings.instances_per_gpu or settings.cpu_instances_per_type
    return {"cpu": settings.cpu_instances_per_type, **{t: per_type for t in GPU_TYPES}}


class LocalEngine:
    def __init__(self, settings: Settings, events: EngineConsumers, gpus: int | None = None):
        self._settings = settings
        self._values = settings.model_dump(mode="json")
        self._gpus = visible_gpus() if gpus is None else gpus
        self._pools: dict[str, Pool] = {}
        self._lock = threading.RLock()
        self._outbox = EventOutbox(events)
        self._closed = threading.Event()
        # A submit wakes the supervisor at once instead of at its next tick (dispatch latency).
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._trainings = TrainingRunner(self._values, events.trainings, self._gpus)
        self._merges = MergeRunner(self._values, events.merges)
        self._batcher = Batcher(settings.batch_max_jobs, settings.batch_max_latent_pixels, settings.batch_wait_s)
        self._thread = threading.Thread(target=self._supervise, name="openesd-engine", daemon=True)
        self._thread.start()

    # -- Engine ------------------------------------------------------------------------------------
    def deploy(self, endpoint: EndpointSpec) -> None:
        with self._lock:
            if endpoint.id not in self._pools:
                self._pools[endpoint.id] = Pool(endpoint)
                for _ in range(max(endpoint.initial, 1 if endpoint.endpoint_type == "Real-time" else 0)):
                    self._start(self._pools[endpoint.id])

    def undeploy(self, endpoint_id: str) -> None:
        with self._lock:
            pool = self._pools.pop(endpoint_id, None)
        if pool is None:
            return
        for job in [*pool.queue, *(job for i in pool.instances for job in i.jobs)]:
            self._outbox.emit(JobFailed(job.id, f"endpoint {pool.spec.name} was deleted before the job finished"))
        for instance in pool.instances:
            stop_instance(instance)

    def submit(self, job: JobSpec) -> None:
        with self._lock:
            pool = self._pools.get(job.endpoint_id)
            if pool is not None and not pool.failed:
                pool.queue.append(job)
                self._wake()
                return
            name = pool.spec.name if pool is not None else job.endpoint_id
        self._outbox.emit(JobFailed(job.id, f"endpoint {name} is not running; create a new endpoint"))

    def cancel(self, job_id: str) -> None:
        with self._lock:
            for pool in self._pools.values():
                queued = next((job for job in pool.queue if job.id == job_id), None)
                if queued is not None:
                    pool.queue.remove(queued)
                    self._outbox.emit(JobCancelled(job_id))
                    return
                running = next((i for i in pool.instances if any(job.id == job_id for job in i.jobs)), None)
                if running is not None:  # the worker reads it at its next model call and reports JobCancelled
                    try:
                        running.conn.send(CancelJob(job_id))
                    except (OSError, ValueError):
                        pass  # the worker died: its death is handled from the process sentinel
                    return

    def instance_count(self, endpoint_id: str) -> int:
        with self._lock:
            pool = self._pools.get(endpoint_id)
            return len(pool.instances) if pool else 0

    def capacity(self) -> dict[str, int]:
        return capacity_table(self._gpus, self._settings)

    def submit_training(self, training: TrainingSpec) -> None:
        self._trainings.submit(training)

    def stop_training(self, training_id: str) -> None:
        self._trainings.stop(training_id)

    def submit_merge(self, merge: MergeSpec) -> None:
        self._merges.submit(merge)

    def close(self) -> None:
        self._trainings.close()
        self._merges.close()
        self._closed.set()
        self._thread.join(5.0)
        self._wake_reader.close()
        self._wake_writer.close()
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            for instance in pool.instances:
                stop_instance(instance)
        self._outbox.close()

    # -- supervisor --------------------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                waitables = [self._wake_reader, *(i.conn for p in self._pools.values() for i in p.instances)]
            wait(waitables, timeout=TICK_S)
            self._drain_wakes()
            try:
                with self._lock:
                    for pool in list(self._pools.values()):
                        self._tick(pool)
            except Exception:  # the supervisor must outlive any one bad tick
                log.exception("engine tick failed")

    def _tick(self, pool: Pool) -> None:
        for instance in list(pool.instances):
            self._read(pool, instance)
        for instance in list(pool.instances):
            if not instance.process.is_alive():
                self._died(pool, instance)
        self._watchdog(pool)
        self._dispatch(pool)
        self._scale(pool)
        count = len(pool.instances)
        if count != pool.reported_count:
            pool.reported_count = count
            self._outbox.emit(InstancesChanged(pool.spec.id, count))

    def _read(self, pool: Pool, instance: Instance) -> None:
        try:
            while instance.conn.poll():
                self._handle(pool, instance, instance.conn.recv())
        except (EOFError, OSError):
            pass  # the death is handled from the process sentinel

    def _handle(self, pool: Pool, instance: Instance, message: object) -> None:
        match message:
            case InstanceReady(checkpoints=checkpoints):
                instance.ready, pool.start_failures = True, 0
                instance.checkpoints.update(checkpoints)
                if not pool.ever_ready:
                    pool.ever_ready = True
                    self._outbox.emit(EndpointReady(pool.spec.id))
            case InstanceStartFailed(error=error):
                instance.error = error
            case JobStarted() | JobLoading() | JobProgress():
                self._outbox.emit(message)
            case JobSucceeded() | JobFailed() | JobCancelled():
                for job in instance.jobs:  # its checkpoint stays in the worker's cache for the next job
                    if job.id == message.job_id:
                        instance.checkpoints.update(job_checkpoints(job))
                instance.jobs = [job for job in instance.jobs if job.id != message.job_id]
                pool.idle_since = time.monotonic()
                self._outbox.emit(message)

    def _died(self, pool: Pool, instance: Instance) -> None:
        pool.instances.remove(instance)
        instance.conn.close()
        code = instance.process.exitcode
        if instance.stopping:
            return
        if not instance.ready:
            self._start_failed(
                pool, instance.error or f"the worker process exited with code {code} before it was ready"
            )
        for job in reversed(instance.jobs):  # each job of a batch is retried (alone or batched again)
            job.attempt += 1
            if job.attempt >= 2:
                self._outbox.emit(
                    JobFailed(job.id, f"the worker process running this job died twice (exit code {code})")
                )
            else:
                log.warning("worker of job %s died (exit code %s); retrying it", job.id, code)
                pool.queue.appendleft(job)

    def _start_failed(self, pool: Pool, error: str) -> None:
        pool.start_failures += 1
        if pool.ever_ready or pool.start_failures < self._settings.worker_start_attempts:
            return
        pool.failed = True
        self._outbox.emit(EndpointFailed(pool.spec.id, error))
        for job in pool.queue:
            self._outbox.emit(JobFailed(job.id, f"endpoint {pool.spec.name} failed: {error}"))
        pool.queue.clear()
        for instance in list(pool.instances):
            stop_instance(instance)
        pool.instances.clear()

    def _watchdog(self, pool: Pool) -> None:
        now, deadline = time.monotonic(), self._settings.job_deadline_s
        for instance in pool.instances:
            if instance.jobs and now - instance.job_since > deadline:
                jobs, instance.jobs = instance.jobs, []
                for job in jobs:
                    self._outbox.emit(
                        JobFailed(job.id, f"the job ran longer than the deadline of {deadline:g} s and was stopped")
                    )
                instance.process.kill()
            elif not instance.ready and now - instance.started_at > self._settings.worker_start_timeout_s:
                instance.error = (
                    f"the worker did not load its runtime within {self._settings.worker_start_timeout_s:g} s"
                )
                instance.process.kill()

    def _dispatch(self, pool: Pool) -> None:
        idle = pool.idle_ready()
        while idle and pool.queue:
            jobs = self._batcher.take(pool.queue)
            if not jobs:  # the first job waits for compatible ones (batch_wait_s)
                return
            instance = warmest(idle, jobs[0])  # model affinity: a job goes where its checkpoint is loaded
            idle.remove(instance)
            try:
                instance.conn.send(jobs[0] if len(jobs) == 1 else JobBatch(tuple(jobs)))
            except (OSError, ValueError):
                pool.queue.extendleft(reversed(jobs))
                continue
            instance.jobs, instance.job_since = jobs, time.monotonic()

    def _scale(self, pool: Pool) -> None:
        if pool.failed:
            return
        count, now = len(pool.instances), time.monotonic()
        if pool.queue or pool.busy_count():
            pool.idle_since = now
        wanted = pool.floor
        if pool.queue and count == 0:
            wanted = max(wanted, 1)
        backlog = (len(pool.queue) + pool.running_jobs()) / max(count, 1)
        if pool.spec.autoscaling and backlog > self._settings.scale_out_backlog and not pool.starting():
            wanted = max(wanted, count + 1)
        wanted = min(max(wanted, count if now - pool.idle_since < self._settings.endpoint_idle_s else 0), pool.ceiling)
        for _ in range(wanted - count):
            self._start(pool)
        for instance in pool.idle_ready()[: max(count - wanted, 0)]:
            pool.instances.remove(instance)
            stop_instance(instance)

    def _start(self, pool: Pool) -> None:
        used = [i.gpu for p in self._pools.values() for i in p.instances if i.gpu is not None]
        gpu = min(range(self._gpus), key=used.count) if self._gpus else None
        pool.instances.append(spawn_instance(self._values, gpu, pool.spec.preload))

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or closing

    def _drain_wakes(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
