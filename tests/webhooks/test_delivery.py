"""Webhook deliveries on both databases: signed bodies that the SDK helper verifies, the events filter,
retries on a clock the test moves, redirects left unfollowed, and one attempt per delivery across replicas."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from openesd.client import Client
from openesd.client.webhooks import HEADER, WebhookVerificationError, verify
from openesd.webhooks.dispatcher import GIVE_UP_AFTER_S, WebhookDispatcher
from openesd.webhooks.service import on_event
from tests.api.conftest import API_KEY
from tests.inferences.test_rules import SD, created, png
from tests.webhooks.conftest import Receiver


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def runtime(esd):
    return esd.http.app.state.runtime


def dispatcher(esd, clock: Clock) -> WebhookDispatcher:
    return runtime(esd).webhook_dispatcher(clock=clock)


def job_with_webhook(esd, receiver: Receiver, events: list[str] | None = None) -> str:
    webhook = {"url": receiver.url} | ({"events": events} if events is not None else {})
    return created(esd, payload_string="{}", webhook=webhook)  # created and queued in one call


def deliveries(esd, job_id: str) -> list[dict]:
    return esd.get(f"/prod/inferences/{job_id}").json()["data"]["webhook"]["deliveries"]


def secret(esd) -> str:
    return esd.get("/prod/users/me/webhook-secret", user="api").json()["data"]["secret"]


def test_deliveries_are_signed_and_only_the_chosen_events_are_sent(esd, receiver):
    job_id = job_with_webhook(esd, receiver, events=["step", "succeeded"])
    reporter = esd.engine.reporter
    reporter.job_started(job_id, 1)  # `scheduled`: not chosen
    reporter.job_progress(job_id, 3, 3)
    reporter.job_succeeded(job_id, {"images": [png()]})
    clock = Clock()
    assert dispatcher(esd, clock).run_once() == 2
    assert [r.event["type"] for r in receiver.received] == ["step", "succeeded"]
    key = secret(esd)
    for got in receiver.received:
        event = verify(key, got.headers[HEADER], got.body)
        assert event["data"]["job_id"] == job_id and event["data"]["job_kind"] == "inference"
        assert got.headers["OpenESD-Delivery"] == event["id"]
    last = receiver.received[-1]
    assert last.event["data"]["image_names"] == ["image_0.png"]
    # The delivery carries the event stream's data (timings vary: masked).
    assert receiver.received[0].event["data"] | {"eta_seconds": None, "its_per_s": None} == {
        "job_kind": "inference",
        "job_id": job_id,
        "step": 3,
        "total": 3,
        "eta_seconds": None,
        "its_per_s": None,
    }
    with pytest.raises(WebhookVerificationError, match="no v1 signature"):
        verify(key + "x", last.headers[HEADER], last.body)
    with pytest.raises(WebhookVerificationError, match="more than 300"):
        verify(key, last.headers[HEADER], last.body, now=clock.now + 301)
    with pytest.raises(WebhookVerificationError, match="no v1 signature"):
        verify(key, last.headers[HEADER], last.body.replace(b"image_0", b"image_1"))
    listed = deliveries(esd, job_id)
    assert [(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in listed] == [
        ("step", "delivered", 1, 200),
        ("succeeded", "delivered", 1, 200),
    ]


def test_the_default_events_are_the_ends_and_a_cancel_is_one(esd, receiver):
    job_id = job_with_webhook(esd, receiver)
    esd.engine.reporter.job_started(job_id, 1)
    esd.engine.reporter.job_progress(job_id, 1, 1)
    assert esd.put(f"/prod/inferences/{job_id}/cancel", user="api").status_code == 202
    esd.engine.reporter.job_cancelled(job_id, 1)
    dispatcher(esd, Clock()).run_once()
    assert [r.event["type"] for r in receiver.received] == ["cancelled"]
    assert receiver.received[0].event["data"]["by"] == "api"


def test_a_failing_receiver_is_retried_with_doubling_delays(esd, receiver):
    receiver.answers = [(500, {}), (503, {}), (200, {})]
    job_id = job_with_webhook(esd, receiver)
    esd.engine.reporter.job_failed(job_id, "boom")
    clock = Clock()
    hooks = dispatcher(esd, clock)
    start = clock.now
    made = []
    for offset in (0, 5, 10, 29, 30, 31):  # 10 s after the first failure, 20 s after the second
        clock.now = start + offset
        made.append(hooks.run_once())
    assert made == [1, 0, 1, 0, 1, 0]
    (delivery,) = deliveries(esd, job_id)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 3, 200)
    assert [r.event["id"] for r in receiver.received] == [delivery["id"]] * 3  # the same event each time
    assert receiver.received[0].event["data"]["message"] == "boom"


def test_a_delivery_is_given_up_24_hours_after_its_event(esd, receiver):
    receiver.answers = [(500, {})]
    job_id = job_with_webhook(esd, receiver)
    esd.engine.reporter.job_failed(job_id, "boom")
    clock = Clock()
    hooks = dispatcher(esd, clock)
    hooks.run_once()
    (delivery,) = deliveries(esd, job_id)
    assert delivery["status"] == "pending" and delivery["next_attempt_at"] == pytest.approx(clock.now + 10)
    assert delivery["last_error"] == "HTTP 500"
    clock.now += GIVE_UP_AFTER_S - 5  # its retry, 20 s later, would fall after the 24 h
    assert hooks.run_once() == 1
    (delivery,) = deliveries(esd, job_id)
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("failed", 2, None)
    clock.now += 3600
    assert hooks.run_once() == 0


def test_a_redirect_is_not_followed(esd, receiver):
    receiver.answers = [(302, {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"})]
    job_id = job_with_webhook(esd, receiver)
    esd.engine.reporter.job_failed(job_id, "boom")
    dispatcher(esd, Clock()).run_once()
    assert [r.path for r in receiver.received] == ["/hook"]
    (delivery,) = deliveries(esd, job_id)
    assert (delivery["status"], delivery["last_status_code"]) == ("pending", 302)
    assert delivery["last_error"] == f"redirect to http://127.0.0.1:{receiver.port}/elsewhere not followed"


def test_two_replicas_never_make_the_same_attempt(esd, receiver):
    receiver.delay_s = 0.01
    job_id = job_with_webhook(esd, receiver, events=["step"])
    make_session = runtime(esd).sessionmaker
    with make_session.begin() as session:
        for step in range(30):
            on_event(session, "inference", job_id, "api", "step", {"step": step, "total": 30})
    clock, cipher = Clock(), runtime(esd).password_cipher
    replicas = [WebhookDispatcher(make_session, cipher, name, allow_private=True, clock=clock) for name in ("a", "b")]
    made: list[int] = []

    def run(replica: WebhookDispatcher) -> None:  # as its thread would, until nothing is left for it
        while attempts := replica.run_once():
            made.append(attempts)

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [r.event["id"] for r in receiver.received]
    assert len(set(ids)) == 30 and len(ids) == 30 and sum(made) == 30  # every delivery, none twice
    assert {d["status"] for d in deliveries(esd, job_id)} == {"delivered"}


def test_the_secret_is_kept_until_rotated(esd):
    first = secret(esd)
    assert first.startswith("whsec_") and secret(esd) == first
    rotated = esd.post("/prod/users/me/webhook-secret", user="api")
    assert rotated.status_code == 201
    assert rotated.json()["data"]["secret"] not in (first, None) and secret(esd) == rotated.json()["data"]["secret"]


def test_the_sdk_sets_a_webhook_and_reads_the_secret_that_verifies_it(esd, receiver):
    def forward(request: httpx.Request) -> httpx.Response:
        answer = esd.http.request(request.method, str(request.url), headers=request.headers, content=request.read())
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    sdk = Client("http://testserver/prod", API_KEY, username="api", transport=httpx.MockTransport(forward))
    started = sdk.inferences.create("txt2img", SD, payload={}, webhook={"url": receiver.url, "events": ["failed"]})
    job_id = started["inference"]["inference_id"]
    esd.engine.reporter.job_failed(job_id, "boom")
    dispatcher(esd, Clock()).run_once()
    got = receiver.received[0]
    assert verify(sdk.webhook_secret.get(), got.headers[HEADER], got.body)["data"]["message"] == "boom"
    sdk.webhook_secret.rotate()
    with pytest.raises(WebhookVerificationError):
        verify(sdk.webhook_secret.get(), got.headers[HEADER], got.body)


def test_a_deleted_job_takes_its_pending_deliveries_with_it(esd, receiver):
    job_id = job_with_webhook(esd, receiver)
    esd.engine.reporter.job_failed(job_id, "boom")
    answer = esd.delete("/prod/inferences", user="api", json={"inference_id_list": [job_id]})
    assert answer.status_code == 204, answer.text
    assert dispatcher(esd, Clock()).run_once() == 0 and receiver.received == []
