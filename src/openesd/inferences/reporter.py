"""The engine's way back: endpoint and job events written to the tables and the store in short transactions.

Workers never touch the tables; everything they report lands here, in the server process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm import Session, object_session, sessionmaker

from openesd.execution.events import (
    EndpointEvent,
    EndpointFailed,
    EndpointReady,
    InstancesChanged,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobLoading,
    JobProgress,
    JobStarted,
    JobSucceeded,
)
from openesd.inferences.schemas import DIFFUSION_TASKS, TERMINAL
from openesd.jobevents.publish import publish
from openesd.metadata.models import Endpoint, InferenceJob
from openesd.storage.base import ObjectStore
from openesd.storage.layout import job_preview, job_result, job_result_info

if TYPE_CHECKING:
    from openesd.api.metrics import Metrics

log = logging.getLogger("openesd.inferences.reporter")
PROGRESS_WRITE_EVERY_S = 0.5


class JobWaiter:
    """Wakes real-time starts when their job ends; the row stays the truth (checked on every wake)."""

    def __init__(self, make_session: sessionmaker[Session]):
        self._make_session = make_session
        self._done = threading.Condition()

    def notify(self) -> None:
        with self._done:
            self._done.notify_all()

    def wait(self, job_id: str, timeout: float) -> bool:
        """True once the job is terminal (or gone), False when `timeout` passed first."""
        deadline = time.monotonic() + timeout
        # Checked under the condition's lock: a notify between the check and the wait is not lost.
        with self._done:
            while not self._finished(job_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(min(left, 1.0))  # another server process may finish it: look now and then
        return True

    def _finished(self, job_id: str) -> bool:
        with self._make_session() as session:
            job = session.get(InferenceJob, job_id)
            return job is None or job.status in TERMINAL and not job.queued


class EngineReporter:
    """Implements `EndpointEvents` and `JobEvents` of `openesd.execution.events`."""

    def __init__(
        self, make_session: sessionmaker[Session], store: ObjectStore, waiter: JobWaiter, metrics: Metrics | None = None
    ):
        self._make_session = make_session
        self._store = store
        self._waiter = waiter
        self._metrics = metrics
        self._last_progress: dict[str, float] = {}
        # The engine's `cancel`, set once the engine exists (it is built with this reporter): a cancel asked
        # on another API replica reaches this one's engine through the job's row, read at each report.
        self.cancel_requested: Callable[[str], None] | None = None

    # -- endpoints ---------------------------------------------------------------------------------
    def on_endpoint(self, event: EndpointEvent) -> None:
        match event:
            case EndpointReady():
                self.endpoint_ready(event.endpoint_id)
            case EndpointFailed():
                self.endpoint_failed(event.endpoint_id, event.error)
            case InstancesChanged():
                self.instances_changed(event.endpoint_id, event.count)

    def endpoint_ready(self, endpoint_id: str) -> None:
        self._update_endpoint(endpoint_id, endpoint_status="InService", end_time=str(datetime.now()), error=None)

    def endpoint_failed(self, endpoint_id: str, error: str) -> None:
        self._update_endpoint(endpoint_id, endpoint_status="Failed", error=error, current_instance_count=0)

    def instances_changed(self, endpoint_id: str, count: int) -> None:
        self._update_endpoint(endpoint_id, current_instance_count=count)

    def _update_endpoint(self, endpoint_id: str, **values: object) -> None:
        """One UPDATE: an endpoint deleted meanwhile (even between a read and a write) matches no row,
        and the report is dropped instead of failing with StaleDataError."""
        with self._make_session.begin() as session:
            session.execute(update(Endpoint).where(Endpoint.id == endpoint_id).values(**values))

    # -- jobs --------------------------------------------------------------------------------------
    def on_job(self, event: JobEvent) -> None:
        match event:
            case JobStarted():
                self.job_started(event.job_id, event.attempt)
            case JobLoading():
                self.job_loading(event)
            case JobProgress():
                self.job_progress(event.job_id, event.step, event.total, event.preview)
            case JobSucceeded():
                self.job_succeeded(event.job_id, event.result)
            case JobFailed():
                self.job_failed(event.job_id, event.message)
            case JobCancelled():
                self.job_cancelled(event.job_id, event.step)

    def job_started(self, job_id: str, attempt: int) -> None:
        with self._make_session.begin() as session:
            job = self._running(session, job_id)
            if job is not None:
                job.attempts = attempt
                job.progress = {
                    "phase": "loading",
                    "step": 0,
                    "total_steps": None,
                    "eta_seconds": None,
                    "started_at": time.time(),
                }
                publish_job_event(job, "scheduled", {"attempt": attempt, "phase": "loading"})
            cancel = job is not None and job.cancelled_by is not None
        if cancel:
            self._pass_cancel(job_id)

    def job_loading(self, event: JobLoading) -> None:
        """A cold-start phase began or ended: the job's `progress.phase` names it and a `phase` event carries the
        model, its bytes and (at the end) the seconds it took. The ETA counts from the end of the last phase, so
        that a slow load does not stretch the sampling estimate."""
        with self._make_session.begin() as session:
            job = self._running(session, event.job_id)
            if job is None or not job.progress:
                return
            data = {"phase": event.phase, "model": event.model, "bytes": event.bytes, "seconds": event.seconds}
            job.progress = {**job.progress, "phase": event.phase, "model": event.model}
            if event.seconds is not None:
                job.progress = {**job.progress, "started_at": time.time()}
            publish_job_event(job, "phase", data)

    def job_progress(self, job_id: str, step: int, total: int, preview: bytes | None = None) -> None:
        """`preview`: a live preview (JPEG), stored over the last one and named in `progress["preview_key"]`;
        previews are never skipped (the job asked for one every N calls), plain reports at most every 0.5 s."""
        now = time.monotonic()
        if preview is None and step < total and now - self._last_progress.get(job_id, 0.0) < PROGRESS_WRITE_EVERY_S:
            return
        self._last_progress[job_id] = now
        with self._make_session.begin() as session:
            job = self._running(session, job_id)
            if job is None or not job.progress:
                return
            before = job.progress
            elapsed = time.time() - before.get("started_at", time.time())
            eta = round(elapsed / step * (total - step), 1) if step else None
            job.progress = {
                **before,
                "phase": "sampling",
                "step": step,
                "total_steps": total,
                "eta_seconds": eta,
                "stepped_at": time.time(),
            }
            if preview is not None:  # one overwritten object: the latest preview (decisions.md, live previews)
                key = job_preview(job_id)
                self._store.put_bytes(key, preview)
                job.progress = {**job.progress, "preview_key": key, "preview_step": step}
            publish_step(job, before)
            cancel = job.cancelled_by is not None
        if cancel:
            self._pass_cancel(job_id)

    def _pass_cancel(self, job_id: str) -> None:
        """The job's row asks for a cancel (maybe from another API replica): tell the engine carrying it."""
        if self.cancel_requested is not None:
            self.cancel_requested(job_id)

    def job_succeeded(self, job_id: str, result: dict) -> None:
        with self._make_session.begin() as session:
            job = self._running(session, job_id)
            if job is None:
                return
            try:
                names = self._write_results(job, result)
            except Exception as error:  # §8.6: any failure while processing fails the job
                log.exception("storing the results of %s failed", job_id)
                self._finish(job, "failed", raw=f"storing the results failed: {error}")
            else:
                self._finish(job, "succeed", names=names, worker=result.get("worker"))
                keys = [job_result(job.id, name) for name in names]
                for index, key in enumerate(keys):
                    publish_job_event(job, "image", {"index": index, "key": key})
                publish_job_event(job, "succeeded", {"keys": keys, "image_names": names})
        self._waiter.notify()

    def job_cancelled(self, job_id: str, step: int) -> None:
        with self._make_session.begin() as session:
            job = self._running(session, job_id)
            if job is not None:
                self._finish(job, "cancelled", step=step)
        self._waiter.notify()

    def job_failed(self, job_id: str, message: str) -> None:
        with self._make_session.begin() as session:
            job = self._running(session, job_id)
            if job is not None:
                self._finish(job, "failed", raw=message)
        self._waiter.notify()

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _running(session: Session, job_id: str) -> InferenceJob | None:
        """The job if it still waits for a result: deleted or finished jobs ignore late reports."""
        job = session.get(InferenceJob, job_id, with_for_update=True)
        return job if job is not None and job.queued else None

    def _finish(
        self,
        job: InferenceJob,
        status: str,
        *,
        names: list[str] | None = None,
        raw: str | None = None,
        worker: dict | None = None,
        step: int | None = None,
    ) -> None:
        self._last_progress.pop(job.id, None)
        if self._metrics is not None:
            endpoint = job.params.get("sagemaker_inference_endpoint_name") or ""
            self._metrics.job_finished(endpoint, status, _seconds_since(job.start_time), worker)
        if status == "cancelled":
            mark_cancelled(job, step)
            return
        job.status, job.queued, job.progress = status, False, None
        if status == "succeed":
            job.complete_time = str(datetime.now())
            job.image_names, job.inference_info_name = names, f"/tmp/{job.id}_param.json"
        else:
            job.sagemaker_raw = raw
            publish_job_event(job, "failed", {"message": raw})

    def _write_results(self, job: InferenceJob, result: dict) -> list[str]:
        """§8.6: images under `out/<id>/result/`, keyed by job id so that a retry overwrites."""
        images = result.get("images") or []
        if job.task_type in DIFFUSION_TASKS or (job.task_type == "extra-batch-images" and images):
            # A batch keeps each of its images (ESD names only the single-image tasks' one `image.png`).
            names = [f"image_{n}.png" for n in range(len(images))]
        elif images:
            names, images = ["image.png"], images[:1]
        else:
            raise ValueError(f"the worker returned no image for {job.task_type}")
        for name, data in zip(names, images, strict=True):
            # Kept as the worker's PNG: decisions.md wants the A1111 `parameters` chunk in results.
            self._store.put_bytes(job_result(job.id, name), data)
        info = {key: result.get(key) for key in ("parameters", "html_info", "info") if result.get(key) is not None}
        info |= {"endpoint_name": job.params.get("sagemaker_inference_endpoint_name"), "inference_id": job.id}
        self._store.put_bytes(job_result_info(job.id), json.dumps(info, default=str).encode())
        return names


def mark_cancelled(job: InferenceJob, step: int | None = None) -> None:
    """The one place a job becomes `cancelled` (a waiting job by the service, a running one by the reporter);
    `step`: the model calls it ran, kept in `progress` so the user sees where it stopped."""
    total = (job.progress or {}).get("total_steps")
    job.status, job.queued = "cancelled", False
    job.progress = {"phase": "cancelled", "step": step or 0, "total_steps": total, "eta_seconds": None}
    job.complete_time = str(datetime.now())
    job.sagemaker_raw = f"cancelled by {job.cancelled_by or 'the server'}"
    publish_job_event(job, "cancelled", {"by": job.cancelled_by, "step": step or 0, "total": total})


def publish_job_event(job: InferenceJob, kind: str, data: dict[str, Any]) -> int:
    """An event of `job` in the transaction that changes the job's row (decisions.md, Jobs: live events)."""
    session = object_session(job)
    if session is None:
        raise ValueError(f"inference job {job.id} is not in a session: its event would not be committed with it")
    return publish(session, job_kind="inference", job_id=job.id, owner=job.owner, kind=kind, data=data)


def publish_step(job: InferenceJob, before: dict[str, Any]) -> None:
    """The `step` event of a progress write (ETA, it/s since the previous write) and, when the job's preview
    changed (`progress.preview_key`, written by the preview code), a `preview` event. `before`: the progress
    as it was before this write."""
    now = job.progress or {}
    step, previous = now.get("step") or 0, before.get("step") or 0
    since = (now.get("stepped_at") or 0.0) - (before.get("stepped_at") or before.get("started_at") or 0.0)
    rate = round((step - previous) / since, 2) if step > previous and since > 0 else None
    data = {"step": step, "total": now.get("total_steps"), "eta_seconds": now.get("eta_seconds"), "its_per_s": rate}
    preview = now.get("preview_key")
    if preview:
        data["preview_key"] = preview
    publish_job_event(job, "step", data)
    # `preview_published`: the key and step of the last preview event. The worker's preview is one overwritten
    # object, so a new one is told by its step (`preview_step`) as well as its key: each gets one event.
    marker = f"{preview}@{now.get('preview_step')}" if now.get("preview_step") is not None else preview
    if preview and marker != before.get("preview_published"):
        publish_job_event(job, "preview", {"step": now.get("preview_step", step), "preview_key": preview})
        job.progress = {**now, "preview_published": marker}


def _seconds_since(start_time: str | None) -> float:
    """Seconds since the job's `startTime` (a local `str(datetime.now())`); 0 when it has none."""
    try:
        return (datetime.now() - datetime.fromisoformat(start_time)).total_seconds() if start_time else 0.0
    except ValueError:
        return 0.0
