"""`/inferences` (esd-api.md §8): create, upload the payload, start, wait, download results."""

from __future__ import annotations

import json
from typing import Any
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from openesd.client._resource import Resource
from openesd.client._transport import ESDError
from openesd.client._events import JobEvent, follow, wait

DONE, FAILED = {"succeed"}, {"failed", "cancelled"}


@dataclass
class Generation:
    """A finished job and the files its images were saved to (empty when not downloaded)."""

    job: dict
    files: list[Path] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.job.get("InferenceJobId") or self.job.get("inference_id", "")


class Inferences(Resource):
    def list(
        self,
        task_type: str = "txt2img",
        limit: int | None = None,
        username: str | None = None,
        status: str | None = None,
    ) -> list[dict]:
        params = {"type": task_type, "username": username, "limit": 50, "status": status}
        return list(self._cursor("/inferences", "inferences", params, limit))

    def get(self, inference_id: str) -> dict:
        return self._t.call("GET", f"/inferences/{inference_id}")

    def create(
        self,
        task_type: str,
        models: dict[str, list[str]],
        *,
        inference_type: str = "Async",
        endpoint_name: str | None = None,
        payload: dict | None = None,
        webhook: dict | None = None,
    ) -> dict:
        """Without `payload`: the 201 create view (with the upload URL). With it: the start response.
        `webhook`: {url, events} to be POSTed the job's events (verify them with `openesd.client.webhooks.verify`)."""
        body: dict = {"task_type": task_type, "models": models, "inference_type": inference_type}
        if endpoint_name:
            body["sagemaker_endpoint_name"] = endpoint_name
        if webhook is not None:
            body["webhook"] = webhook
        if payload is not None:
            body["payload_string"] = json.dumps(payload)
        return self._t.call("POST", "/inferences", json=body)

    def upload_payload(self, created: dict, payload: dict) -> None:
        self._t.put_object(
            created["inference"]["api_params_s3_upload_url"],
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
        )

    def start(self, inference_id: str) -> dict | None:
        """The start response; None when a real-time start timed out (504) and the job goes on."""
        try:
            return self._t.call("PUT", f"/inferences/{inference_id}/start")
        except ESDError as exc:
            if exc.status == 504:
                return None
            raise

    def cancel(self, inference_id: str) -> dict:
        """Cancel a created, queued or running job: its view, `cancelled` at once for a job that had not
        started, else still running with `cancelled_by` set until its worker stops (`wait_for` then raises)."""
        return self._t.call("PUT", f"/inferences/{inference_id}/cancel")

    def delete(self, inference_ids: list[str]) -> None:
        self._t.call("DELETE", "/inferences", json={"inference_id_list": list(inference_ids)})

    def wait_for(
        self,
        inference_id: str,
        *,
        timeout: float = 1800,
        interval: float = 1.0,
        on_update: Callable[[dict], None] | None = None,
    ) -> dict:
        """Follow the job's live events until it ends (polling every `interval` on a server without them);
        `succeed` returns the job, `failed` or `cancelled` raises JobFailed with the job's message.
        `on_update` gets records shaped like the job's (`status`, `progress`) as steps arrive."""
        return wait(
            self._t,
            f"/inferences/{inference_id}/events",
            lambda: self.get(inference_id),
            record_of=_inference_record,
            done=DONE,
            failed=FAILED,
            state_of=lambda j: j.get("status", ""),
            what=f"inference {inference_id}",
            timeout=timeout,
            interval=interval,
            on_update=on_update,
        )

    def events(self, inference_id: str, last_event_id: int | None = None) -> Iterator[JobEvent]:
        """The job's live events from `last_event_id` on (all stored ones by default), until its terminal
        event; a dropped connection is resumed where it stopped."""
        return follow(self._t, f"/inferences/{inference_id}/events", last_event_id)

    def download(self, job: dict, out_dir: str | Path) -> list[Path]:
        """Save every result image as `<out_dir>/<job id>_<image name>`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        job_id = job["InferenceJobId"]
        names = job.get("image_names") or [f"image_{n}.png" for n in range(len(job.get("img_presigned_urls", [])))]
        files = []
        for name, url in zip(names, job.get("img_presigned_urls", []), strict=False):
            target = out / f"{job_id}_{name}"
            self._t.download(url, target)
            files.append(target)
        return files

    def run(
        self,
        task_type: str,
        payload: dict,
        models: dict[str, list[str]],
        *,
        inference_type: str = "Async",
        endpoint_name: str | None = None,
        wait: bool = True,
        out_dir: str | Path | None = None,
        progress: Callable[[dict], None] | None = None,
        timeout: float = 1800,
        interval: float = 1.0,
    ) -> Generation:
        """Create and start a job, then (with `wait`) follow it to the end and download its images."""
        job_id = self._submit(task_type, payload, models, inference_type, endpoint_name)
        if not wait:
            return Generation({"InferenceJobId": job_id, "status": "inprogress"})
        job = self.wait_for(job_id, timeout=timeout, interval=interval, on_update=progress)
        return Generation(job, self.download(job, out_dir) if out_dir is not None else [])

    def _submit(self, task_type, payload, models, inference_type, endpoint_name) -> str:
        if inference_type != "Real-time":
            started = self.create(
                task_type, models, inference_type=inference_type, endpoint_name=endpoint_name, payload=payload
            )
            return started["inference"]["inference_id"]
        # Real-time: two steps, so that the id is known even when the start answers 504.
        created = self.create(task_type, models, inference_type=inference_type, endpoint_name=endpoint_name)
        self.upload_payload(created, payload)
        self.start(created["inference"]["id"])
        return created["inference"]["id"]


def _inference_record(event: JobEvent) -> dict[str, Any] | None:
    """A job-shaped record for a progress display: queued, scheduled, phase and step events."""
    data = event.data
    if event.kind == "queued":
        progress = {"phase": "queued", "step": 0, "total_steps": None, "eta_seconds": None}
        return {"status": "inprogress", "progress": progress | {"queue_position": data.get("queue_position")}}
    if event.kind == "scheduled":
        return {"status": "inprogress", "progress": {"phase": data.get("phase"), "step": 0, "total_steps": None}}
    if event.kind == "phase":  # a cold start: `downloading <file>`, `loading <file>`
        phase = f"{data.get('phase')} {data.get('model')}"
        return {"status": "inprogress", "progress": {"phase": phase, "step": 0, "total_steps": None}}
    if event.kind == "step":
        progress = {"phase": "sampling", "step": data.get("step"), "total_steps": data.get("total")}
        return {"status": "inprogress", "progress": progress | {"eta_seconds": data.get("eta_seconds")}}
    return None
