"""The Ray engine: each endpoint is a Ray Serve application whose replicas run our worker code.

Ray Serve owns the replicas: it places them (one GPU each, or CPU where the cluster has none), scales
them between the endpoint's min and max, and replaces dead ones. This engine dispatches each job
through a streaming deployment handle from a thread of its own, retries a job once when its replica
dies, and polls `serve.status()` for readiness and instance counts. A job names its checkpoint to Serve's
router (model affinity), and a replica runs its queued compatible jobs as one batch, as a local instance
does. Everything it keeps in memory can be rebuilt from Ray and the database, so several API replicas
may share one cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from openesd.execution._batching import main_checkpoint
from openesd.execution._ray_apps import DEPLOYMENT, app_name, endpoint_deployment, live_replicas, running_replicas
from openesd.execution._ray_merge import RayMergeRunner
from openesd.execution._ray_training import RayTrainingRunner
from openesd.execution.base import EndpointSpec, EventOutbox, JobSpec, MergeSpec, TrainingSpec
from openesd.execution.events import (
    EndpointFailed,
    EndpointReady,
    EngineConsumers,
    InstancesChanged,
    JobCancelled,
    JobFailed,
    JobLoading,
    JobProgress,
    JobStarted,
    JobSucceeded,
    ReplicaOfJob,
)
from openesd.execution.local import capacity_table
from openesd.settings import Settings

log = logging.getLogger("openesd.execution.ray")
WATCH_S = 0.25


@dataclass
class _Endpoint:
    """An endpoint this process deployed or dispatched to; `spec` is None when another API replica
    deployed it (it is then known only by its Ray application)."""

    id: str
    spec: EndpointSpec | None = None
    handle: Any = None
    seen: bool = False  # its application has been in Ray's status
    deploying: bool = False  # this process is deploying it: calls wait in `pending` until it exists
    pending: list[_Job] = field(default_factory=list)
    ready: bool = False
    failed: bool = False
    reported_count: int = -1
    starting_since: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.id


@dataclass
class _Job:
    spec: JobSpec
    response: Any = None  # the streaming response, cancelled when the job ends from this side
    worker_pid: int | None = None
    worker_actor: str | None = None
    started_at: float | None = None
    step: int = 0  # model calls reported so far


class RayEngine:
    def __init__(self, url: str, settings: Settings, events: EngineConsumers):
        import ray
        from ray import serve

        self._settings = settings
        self._values = settings.model_dump(mode="json")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            # `ray`: the Ray node on this machine (`ray start`), else a new local instance.
            ray.init(
                address=url if url.startswith("ray://") else None, logging_level=logging.WARNING, log_to_driver=False
            )
        serve.start(proxy_location="Disabled")  # jobs arrive through handles only
        self._endpoints: dict[str, _Endpoint] = {}
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.RLock()
        self._outbox = EventOutbox(events)
        self._closed = threading.Event()
        # Trainings are Ray actors owned by this process: they end with it, as local trainer processes do.
        self._trainings = RayTrainingRunner(self._values, events.trainings)
        # Merges are Ray tasks; one left unfinished at close runs again on the next start (its record says so).
        self._merges = RayMergeRunner(self._values, events.merges)
        self._watcher = threading.Thread(target=self._watch, name="openesd-ray-watch", daemon=True)
        self._watcher.start()

    # -- Engine ------------------------------------------------------------------------------------
    def deploy(self, endpoint: EndpointSpec) -> None:
        with self._lock:
            known = self._endpoints.get(endpoint.id)
            if known is not None and known.spec is not None:
                return
            self._endpoints[endpoint.id] = _Endpoint(endpoint.id, endpoint, deploying=True)
        threading.Thread(target=self._run_app, args=(endpoint,), name="openesd-ray-deploy", daemon=True).start()

    def undeploy(self, endpoint_id: str) -> None:
        from ray import serve

        self._forget(endpoint_id)
        serve.delete(app_name(endpoint_id))

    def submit(self, job: JobSpec) -> None:
        endpoint = self._endpoint(job.endpoint_id)
        if endpoint is None or endpoint.failed:
            name = endpoint.name if endpoint is not None else job.endpoint_id
            self._outbox.emit(JobFailed(job.id, f"endpoint {name} is not running; create a new endpoint"))
            return
        with self._lock:  # calls are made in submit order, and Serve queues them in that order
            if job.id in self._jobs:
                return
            tracked = self._jobs[job.id] = _Job(job)
            if endpoint.deploying:
                endpoint.pending.append(tracked)
            else:
                self._call(endpoint, tracked)

    def cancel(self, job_id: str) -> None:
        """Cancel the Serve call: a queued call never runs, a running one closes the replica's generator,
        which tells the job's thread to stop (`_ray_replica`). Its last word cannot come back through a
        cancelled call, so JobCancelled is reported from here."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return
        with self._lock:
            for endpoint in self._endpoints.values():
                if job in endpoint.pending:
                    endpoint.pending.remove(job)
        self._finish(job, JobCancelled(job_id, job.step))
        _cancel(job)

    def instance_count(self, endpoint_id: str) -> int:
        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is not None and endpoint.failed:
                return 0
        app = self._applications().get(app_name(endpoint_id))
        return live_replicas(app) if app is not None else 0

    def capacity(self) -> dict[str, int]:
        return capacity_table(_cluster_gpus(), self._settings)

    def submit_training(self, training: TrainingSpec) -> None:
        self._trainings.submit(training)

    def stop_training(self, training_id: str) -> None:
        self._trainings.stop(training_id)

    def submit_merge(self, merge: MergeSpec) -> None:
        self._merges.submit(merge)

    def close(self) -> None:
        """Stop watching and dispatching; the Serve applications keep running for the other API replicas
        (the jobs this process was carrying stay queued in the database and are re-dispatched on start)."""
        import ray

        self._trainings.close()
        self._merges.close()
        self._closed.set()
        self._watcher.join(5.0)
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            _cancel(job)
        self._outbox.close()
        if self._owns_ray:
            ray.shutdown()

    # -- deploying and watching --------------------------------------------------------------------
    def _run_app(self, endpoint: EndpointSpec) -> None:
        from ray import serve

        app = self._applications().get(app_name(endpoint.id))
        # An application already there was deployed by another API replica, or by this one before a restart.
        if app is None or app.status == "DELETING":
            gpus = _cluster_gpus()  # asked at each deploy: GPU nodes may join after this process started
            application = endpoint_deployment(endpoint, self._settings, gpus).bind(
                self._values, "cuda" if gpus else "cpu", list(endpoint.preload)
            )
            try:  # returns once the application runs (its first replicas are up)
                serve.run(application, name=app_name(endpoint.id), route_prefix=None)
            except Exception as error:  # DEPLOY_FAILED; the watcher usually reports it first
                self._fail_endpoint(endpoint.id, f"{type(error).__name__}: {error}")
        with self._lock:
            known = self._endpoints.get(endpoint.id)
            if known is None:
                return
            known.deploying, pending, known.pending = False, known.pending, []
            for job in pending:
                if self._jobs.get(job.spec.id) is job:
                    self._call(known, job)

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_S):
            try:
                applications = self._applications()
                with self._lock:
                    endpoints = [e for e in self._endpoints.values() if not e.failed]
                for endpoint in endpoints:
                    app = applications.get(app_name(endpoint.id))
                    if app is not None:
                        endpoint.seen = True
                        self._observe(endpoint, app)
                    elif endpoint.seen:  # another API replica deleted it
                        self._forget(endpoint.id)
                self._enforce_deadline()
            except Exception:  # the watcher must outlive any one bad poll
                log.exception("watching the Ray applications failed")

    def _observe(self, endpoint: _Endpoint, app: Any) -> None:
        count, now = live_replicas(app), time.monotonic()
        if app.status == "DEPLOY_FAILED" and not endpoint.ready:
            self._fail_endpoint(endpoint.id, app.message or "Ray Serve could not start the endpoint's replicas")
            return
        if not endpoint.ready and running_replicas(app):
            endpoint.ready = True
            self._outbox.emit(EndpointReady(endpoint.id))
        elif not endpoint.ready and count:
            endpoint.starting_since = endpoint.starting_since or now
            limit = self._settings.worker_start_timeout_s
            if now - endpoint.starting_since > limit:
                self._fail_endpoint(endpoint.id, f"the worker did not load its runtime within {limit:g} s")
                return
        if count != endpoint.reported_count and (count or endpoint.reported_count >= 0):
            endpoint.reported_count = count
            self._outbox.emit(InstancesChanged(endpoint.id, count))

    def _forget(self, endpoint_id: str) -> None:
        """The endpoint is deleted: its jobs fail saying so."""
        with self._lock:
            endpoint = self._endpoints.pop(endpoint_id, None) or _Endpoint(endpoint_id)
            jobs = self._take_jobs(endpoint_id)
        for job in jobs:
            self._outbox.emit(JobFailed(job.spec.id, f"endpoint {endpoint.name} was deleted before the job finished"))

    def _fail_endpoint(self, endpoint_id: str, error: str) -> None:
        from ray import serve

        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None or endpoint.failed:
                return
            endpoint.failed = True
            jobs = self._take_jobs(endpoint_id)
        self._outbox.emit(EndpointFailed(endpoint_id, error))
        for job in jobs:
            self._outbox.emit(JobFailed(job.spec.id, f"endpoint {endpoint.name} failed: {error}"))
        threading.Thread(target=serve.delete, args=(app_name(endpoint_id),), daemon=True).start()

    def _enforce_deadline(self) -> None:
        import ray

        deadline, now = self._settings.job_deadline_s, time.monotonic()
        with self._lock:
            late = [j for j in self._jobs.values() if j.started_at is not None and now - j.started_at > deadline]
            for job in late:
                self._jobs.pop(job.spec.id)
        for job in late:
            _cancel(job)
            self._outbox.emit(
                JobFailed(job.spec.id, f"the job ran longer than the deadline of {deadline:g} s and was stopped")
            )
            if job.worker_actor is None:
                continue  # the replica never said who it is: ray.get_actor would refuse the None anyway
            try:  # the replica is busy with it for good: Serve replaces a killed one
                ray.kill(ray.get_actor(job.worker_actor, namespace="serve"))
            except (ValueError, TypeError):
                pass

    # -- dispatching -------------------------------------------------------------------------------
    def _dispatch(self, job: _Job) -> None:
        """Run the job to its end; a replica death sends it once more, then fails it saying why."""
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import DeploymentUnavailableError, RequestCancelledError

        while True:
            try:
                for message in job.response:
                    if not self._handle(job, message):
                        return
                self._ended_without_result(job)
                return
            except RequestCancelledError:
                return
            except DeploymentUnavailableError:  # deleted (by another API replica) while queued
                self._finish_deleted(job)
                return
            except RayActorError as error:
                if not self._retry(job, error):
                    return
            except Exception as error:
                log.exception("dispatching job %s failed", job.spec.id)
                self._finish(
                    job, JobFailed(job.spec.id, f"the engine could not run the job: {type(error).__name__}: {error}")
                )
                return

    def _call(self, endpoint: _Endpoint, job: _Job) -> None:
        """Send the job to the endpoint's replicas (Serve queues it) and follow it from a thread of its own."""
        job.response = _send(endpoint, job.spec)
        threading.Thread(
            target=self._dispatch, args=(job,), name=f"openesd-ray-job-{job.spec.id[:8]}", daemon=True
        ).start()

    def _handle(self, job: _Job, message: object) -> bool:
        """Report one of the replica's messages; False once the job has ended."""
        match message:
            case ReplicaOfJob(pid=pid, actor_name=actor):
                job.worker_pid, job.worker_actor = pid, actor
            case JobStarted():
                job.started_at = time.monotonic()
                self._outbox.emit(JobStarted(job.spec.id, job.spec.attempt))
            case JobProgress(step=step):
                job.step = step
                self._outbox.emit(message)
            case JobLoading():
                self._outbox.emit(message)
            case JobSucceeded() | JobFailed() | JobCancelled():
                self._finish(job, message)
                return False
        return True

    def _retry(self, job: _Job, error: Exception) -> bool:
        if job.spec.id not in self._jobs:
            return False
        endpoint = self._endpoint(job.spec.endpoint_id)
        if endpoint is None or app_name(job.spec.endpoint_id) not in self._applications():
            self._finish_deleted(job)
            return False
        job.spec.attempt += 1
        if job.spec.attempt >= 2:
            self._finish(
                job, JobFailed(job.spec.id, f"the worker process running this job died twice ({type(error).__name__})")
            )
            return False
        log.warning("the replica running job %s died (%s); retrying it", job.spec.id, type(error).__name__)
        job.started_at = job.worker_pid = job.worker_actor = None
        job.response = _send(endpoint, job.spec)
        return True

    def _finish_deleted(self, job: _Job) -> None:
        with self._lock:
            known = self._endpoints.get(job.spec.endpoint_id)
        name = known.name if known is not None else job.spec.endpoint_id
        self._finish(job, JobFailed(job.spec.id, f"endpoint {name} was deleted before the job finished"))

    def _ended_without_result(self, job: _Job) -> None:
        self._finish(job, JobFailed(job.spec.id, "the worker ended the job without a result"))

    def _finish(self, job: _Job, event: JobSucceeded | JobFailed | JobCancelled) -> None:
        """Report the job's one terminal event, unless something else (undeploy, deadline) ended it first."""
        with self._lock:
            if self._jobs.get(job.spec.id) is not job:
                return
            del self._jobs[job.spec.id]
        self._outbox.emit(event)

    # -- helpers -----------------------------------------------------------------------------------
    def _endpoint(self, endpoint_id: str) -> _Endpoint | None:
        """This process's record of the endpoint, made from Ray's when another API replica deployed it."""
        from ray import serve

        with self._lock:
            endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            app = self._applications().get(app_name(endpoint_id))
            if app is None or app.status == "DELETING":
                return None
            with self._lock:
                endpoint = self._endpoints.setdefault(endpoint_id, _Endpoint(endpoint_id))
        if endpoint.handle is None:  # one handle per endpoint: each handle is a router of its own
            # Not checked: right after deploy() the application may not exist yet; calls wait for it.
            endpoint.handle = serve.get_deployment_handle(
                DEPLOYMENT, app_name(endpoint_id), _check_exists=False
            ).options(stream=True)
        return endpoint

    def _take_jobs(self, endpoint_id: str) -> list[_Job]:
        jobs = [j for j in self._jobs.values() if j.spec.endpoint_id == endpoint_id]
        for job in jobs:
            del self._jobs[job.spec.id]
            _cancel(job)
        return jobs

    @staticmethod
    def _applications() -> dict[str, Any]:
        from ray import serve

        return serve.status().applications


def _cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def _send(endpoint: _Endpoint, job: JobSpec) -> Any:
    """Call the endpoint's replicas with a copy of the job (a retry bumps `attempt`). Its checkpoint goes as the
    multiplexed model id: Serve's router prefers a replica holding it (model affinity), so jobs on one checkpoint
    meet on one replica, which batches the compatible ones (`_ray_replica`)."""
    checkpoint = main_checkpoint(job)
    handle = endpoint.handle.options(multiplexed_model_id=checkpoint) if checkpoint else endpoint.handle
    return handle.run.remote(replace(job))


def _cancel(job: _Job) -> None:
    if job.response is not None:
        job.response.cancel()
