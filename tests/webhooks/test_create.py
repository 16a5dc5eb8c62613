"""`webhook` at `POST /inferences`: a URL a delivery must never reach is refused with 400 naming it."""

from __future__ import annotations

import pytest

from tests.checkpoints.conftest import upload_file
from tests.inferences.test_rules import create, endpoint, message
from tests.support.model_files import model_file_bytes
from tests.support.no_worker_engine import without_workers


@pytest.fixture
def strict_lan(make_client):
    """The default: private webhooks off."""
    client = make_client(webhook_poll_s=0)
    client.engine = without_workers(client, ready=True)
    upload_file(client, "m.safetensors", model_file_bytes(), 1, "Stable-diffusion")
    endpoint(client)
    return client


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1:9/hook", "non-public address 127.0.0.1"),
        ("http://10.1.2.3/hook", "non-public address 10.1.2.3"),
        ("https://169.254.169.254/latest/meta-data", "non-public address 169.254.169.254"),
        ("http://[::ffff:192.168.0.1]/hook", "which carries the IPv4 address 192.168.0.1"),
        ("https://user:secret@93.184.216.34/hook", "carries credentials"),
        ("ftp://93.184.216.34/hook", "is not an http(s) URL"),
    ],
)
def test_a_webhook_no_delivery_may_reach_is_refused(strict_lan, url, named):
    answer = create(strict_lan, webhook={"url": url})
    text = message(answer)
    assert answer.status_code == 400 and url in text and named in text, text
    assert strict_lan.get("/prod/inferences", user="api").json()["data"]["inferences"] == []


def test_a_private_webhook_names_the_setting(strict_lan):
    text = message(create(strict_lan, webhook={"url": "http://127.0.0.1:9/hook"}))
    assert "OPENESD_ALLOW_PRIVATE_WEBHOOKS=true" in text


def test_unknown_events_are_refused_by_name(strict_lan):
    answer = create(strict_lan, webhook={"url": "https://93.184.216.34/hook", "events": ["finished"]})
    assert answer.status_code == 400 and "finished" in message(answer)


def test_a_public_webhook_is_kept_on_the_job(strict_lan):
    answer = create(strict_lan, webhook={"url": "https://93.184.216.34/hook"})
    assert answer.status_code == 201, answer.json()
    job_id = answer.json()["data"]["inference"]["id"]
    webhook = strict_lan.get(f"/prod/inferences/{job_id}").json()["data"]["webhook"]
    assert webhook == {
        "url": "https://93.184.216.34/hook",
        "events": ["succeeded", "failed", "cancelled"],
        "deliveries": [],
    }
