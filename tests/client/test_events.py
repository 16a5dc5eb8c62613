"""`client.inferences.events` and `wait_for` on the live stream, against the real app served over HTTP (both
databases, an engine that runs nothing: the test reports what a worker would)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from openesd.client import Client
from tests.api.conftest import API_KEY, make_client  # noqa: F401  (shared fixture)
from tests.inferences.conftest import ready  # noqa: F401  (shared fixture)
from tests.inferences.test_events import every_progress_written, run_job  # noqa: F401  (shared fixture)
from tests.inferences.test_rules import created, esd  # noqa: F401  (shared fixture)
from tests.support.live_server import served

EXPECTED = ["queued", "scheduled", "step", "step", "step", "image", "image", "succeeded"]


def later(action, delay: float = 0.5) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()))
    thread.start()
    return thread


class DropOnce(httpx.BaseTransport):
    """Real HTTP, but the first event stream breaks after `keep` frames, as a dropped connection does."""

    def __init__(self, keep: int):
        self._real, self.keep, self.resumed_from = httpx.HTTPTransport(), keep, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._real.handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.resumed_from.append(request.headers.get("last-event-id"))
        if len(self.resumed_from) > 1:
            return response
        return httpx.Response(response.status_code, headers=response.headers, stream=self._cut(response))

    def _cut(self, response: httpx.Response):
        keep = self.keep

        class Cut(httpx.SyncByteStream):
            def __iter__(self):
                frames = 0
                for chunk in response.stream:
                    yield chunk
                    frames += chunk.count(b"\nevent: ")
                    if frames >= keep:
                        response.close()
                        raise httpx.ReadError("connection dropped")

        return Cut()


def test_the_iterator_follows_a_job_and_resumes_after_a_drop(esd):
    job_id = created(esd, payload_string="{}")
    with served(esd.http.app) as base:
        dropping = DropOnce(keep=3)
        with Client(f"{base}/prod", API_KEY, transport=dropping) as sdk:
            worker = later(lambda: run_job(esd.engine.reporter, job_id))
            events = list(sdk.inferences.events(job_id))
            worker.join()
    assert [event.kind for event in events] == EXPECTED
    assert len({event.id for event in events}) == len(events)
    assert len(dropping.resumed_from) == 2 and dropping.resumed_from[1] is not None
    assert int(dropping.resumed_from[1]) in [event.id for event in events[:4]]


def test_wait_for_follows_the_stream_and_shows_each_step(esd):
    job_id = created(esd, payload_string="{}")
    seen: list[dict] = []
    with served(esd.http.app) as base, Client(f"{base}/prod", API_KEY) as sdk:
        worker = later(lambda: run_job(esd.engine.reporter, job_id))
        job = sdk.inferences.wait_for(job_id, timeout=20, on_update=seen.append)
        worker.join()
    assert job["status"] == "succeed" and job["image_names"] == ["image_0.png", "image_1.png"]
    progress = [record["progress"] for record in seen if "progress" in record]
    assert [p["phase"] for p in progress[:2]] == ["queued", "loading"]
    assert [(p["step"], p["total_steps"]) for p in progress if p["phase"] == "sampling"] == [(1, 3), (2, 3), (3, 3)]
    assert seen[-1]["status"] == "succeed"  # the job's own record ends the display


def test_wait_for_polls_a_server_without_event_routes(esd):
    """An older server answers 404 for `/events`: `wait_for` falls back to polling the job."""
    job_id = created(esd, payload_string="{}")
    asked: list[str] = []

    def old_server(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"message": "Not Found"})
        answer = esd.http.request(request.method, str(request.url), headers=request.headers)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    sdk = Client("http://testserver/prod", API_KEY, transport=httpx.MockTransport(old_server))
    worker = later(lambda: run_job(esd.engine.reporter, job_id), delay=0.2)
    assert sdk.inferences.wait_for(job_id, timeout=20, interval=0.1)["status"] == "succeed"
    worker.join()
    assert asked.count(f"/prod/inferences/{job_id}") >= 2


def test_wait_for_raises_on_a_failed_stream(esd):
    from openesd.client._transport import JobFailed

    job_id = created(esd, payload_string="{}")
    with served(esd.http.app) as base, Client(f"{base}/prod", API_KEY) as sdk:
        worker = later(lambda: esd.engine.reporter.job_failed(job_id, "out of memory"))
        with pytest.raises(JobFailed, match="is failed: out of memory"):
            sdk.inferences.wait_for(job_id, timeout=20)
        worker.join()
