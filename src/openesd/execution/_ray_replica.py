"""One endpoint instance as a Ray Serve replica: the local instance's job code behind a deployment handle.

The replica loads a Generator once (like `_endpoint_process.main`) and runs each job with
`_endpoint_process._serve`; the JobEvents that function sends down its pipe are streamed back to the caller.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any

from openesd.execution.base import JobSpec, ModelFile
from openesd.execution.events import CancelJob, JobEvent, ReplicaOfJob

_END = object()  # the job's last message was sent


class _Pipe:
    """Stands in for the worker's pipe: messages go to a queue the streaming method yields from, and the
    engine's orders (a CancelJob) come back through `inbox`."""

    def __init__(self) -> None:
        self.messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def send(self, message: object) -> None:
        self.messages.put(message)

    def poll(self) -> bool:
        return not self.inbox.empty()

    def recv(self) -> object:
        return self.inbox.get_nowait()


class EndpointInstance:
    """Serve deployment class; one replica holds one GPU (or runs on the CPU) and one job at a time."""

    def __init__(self, settings_values: dict[str, Any], device: str, preload: list[ModelFile] | None = None):
        from openesd.execution._endpoint_process import preload_checkpoints
        from openesd.generation import Generator
        from openesd.generation.models.fastpath import FastPath
        from openesd.settings import Settings
        from openesd.storage import open_store

        settings = Settings(**settings_values)
        self._store = open_store(settings.resolved_object_store_url, settings)
        self._models_dir = settings.data_dir / "cache" / "models"
        self._generator = Generator(device=device, fastpath=FastPath.from_settings(settings))
        # Serve counts a replica as running once this returns: a warm endpoint's checkpoints load first.
        preload_checkpoints(self._generator, self._store, preload or [], self._models_dir)

    async def run(self, job: JobSpec) -> AsyncIterator[ReplicaOfJob | JobEvent]:
        """ReplicaOfJob, then the job's events: JobStarted, JobProgress…, JobSucceeded | JobFailed | JobCancelled."""
        import asyncio

        import ray

        yield ReplicaOfJob(os.getpid(), ray.get_runtime_context().get_actor_name())
        pipe = _Pipe()
        # The job runs in a thread of its own so that every progress message is yielded the moment it is sent.
        threading.Thread(target=self._serve, args=(pipe, job), name=f"openesd-job-{job.id[:8]}", daemon=True).start()
        ended = False
        try:
            while (message := await asyncio.to_thread(pipe.messages.get)) is not _END:
                yield message
            ended = True
        finally:
            # Async, so that Serve's cancellation of the call (RayEngine.cancel) lands here as CancelledError
            # (a sync generator would be left running): the job's thread then stops at its next model call,
            # and the replica takes the next job. A waiter left on the queue takes the job's last message.
            if not ended:
                pipe.inbox.put(CancelJob(job.id))

    def _serve(self, pipe: _Pipe, job: JobSpec) -> None:
        from openesd.execution._endpoint_process import _serve

        try:
            _serve(pipe, job, self._generator, self._store, self._models_dir)
        finally:
            pipe.send(_END)
