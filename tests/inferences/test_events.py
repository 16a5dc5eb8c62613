"""Live job events (`GET /inferences/{id}/events`, `GET /events`) on both databases, with an engine that runs
nothing: the tests report what a worker would through the real reporter, and read the stream over HTTP."""

from __future__ import annotations

import threading
import time

import pytest

from openesd.inferences import reporter as reporter_module
from tests.api.conftest import make_client  # noqa: F401  (shared fixture)
from tests.inferences.test_rules import created, esd, png  # noqa: F401  (shared fixture)
from tests.support.live_server import read_events, served


@pytest.fixture(autouse=True)
def every_progress_written(monkeypatch):
    monkeypatch.setattr(reporter_module, "PROGRESS_WRITE_EVERY_S", 0.0)


def stream_url(base: str, job_id: str) -> str:
    return f"{base}/prod/inferences/{job_id}/events"


def kinds(events: list[dict]) -> list[str]:
    return [event["event"] for event in events]


def run_job(reporter, job_id: str, steps: int = 3) -> None:
    """What a worker reports for a job of `steps` steps, with a pause so the stream is read as it goes."""
    reporter.job_started(job_id, 1)
    for step in range(1, steps + 1):
        time.sleep(0.05)
        reporter.job_progress(job_id, step, steps)
    reporter.job_succeeded(job_id, {"images": [png(), png()], "parameters": "p"})


def follow(base: str, job_id: str, found: list, headers: dict | None = None) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: found.extend(
            read_events(stream_url(base, job_id), {"username": "api", **(headers or {})}, stop=lambda e: False)
        )
    )
    thread.start()
    return thread


def test_a_follower_sees_queued_scheduled_steps_and_succeeded_in_order(esd):
    job_id = created(esd, payload_string="{}")
    with served(esd.http.app) as base:
        found: list[dict] = []
        reader = follow(base, job_id, found)
        time.sleep(0.5)  # connected before the worker reports
        run_job(esd.engine.reporter, job_id)
        reader.join(20)
    assert not reader.is_alive(), "the stream did not end after the terminal event"
    assert kinds(found) == ["queued", "scheduled", "step", "step", "step", "image", "image", "succeeded"]
    ids = [event["id"] for event in found]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert found[0]["data"]["queue_position"] == 1 and found[0]["data"]["instances"] >= 0
    assert found[1]["data"]["attempt"] == 1
    assert [(e["data"]["step"], e["data"]["total"]) for e in found[2:5]] == [(1, 3), (2, 3), (3, 3)]
    assert found[4]["data"]["eta_seconds"] == 0 and found[4]["data"]["its_per_s"] > 0
    assert [e["data"]["index"] for e in found[5:7]] == [0, 1]
    done = found[-1]["data"]
    assert done["image_names"] == ["image_0.png", "image_1.png"]
    view = esd.get(f"/prod/inferences/{job_id}").json()["data"]
    assert [url.split("?")[0] for url in done["urls"]] == [url.split("?")[0] for url in view["img_presigned_urls"]]
    assert esd.http.get(done["urls"][0].replace("http://testserver", "")).content == png()


def test_a_reconnecting_client_gets_exactly_what_it_missed(esd):
    job_id = created(esd, payload_string="{}")
    run_job(esd.engine.reporter, job_id, steps=2)
    everything = read_all(esd, job_id)
    assert kinds(everything) == ["queued", "scheduled", "step", "step", "image", "image", "succeeded"]
    seen = everything[2]["id"]
    by_header = read_all(esd, job_id, headers={"Last-Event-ID": str(seen)})
    by_query = read_all(esd, job_id, query=f"?last_event_id={seen}")
    # URLs are signed when an event is sent: their expiry differs between two reads a second apart.
    assert unsigned(by_header) == unsigned(by_query) == unsigned(everything[3:])
    assert all(e["data"]["url"] for e in by_header if e["event"] == "image")
    bad = esd.get(f"/prod/inferences/{job_id}/events", user="api", headers={"Last-Event-ID": "x"})
    assert (bad.status_code, bad.json()["message"]) == (
        400,
        "Last-Event-ID 'x' should be an event id (a whole number >= 0)",
    )


def unsigned(events: list[dict]) -> list[dict]:
    """The events without their signed URLs (`url`, `urls`, `preview_url`), which carry the time of sending."""
    signed = ("url", "urls", "preview_url")
    return [{**e, "data": {k: v for k, v in e["data"].items() if k not in signed}} for e in events]


def read_all(esd, job_id: str, headers: dict | None = None, query: str = "") -> list[dict]:
    """A finished job's stream through the TestClient: replayed, then ended."""
    import json

    answer = esd.get(f"/prod/inferences/{job_id}/events{query}", user="api", headers=headers)
    assert answer.status_code == 200, answer.text
    frames = [
        dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        for block in answer.text.split("\n\n")
    ]
    return [{"id": int(f["id"]), "event": f["event"], "data": json.loads(f["data"])} for f in frames if "event" in f]


def test_failed_and_cancelled_jobs_end_their_streams_with_the_reason(esd):
    failed, cancelled = created(esd, payload_string="{}"), created(esd, payload_string="{}")
    esd.engine.reporter.job_started(failed, 1)
    esd.engine.reporter.job_failed(failed, "boom")
    assert [(e["event"], e["data"].get("message")) for e in read_all(esd, failed)][-1] == ("failed", "boom")
    assert esd.put(f"/prod/inferences/{cancelled}/cancel", user="api").status_code in (200, 202)
    last = read_all(esd, cancelled)[-1]
    assert (last["event"], last["data"]["by"], last["data"]["step"]) == ("cancelled", "api", 0)


def test_a_preview_key_in_progress_becomes_preview_events_with_signed_urls(esd):
    """The preview code writes `progress.preview_key`; the stream turns it into signed URLs."""
    from openesd.metadata.models import InferenceJob

    job_id = created(esd, payload_string="{}")
    reporter = esd.engine.reporter
    reporter.job_started(job_id, 1)
    make_session = esd.http.app.state.sessionmaker
    for step, key in ((1, "previews/a.png"), (2, "previews/a.png"), (3, "previews/b.png")):
        with make_session.begin() as session:
            job = session.get(InferenceJob, job_id)
            job.progress = {**job.progress, "preview_key": key}
        reporter.job_progress(job_id, step, 4)
    reporter.job_failed(job_id, "stop")
    events = [e for e in read_all(esd, job_id) if e["event"] in ("step", "preview")]
    assert kinds(events) == ["step", "preview", "step", "step", "preview"]
    assert [e["data"]["preview_key"] for e in events if e["event"] == "preview"] == ["previews/a.png", "previews/b.png"]
    assert all("/previews/" in e["data"]["preview_url"] and "?" in e["data"]["preview_url"] for e in events)


def test_each_worker_preview_is_one_preview_event_though_it_overwrites_one_object(esd):
    job_id = created(esd, payload_string="{}")
    reporter = esd.engine.reporter
    reporter.job_started(job_id, 1)
    for step in (1, 2, 3):
        reporter.job_progress(job_id, step, 3, preview=b"\xff\xd8 jpeg " + bytes([step]))
    reporter.job_failed(job_id, "stop")
    previews = [e for e in read_all(esd, job_id) if e["event"] == "preview"]
    assert [e["data"]["step"] for e in previews] == [1, 2, 3]
    assert len({e["data"]["preview_key"] for e in previews}) == 1


def test_an_event_published_through_a_second_replica_reaches_a_client_of_the_first(esd, make_client):
    """Two apps on one database: the job runs on B's engine, the client listens on A."""
    from tests.support.no_worker_engine import without_workers

    replica_b = make_client()  # the test's database again (and its object store)
    assert replica_b.http.app.state.runtime.replica != esd.http.app.state.runtime.replica
    engine_b = without_workers(replica_b, ready=True)
    job_id = created(esd, payload_string="{}")
    with served(esd.http.app) as base:
        found: list[dict] = []
        reader = follow(base, job_id, found)
        time.sleep(0.5)
        started = time.monotonic()
        run_job(engine_b.reporter, job_id, steps=1)
        reader.join(20)
        took = time.monotonic() - started
    assert kinds(found) == ["queued", "scheduled", "step", "image", "image", "succeeded"]
    assert took < 5, took
