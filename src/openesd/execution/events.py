"""What crosses between the API and the engine, as types: events an engine reports (one consumer per
family: endpoints, jobs, trainings, merges) and the messages its worker processes exchange with it.

Every type is a plain frozen dataclass at module level: they cross process boundaries by pickling
(multiprocessing pipes, Ray), so this module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


# -- engine -> API: endpoints ----------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointEvent:
    endpoint_id: str


@dataclass(frozen=True)
class EndpointReady(EndpointEvent):
    """The first instance loaded its runtime and answered a health check."""


@dataclass(frozen=True)
class EndpointFailed(EndpointEvent):
    """No instance could start; `error` says why."""

    error: str


@dataclass(frozen=True)
class InstancesChanged(EndpointEvent):
    """The number of live instances changed."""

    count: int


# -- engine -> API: jobs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class JobEvent:
    job_id: str


@dataclass(frozen=True)
class JobStarted(JobEvent):
    """A worker began the job (attempt 0 first, 1 for the retry)."""

    attempt: int


@dataclass(frozen=True)
class JobProgress(JobEvent):
    """Sampling progress of a running job; `preview`: a JPEG of the prediction at this step (live previews)."""

    step: int
    total: int
    preview: bytes | None = None


@dataclass(frozen=True)
class JobLoading(JobEvent):
    """A cold-start phase of a running job: `phase` is `downloading` (a model file from the object store to the
    node) or `loading` (a model file into memory); `model` names the file and `bytes` is its size. Sent twice per
    phase: with `seconds` None when it begins, and with its duration when it ends."""

    phase: str
    model: str
    bytes: int
    seconds: float | None = None


@dataclass(frozen=True)
class JobSucceeded(JobEvent):
    """The worker's result: `images` (PNG bytes), `parameters`, `info`, `html_info`, `worker`."""

    result: dict[str, Any]


@dataclass(frozen=True)
class JobFailed(JobEvent):
    """The job cannot succeed; `message` is shown to the user."""

    message: str


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    """The job stopped because a cancel was asked for; `step` model calls had run (0: it never started)."""

    step: int = 0


# -- engine -> API: trainings ----------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingEvent:
    training_id: str


@dataclass(frozen=True)
class TrainingStatus(TrainingEvent):
    """The training reached a phase: `Downloading`, `Training`, `Uploading`."""

    status: str


@dataclass(frozen=True)
class TrainingProgress(TrainingEvent):
    """step, total_steps, epoch, total_epochs, loss, eta_seconds of a running training."""

    progress: dict[str, Any]


@dataclass(frozen=True)
class TrainingCompleted(TrainingEvent):
    """Stored output `files` (final first) with their `hashes`, `steps`, `warnings`."""

    result: dict[str, Any]


@dataclass(frozen=True)
class TrainingFailed(TrainingEvent):
    """The training cannot finish; `message` is shown to the user."""

    message: str


@dataclass(frozen=True)
class TrainingStopped(TrainingEvent):
    """The training ended early because a stop was asked for."""


# -- engine -> API: model merges -------------------------------------------------------------------
@dataclass(frozen=True)
class MergeEvent:
    checkpoint_id: str  # the merge's output checkpoint


@dataclass(frozen=True)
class MergeSucceeded(MergeEvent):
    """The merged file is stored at `key` (the spec's `output_key`); `sha256` is its hash."""

    key: str
    sha256: str


@dataclass(frozen=True)
class MergeFailed(MergeEvent):
    """The merge cannot finish; `message` is shown to the user."""

    message: str


EngineEvent = EndpointEvent | JobEvent | TrainingEvent | MergeEvent


# -- the consumers ---------------------------------------------------------------------------------
class EndpointEvents(Protocol):
    """Where an engine reports its endpoints' instances."""

    def on_endpoint(self, event: EndpointEvent) -> None:
        """One endpoint event; implementations dispatch on its type."""


class JobEvents(Protocol):
    """Where an engine reports the jobs it runs."""

    def on_job(self, event: JobEvent) -> None:
        """One job event; implementations dispatch on its type."""


class TrainingEvents(Protocol):
    """Where an engine reports the trainings it runs."""

    def on_training(self, event: TrainingEvent) -> None:
        """One training event; implementations dispatch on its type."""


class MergeEvents(Protocol):
    """Where an engine reports the model merges it runs."""

    def on_merge(self, event: MergeEvent) -> None:
        """One merge event; implementations dispatch on its type."""


@dataclass(frozen=True)
class EngineConsumers:
    """The one way an engine changes what users see: each event goes to the consumer of its family."""

    endpoints: EndpointEvents
    jobs: JobEvents
    trainings: TrainingEvents
    merges: MergeEvents

    def deliver(self, event: EngineEvent) -> None:
        match event:
            case EndpointEvent():
                self.endpoints.on_endpoint(event)
            case JobEvent():
                self.jobs.on_job(event)
            case TrainingEvent():
                self.trainings.on_training(event)
            case MergeEvent():
                self.merges.on_merge(event)


# -- engine <-> worker process ---------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceReady:
    """Worker -> engine: the instance loaded its runtime (and its preloaded checkpoints) and takes jobs."""

    pid: int
    checkpoints: tuple[str, ...] = ()  # ids of the checkpoints it loaded before it was ready


@dataclass(frozen=True)
class InstanceStartFailed:
    """Worker -> engine: the instance could not load its runtime; `error` says why."""

    error: str


@dataclass(frozen=True)
class ReplicaOfJob:
    """Ray replica -> engine, first for each job: the process and actor running it."""

    pid: int
    actor_name: str | None  # Ray's answer outside an actor; a Serve replica always has one


@dataclass(frozen=True)
class CancelJob:
    """Engine -> worker, while the job runs: stop it at its next model call and report JobCancelled."""

    job_id: str


@dataclass(frozen=True)
class StopInstance:
    """Engine -> worker: finish now (the instance's job, if any, is dropped)."""


@dataclass(frozen=True)
class JobBatch:
    """Engine -> worker: compatible jobs (execution/_batching.py) to run as one UNet batch; each job is
    started, cancelled and reported on its own, as if it had been sent alone."""

    jobs: tuple[Any, ...]  # JobSpec (base.py imports this module)
