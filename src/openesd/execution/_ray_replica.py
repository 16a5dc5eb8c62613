"""One endpoint instance as a Ray Serve replica: the local instance's job code behind a deployment handle.

The replica loads a Generator once (like `_endpoint_process.main`). Serve hands it up to `batch_max_jobs` calls
at once; each call's job waits on the replica's queue, and one thread takes the first queued job with the queued
jobs compatible with it (`_batching.Batcher`, as the local engine's dispatch does) and runs them with
`_endpoint_process._serve` or `_serve_batch`. The JobEvents those functions send are streamed back to each job's
own caller. Each checkpoint the replica holds is told to Serve as a multiplexed model id, so Serve's router sends
a job to a replica that already holds its checkpoint (model-affinity routing; docs: batching).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from openesd.execution.base import JobSpec, ModelFile
from openesd.execution.events import CancelJob, JobBatch, JobEvent, ReplicaOfJob

log = logging.getLogger("openesd.execution.ray")
_END = object()  # the job's last message was sent
_WAIT_TICK_S = 0.05  # how often a batch that waits to fill (batch_wait_s) looks at the queue again


class _Pipe:
    """One call's end of the job: messages go to the asyncio queue the call's stream yields from (on the
    replica's event loop), and the engine's orders (a CancelJob) come back through `inbox`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def send(self, message: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self.messages.put_nowait, message)
        except RuntimeError:  # the replica is shutting down: nobody listens any more
            pass


class _Run:
    """Stands in for the worker's pipe while one job or one batch runs: each message goes to its job's call,
    and the cancels of all its calls are read as one mailbox (`_endpoint_process.Mailbox`)."""

    def __init__(self, pipes: dict[str, _Pipe]) -> None:
        self._pipes = pipes

    def send(self, message: Any) -> None:
        self._pipes[message.job_id].send(message)

    def poll(self) -> bool:
        return any(not pipe.inbox.empty() for pipe in self._pipes.values())

    def recv(self) -> object:
        for pipe in self._pipes.values():
            try:
                return pipe.inbox.get_nowait()
            except queue.Empty:
                continue
        raise EOFError("no order waiting")

    def end(self) -> None:
        for pipe in self._pipes.values():
            pipe.send(_END)


class EndpointInstance:
    """Serve deployment class; one replica holds one GPU (or runs on the CPU) and runs one job or batch at a time."""

    # Serve awaits an async constructor (mypy knows only plain ones): the preload runs off the replica's event loop.
    async def __init__(  # type: ignore[misc]
        self, settings_values: dict[str, Any], device: str, preload: list[ModelFile] | None = None
    ) -> None:
        from openesd.execution._batching import Batcher
        from openesd.execution._endpoint_process import preload_checkpoints
        from openesd.generation import Generator
        from openesd.generation.models.fastpath import FastPath
        from openesd.settings import Settings
        from openesd.storage import open_store

        settings = Settings(**settings_values)
        self._store = open_store(settings.resolved_object_store_url, settings)
        self._models_dir = settings.data_dir / "cache" / "models"
        self._generator = Generator(device=device, fastpath=FastPath.from_settings(settings))
        self._batcher = Batcher(settings.batch_max_jobs, settings.batch_max_latent_pixels, settings.batch_wait_s)
        self._queue: deque[JobSpec] = deque()
        self._pipes: dict[str, _Pipe] = {}  # the pipe of each queued job
        self._changed = threading.Condition()
        # Serve counts a replica as running once this returns: a warm endpoint's checkpoints load first.
        await asyncio.to_thread(preload_checkpoints, self._generator, self._store, preload or [], self._models_dir)
        for entry in preload or []:
            await self.holds(entry["id"])
        threading.Thread(target=self._work, name="openesd-replica-jobs", daemon=True).start()

    @serve.multiplexed(max_num_models_per_replica=-1)  # type: ignore[untyped-decorator]
    async def holds(self, checkpoint_id: str) -> str:
        """Tells Serve's router that this replica holds (or is loading) the checkpoint; like the local engine's
        `Instance.checkpoints`, every checkpoint it has held is remembered (the model cache may have evicted it)."""
        return checkpoint_id

    async def run(self, job: JobSpec) -> AsyncIterator[ReplicaOfJob | JobEvent]:
        """ReplicaOfJob, then the job's events: JobStarted, JobProgress…, JobSucceeded | JobFailed | JobCancelled."""
        import ray

        yield ReplicaOfJob(os.getpid(), ray.get_runtime_context().get_actor_name())
        checkpoint = serve.get_multiplexed_model_id()
        if checkpoint:  # the job loads it here: the next jobs on it are routed here too
            await self.holds(checkpoint)
        pipe = _Pipe(asyncio.get_running_loop())
        with self._changed:
            self._pipes[job.id] = pipe
            self._queue.append(job)
            self._changed.notify()
        ended = False
        try:
            while (message := await pipe.messages.get()) is not _END:
                yield message
            ended = True
        finally:
            # Async, so that Serve's cancellation of the call (RayEngine.cancel) lands here as CancelledError
            # (a sync generator would be left running). A queued job leaves the queue; a running one stops at
            # its next model call, and the others of its batch go on.
            if not ended:
                self._drop(job, pipe)

    def _drop(self, job: JobSpec, pipe: _Pipe) -> None:
        with self._changed:
            if self._pipes.pop(job.id, None) is not None:
                self._queue.remove(job)
                return
        pipe.inbox.put(CancelJob(job.id))

    def _work(self) -> None:
        """The replica's one runner: the first queued job and the queued jobs compatible with it, one run at a time."""
        while True:
            with self._changed:
                jobs = self._next()
                pipes = {job.id: self._pipes.pop(job.id) for job in jobs}
            try:
                self._serve(jobs, _Run(pipes))
            except Exception:  # the runner must outlive any one run; its calls end without a result
                log.exception("running jobs %s failed", [job.id for job in jobs])

    def _next(self) -> list[JobSpec]:
        """Called holding `_changed`: waits for queued jobs, and for mates while the batch waits to fill."""
        while True:
            while not self._queue:
                self._changed.wait()
            jobs = self._batcher.take(self._queue)
            if jobs:
                return jobs
            self._changed.wait(_WAIT_TICK_S)

    def _serve(self, jobs: list[JobSpec], run: _Run) -> None:
        from openesd.execution._endpoint_process import _serve, _serve_batch

        try:
            if len(jobs) == 1:
                _serve(run, jobs[0], self._generator, self._store, self._models_dir)
            else:
                _serve_batch(run, JobBatch(tuple(jobs)), self._generator, self._store, self._models_dir)
        finally:
            run.end()
