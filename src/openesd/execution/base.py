"""What an execution backend offers the services (`Engine`) and how it reports back (`EngineConsumers`)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Protocol, TypedDict

from openesd.execution.events import (
    EndpointEvent,
    EngineConsumers,
    EngineEvent,
    JobEvent,
    MergeEvent,
    TrainingEvent,
)

log = logging.getLogger("openesd.execution")


@dataclass
class EndpointSpec:
    """An endpoint as the engine needs it: who it is and how many instances it may run."""

    id: str
    name: str
    endpoint_type: str  # "Async" | "Real-time"
    initial: int
    min: int
    max: int
    autoscaling: bool
    # Checkpoints every instance loads before it reports ready (OpenESD's `preload_models`).
    preload: list[ModelFile] = field(default_factory=list)


class ModelFile(TypedDict):
    """One model file a worker fetches; `key` is its object-store key, None for a virtual model (VAE `Automatic`)."""

    id: str
    model_name: str
    key: str | None


@dataclass
class JobSpec:
    """One job as it crosses to a worker: plain values only (it is pickled to the worker)."""

    id: str
    endpoint_id: str
    task: str
    param_key: str
    payload_string: str | None = None
    # ESD checkpoint type -> the files of that type the job uses.
    models: dict[str, list[ModelFile]] = field(default_factory=dict)
    attempt: int = 0
    preview_every: int = 0  # a live preview every N model calls (0: none); OpenESD's `preview_every`


@dataclass
class TrainingSpec:
    """One LoRA training as it crosses to its worker process: plain values only."""

    id: str
    instance_type: str
    model_type: str  # fm_type: "sd_1_5" | "sd_xl"
    model: ModelFile  # the base checkpoint file
    dataset_prefix: str  # `dataset/<name>/`: every object under it is the kohya dataset folder
    config: dict[str, Any]  # the kohya tables (template merged with config_params)
    output_prefix: str  # `kohya/train/<id>/output`
    checkpoint_folder: str  # the output Lora checkpoint's folder; files are copied there too


@dataclass(frozen=True)
class MergeSpec:
    """One model merge (the legacy `run-model-merge`) as it crosses to its worker: object-store keys of
    the inputs and of the output, and the WebUI merger's options; plain values only."""

    checkpoint_id: str  # the output checkpoint, `Initial` until the merge reports
    output_key: str
    primary_key: str
    secondary_key: str | None
    tertiary_key: str | None
    vae_key: str | None
    interp_method: str
    multiplier: float
    save_as_half: bool
    discard_weights: str
    metadata: dict[str, str]


def report(deliver: Callable[[Any], None], event: EngineEvent) -> None:
    """Hand one event to `deliver` (a consumer's method); its errors are logged, never raised into the engine."""
    try:
        deliver(event)
    except Exception:
        log.exception("reporting %s of %s failed", type(event).__name__, _subject(event))


def _subject(event: EngineEvent) -> str:
    match event:
        case EndpointEvent():
            return event.endpoint_id
        case JobEvent():
            return event.job_id
        case TrainingEvent():
            return event.training_id
        case MergeEvent():
            return event.checkpoint_id


class EventOutbox:
    """Events reported in order on a thread of their own, so that a slow report (a database write)
    never holds up the engine thread that noticed it."""

    def __init__(self, consumers: EngineConsumers):
        self._consumers = consumers
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="openesd-engine-events")

    def emit(self, event: EngineEvent) -> None:
        self._thread.submit(report, self._consumers.deliver, event)

    def close(self) -> None:
        """Report what is queued, then stop."""
        self._thread.shutdown(wait=True)


class Engine(Protocol):
    """Runs endpoints' instances and the jobs queued on them."""

    def deploy(self, endpoint: EndpointSpec) -> None:
        """Start the endpoint's instances; readiness comes back as EndpointEvents."""

    def undeploy(self, endpoint_id: str) -> None:
        """Stop the endpoint's instances; its queued jobs are dropped."""

    def submit(self, job: JobSpec) -> None:
        """Queue a committed job on its endpoint."""

    def cancel(self, job_id: str) -> None:
        """Stop the job: a queued one is dropped, a running one stops at its next model call; either reports
        JobCancelled. A job this engine does not carry is left alone (another API replica carries it)."""

    def instance_count(self, endpoint_id: str) -> int:
        """Live instances of the endpoint (0 when unknown)."""

    def capacity(self) -> dict[str, int]:
        """Default quota per instance type, from what the engine sees (GPUs or CPU)."""

    def submit_training(self, training: TrainingSpec) -> None:
        """Run a committed training on its own worker process; progress comes back as TrainingEvents."""

    def stop_training(self, training_id: str) -> None:
        """Ask a running training to stop (it reports `TrainingStopped`); unknown ids report it at once."""

    def submit_merge(self, merge: MergeSpec) -> None:
        """Run a committed model merge off the API's threads, one at a time; its end comes back as a MergeEvent."""

    def close(self) -> None:
        """Stop every instance."""
