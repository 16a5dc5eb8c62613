"""An engine for API tests that starts no worker process, swapped into an app with dependency_overrides."""

from __future__ import annotations

from openesd.api.deps import get_engine
from openesd.execution.base import EndpointSpec, JobSpec, MergeSpec
from openesd.execution.events import JobCancelled
from openesd.inferences.reporter import EngineReporter


class NoWorkerEngine:
    """An engine that starts no process: it records what it is asked and, when `ready`, reports every
    endpoint InService at once through the real reporter. Capacity is the real engine's."""

    def __init__(self, real, reporter: EngineReporter, ready: bool):
        self._real, self.reporter, self.ready = real, reporter, ready
        self.deployed: list[EndpointSpec] = []
        self.undeployed: list[str] = []
        self.submitted: list[JobSpec] = []
        self.stopped_trainings: list[str] = []
        self.merges: list[MergeSpec] = []
        self.cancelled: list[str] = []

    def deploy(self, endpoint: EndpointSpec) -> None:
        self.deployed.append(endpoint)
        if self.ready:
            self.reporter.endpoint_ready(endpoint.id)

    def undeploy(self, endpoint_id: str) -> None:
        self.undeployed.append(endpoint_id)

    def submit(self, job: JobSpec) -> None:
        self.submitted.append(job)

    def cancel(self, job_id: str) -> None:
        """A submitted job is still in this engine's queue: dropped and reported, as the real engines do."""
        self.cancelled.append(job_id)
        if any(job.id == job_id for job in self.submitted):
            self.submitted = [job for job in self.submitted if job.id != job_id]
            self.reporter.on_job(JobCancelled(job_id))

    def stop_training(self, training_id: str) -> None:
        self.stopped_trainings.append(training_id)

    def submit_merge(self, merge: MergeSpec) -> None:
        self.merges.append(merge)

    def instance_count(self, endpoint_id: str) -> int:
        return 0

    def capacity(self) -> dict[str, int]:
        return self._real.capacity()

    def close(self) -> None:
        pass


def without_workers(esd, ready: bool = False) -> NoWorkerEngine:
    """Swap the app's engine for a `NoWorkerEngine` (`app.dependency_overrides`)."""
    runtime = esd.http.app.state.runtime
    reporter = EngineReporter(runtime.sessionmaker, runtime.store, runtime.waiter, runtime.metrics)
    engine = NoWorkerEngine(runtime.execution, reporter, ready)
    esd.http.app.dependency_overrides[get_engine] = lambda: engine
    return engine
