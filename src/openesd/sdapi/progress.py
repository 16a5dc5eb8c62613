"""`/progress`, `/interrupt` and `/skip` of the WebUI API: the caller's newest unfinished job stands for the
WebUI's one running task. Progress comes from the job's row (its reporter's steps, ETA and live preview);
an interrupt is the job's cancel."""

from __future__ import annotations

import base64
from typing import Any

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.inferences.service import InferenceService
from openesd.metadata.models import InferenceJob
from openesd.sdapi.repository import WebUIRepository
from openesd.storage.layout import job_preview


class WebUIProgress:
    def __init__(self, repository: WebUIRepository, inferences: InferenceService, access: Access):
        self.repository = repository
        self.inferences = inferences
        self.access = access

    def progress(self, caller: Principal, skip_current_image: bool) -> dict[str, Any]:
        """A1111's ProgressResponse for the caller's newest unfinished job; all zero when none runs."""
        job = self.repository.latest_unfinished(caller.username)
        if job is None:
            idle = {"progress": 0.0, "eta_relative": 0.0, "state": _state(None, 0)}
            return idle | {"current_image": None, "textinfo": None}
        progress = job.progress or {}
        step, total = progress.get("step") or 0, progress.get("total_steps") or 0
        image = None if skip_current_image else self._preview(job)
        return {
            "progress": round(step / total, 4) if total else 0.0,
            "eta_relative": float(progress.get("eta_seconds") or 0.0),
            "state": _state(job, self.repository.unfinished_count(caller.username)),
            "current_image": image,
            "textinfo": progress.get("phase"),
        }

    def interrupt(self, caller: Principal) -> dict[str, Any]:
        """Cancel the caller's newest unfinished job (nothing to do when none runs, as in the WebUI)."""
        job = self.repository.latest_unfinished(caller.username)
        if job is not None:
            self.inferences.cancel(job.id, self.access, caller.username)
        return {}

    def _preview(self, job: InferenceJob) -> str | None:
        if not (job.progress or {}).get("preview_key"):
            return None
        store = self.inferences.store
        if store.stat(job_preview(job.id)) is None:
            return None
        return base64.b64encode(store.get_bytes(job_preview(job.id))).decode()


def _state(job: InferenceJob | None, count: int) -> dict[str, Any]:
    """A1111's `state` snapshot, with the job's id where the WebUI has its task's."""
    progress = (job.progress or {}) if job is not None else {}
    return {
        "skipped": False,
        "interrupted": bool(job is not None and job.cancelled_by),
        "stopping_generation": False,
        "job": job.id if job is not None else "",
        "job_count": count,
        "job_timestamp": job.create_time if job is not None else "0",
        "job_no": 0,
        "sampling_step": progress.get("step") or 0,
        "sampling_steps": progress.get("total_steps") or 0,
    }
