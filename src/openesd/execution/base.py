"""What an execution backend offers the services (`Engine`) and how it reports back (`EngineEvents`)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass
class JobSpec:
    """One job as it crosses to a worker: plain values only (it is serialised to a dict)."""

    id: str
    endpoint_id: str
    task: str
    param_key: str
    payload_string: str | None = None
    # ESD checkpoint type -> [{"id", "model_name", "key"}]; `key` is the file's object-store key.
    models: dict[str, list[dict]] = field(default_factory=dict)
    attempt: int = 0


@dataclass
class TrainingSpec:
    """One LoRA training as it crosses to its worker process: plain values only."""

    id: str
    instance_type: str
    model_type: str  # fm_type: "sd_1_5" | "sd_xl"
    model: dict  # {"id", "model_name", "key"} of the base checkpoint file
    dataset_prefix: str  # `dataset/<name>/`: every object under it is the kohya dataset folder
    config: dict  # the kohya tables (template merged with config_params)
    output_prefix: str  # `kohya/train/<id>/output`
    checkpoint_folder: str  # the output Lora checkpoint's folder; files are copied there too


class EngineEvents(Protocol):
    """The one way an engine changes what users see; implemented by a reporter that owns the tables."""

    def endpoint_ready(self, endpoint_id: str) -> None:
        """The first instance loaded its runtime and answered a health check."""

    def endpoint_failed(self, endpoint_id: str, error: str) -> None:
        """No instance could start; `error` says why."""

    def instances_changed(self, endpoint_id: str, count: int) -> None:
        """The number of live instances changed."""

    def job_started(self, job_id: str, attempt: int) -> None:
        """A worker began the job (attempt 0 first, 1 for the retry)."""

    def job_progress(self, job_id: str, step: int, total: int) -> None:
        """Sampling progress of a running job."""

    def job_succeeded(self, job_id: str, result: dict) -> None:
        """The worker's result: `images` (PNG bytes), `parameters`, `info`, `html_info`."""

    def job_failed(self, job_id: str, message: str) -> None:
        """The job cannot succeed; `message` is shown to the user."""

    def training_status(self, training_id: str, status: str) -> None:
        """The training reached a phase: `Downloading`, `Training`, `Uploading`."""

    def training_progress(self, training_id: str, progress: dict) -> None:
        """step, total_steps, epoch, total_epochs, loss, eta_seconds of a running training."""

    def training_completed(self, training_id: str, result: dict) -> None:
        """Stored output `files` (final first) with their `hashes`, `steps`, `warnings`."""

    def training_failed(self, training_id: str, message: str) -> None:
        """The training cannot finish; `message` is shown to the user."""

    def training_stopped(self, training_id: str) -> None:
        """The training ended early because a stop was asked for."""


def report(events: EngineEvents, event: str, *args: object) -> None:
    """Call one event on the reporter; its errors are logged, never raised into the engine."""
    try:
        getattr(events, event)(*args)
    except Exception:
        log.exception("reporting %s%r failed", event, args[:1])


class EventOutbox:
    """Events reported in order on a thread of their own, so that a slow report (a database write)
    never holds up the engine thread that noticed it."""

    def __init__(self, events: EngineEvents):
        self._events = events
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="openesd-engine-events")

    def emit(self, event: str, *args: object) -> None:
        self._thread.submit(report, self._events, event, *args)

    def close(self) -> None:
        """Report what is queued, then stop."""
        self._thread.shutdown(wait=True)


class Engine(Protocol):
    """Runs endpoints' instances and the jobs queued on them."""

    def deploy(self, endpoint: EndpointSpec) -> None:
        """Start the endpoint's instances; readiness comes back through EngineEvents."""

    def undeploy(self, endpoint_id: str) -> None:
        """Stop the endpoint's instances; its queued jobs are dropped."""

    def submit(self, job: JobSpec) -> None:
        """Queue a committed job on its endpoint."""

    def instance_count(self, endpoint_id: str) -> int:
        """Live instances of the endpoint (0 when unknown)."""

    def capacity(self) -> dict[str, int]:
        """Default quota per instance type, from what the engine sees (GPUs or CPU)."""

    def submit_training(self, training: TrainingSpec) -> None:
        """Run a committed training on its own worker process; progress comes back through EngineEvents."""

    def stop_training(self, training_id: str) -> None:
        """Ask a running training to stop (it reports `training_stopped`); unknown ids report it at once."""

    def close(self) -> None:
        """Stop every instance."""
