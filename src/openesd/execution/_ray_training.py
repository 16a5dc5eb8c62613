"""Trainings on the Ray engine: each one a Ray actor running `training_runner.main`, followed like a local one.

`RayTrainingRunner` keeps `TrainingRunner`'s bookkeeping (one reader per training, stop, a kill after
the grace period, the events) and starts an actor where the local runner spawns a process: the actor's
`poll` stands in for the pipe, its `stop` for the event the trainer's `should_stop` reads.
"""

from __future__ import annotations

import collections
import queue
import threading
from dataclasses import dataclass
from typing import Any

from openesd.execution.base import TrainingSpec
from openesd.execution.events import TrainingEvent, TrainingEvents
from openesd.execution.training_runner import CPU_TYPES, TrainingRunner, _Run, main

NAMESPACE = "openesd"  # fixed, so that any API replica finds a training's actor by name
POLL_S = 1.0


@dataclass(frozen=True)
class _Closed:
    """The trainer closed its end of the pipe: the last thing `poll` returns."""


_CLOSED = _Closed()


def actor_name(training_id: str) -> str:
    return f"openesd-training-{training_id}"


class _Pipe:
    """The trainer's end of the pipe, inside the actor: what `main` sends waits in a queue for `poll`."""

    def __init__(self, messages: queue.SimpleQueue[TrainingEvent | _Closed]):
        self._messages = messages

    def send(self, message: TrainingEvent) -> None:
        self._messages.put(message)

    def close(self) -> None:
        self._messages.put(_CLOSED)


class TrainerActor:
    """Ray actor class: one training (`training_runner.main`) in a thread of its own, from creation on."""

    def __init__(self, settings_values: dict[str, Any], spec: TrainingSpec, device: str):
        self._messages: queue.SimpleQueue[TrainingEvent | _Closed] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=main,
            name="openesd-trainer",
            daemon=True,
            args=(_Pipe(self._messages), self._stop, settings_values, spec, device),
        )
        self._thread.start()

    def poll(self, timeout: float) -> list[TrainingEvent | _Closed]:
        """What the trainer sent since the last poll (waiting up to `timeout` for it); `_CLOSED` last."""
        try:
            messages = [self._messages.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self._messages.get_nowait())
            except queue.Empty:
                return messages

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """True once the training's thread has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


class _ActorWorker:
    """The engine's side of one training actor, shaped as the runner's process, pipe and stop event."""

    def __init__(self, actor: Any):
        self._actor = actor
        self._buffer: collections.deque[TrainingEvent | _Closed] = collections.deque()
        self._ended = threading.Event()
        self.death: str | None = None

    # the pipe
    def recv(self) -> TrainingEvent:
        """The trainer's next message; EOFError once it closed its end or the actor died."""
        while not self._buffer:
            if self._ended.is_set():
                raise EOFError
            self._buffer.extend(self._call(self._actor.poll.remote(POLL_S)) or [])
        message = self._buffer.popleft()
        if isinstance(message, _Closed):
            self._end()
            raise EOFError
        return message

    def close(self) -> None:
        pass

    # the stop event
    def set(self) -> None:
        self._actor.stop.remote()

    # the process
    def join(self, timeout: float) -> None:
        if not self._ended.is_set() and self._call(self._actor.join.remote(timeout), timeout):
            self._end()

    def is_alive(self) -> bool:
        return not self._ended.is_set()

    def kill(self) -> None:
        self._end()

    def _call(self, ref: Any, timeout: float | None = None) -> Any:
        """The remote call's value; None while the actor waits for resources, and after its death."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            return ray.get(ref, timeout=None if timeout is None else timeout + POLL_S)
        except GetTimeoutError:
            return None
        except RayActorError as error:
            self.death = self.death or type(error).__name__
            self._ended.set()
            return None

    def _end(self) -> None:
        """The training is over: the actor goes, and with it the GPU or CPU it held."""
        import ray

        self._ended.set()
        ray.kill(self._actor, no_restart=True)


class RayTrainingRunner(TrainingRunner):
    """Trainings as Ray actors: `num_gpus=1` for a GPU instance type when the cluster has GPUs, else one CPU."""

    def __init__(self, settings_values: dict[str, Any], events: TrainingEvents):
        super().__init__(settings_values, events, gpus=0)

    def _start(self, spec: TrainingSpec) -> _Run:
        import ray

        gpus = 1 if spec.instance_type not in CPU_TYPES and ray.cluster_resources().get("GPU", 0) else 0
        # Not detached: the actor ends with this API process, as a local trainer does (`fail_interrupted`).
        actor = (
            ray.remote(TrainerActor)
            .options(
                name=actor_name(spec.id),
                namespace=NAMESPACE,
                num_cpus=1,
                num_gpus=gpus,
                max_concurrency=4,
                max_restarts=0,
            )
            .remote(self._values, spec, "cuda" if gpus else "cpu")
        )
        worker = _ActorWorker(actor)
        return _Run(spec, worker, worker, worker, gpu=0 if gpus else None)

    def stop(self, training_id: str) -> None:
        """A training another API replica runs is asked through its actor; that replica reports it."""
        import ray

        with self._lock:
            here = training_id in self._runs
        if not here:
            try:
                ray.get_actor(actor_name(training_id), namespace=NAMESPACE).stop.remote()
                return  # type: ignore[unreachable]  # ray types ActorHandle.__getattr__ (actor methods) as Never
            except ValueError:  # no such actor: the training is not running anywhere
                pass
        super().stop(training_id)

    @staticmethod
    def _lost(run: _Run) -> str:
        return f"the training actor died before it finished ({run.process.death or 'no reason given'})"
