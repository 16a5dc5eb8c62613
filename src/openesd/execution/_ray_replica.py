"""One endpoint instance as a Ray Serve replica: the local worker's job code behind a deployment handle.

The replica loads a Generator once (like `_worker.main`) and runs each job with `_worker._serve`; what
that function sends down its pipe is streamed back to the caller as the same plain tuples.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator

_END = ("end",)


class _Pipe:
    """Stands in for the worker's pipe: messages go to a queue the streaming method yields from."""

    def __init__(self):
        self.messages: queue.SimpleQueue[tuple] = queue.SimpleQueue()

    def send(self, message: tuple) -> None:
        self.messages.put(message)


class EndpointInstance:
    """Serve deployment class; one replica holds one GPU (or runs on the CPU) and one job at a time."""

    def __init__(self, settings_values: dict, device: str):
        from openesd.generation import Generator
        from openesd.settings import Settings
        from openesd.storage import open_store

        settings = Settings(**settings_values)
        self._store = open_store(settings.resolved_object_store_url, settings)
        self._models_dir = settings.data_dir / "cache" / "models"
        self._generator = Generator(device=device)

    def run(self, job: dict) -> Iterator[tuple]:
        """("instance", pid), then `_worker`'s messages for the job: started, progress…, done | failed."""
        import ray

        yield ("instance", os.getpid(), ray.get_runtime_context().get_actor_name())
        pipe = _Pipe()
        # Serve runs this generator in a thread of its own; the job runs in another so that every
        # progress message is yielded the moment it is sent.
        threading.Thread(target=self._serve, args=(pipe, job), name=f"openesd-job-{job['id'][:8]}",
                         daemon=True).start()
        while (message := pipe.messages.get()) != _END:
            yield message

    def _serve(self, pipe: _Pipe, job: dict) -> None:
        from openesd.execution._worker import _serve

        try:
            _serve(pipe, job, self._generator, self._store, self._models_dir)
        finally:
            pipe.send(_END)
