"""`webhook` at `POST /trainings`: checked as for inferences, shown on `GET /trainings/{id}`, and a
training's end becomes a delivery."""

from __future__ import annotations

import pytest

from openesd.trainings.reporter import TrainingReporter
from tests.trainings.conftest import engine, trainer, training_body  # noqa: F401  (shared fixtures)
from tests.webhooks.conftest import Receiver


@pytest.fixture
def esd(make_client):
    """`trainer`'s app, with loopback webhooks allowed and no background dispatcher."""
    return make_client(allow_private_webhooks=True, webhook_poll_s=0)


def create(trainer, receiver: Receiver, **webhook):
    body = training_body() | {"webhook": {"url": receiver.url, **webhook}}
    return trainer.post("/prod/trainings", user="api", json=body)


def test_a_training_webhook_hears_the_training_end(trainer, receiver):
    answer = create(trainer, receiver)
    assert answer.status_code == 201, answer.json()
    training_id = answer.json()["data"]["id"]
    app = trainer.http.app
    TrainingReporter(app.state.sessionmaker, app.state.store).training_failed(training_id, "out of memory")
    assert app.state.runtime.webhook_dispatcher().run_once() == 1
    assert receiver.received[0].event["type"] == "failed"
    assert receiver.received[0].event["data"] == {
        "job_kind": "training",
        "job_id": training_id,
        "status": "Failed",
        "message": "out of memory",
    }
    webhook = trainer.get(f"/prod/trainings/{training_id}", user="api").json()["data"]["webhook"]
    assert [(d["event"], d["status"]) for d in webhook["deliveries"]] == [("failed", "delivered")]


def test_a_training_webhook_is_checked_at_create(trainer, receiver):
    answer = create(trainer, receiver, events=["done"])
    assert answer.status_code == 400 and "done" in answer.json()["message"]
