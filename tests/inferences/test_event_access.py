"""Who may read which events, in strict mode: a job's stream under `GET /inferences/{id}`'s rules, and
`GET /events` with only the requester's jobs (an administrator's with every job)."""

from __future__ import annotations

import threading
import time

from tests.api.conftest import make_client  # noqa: F401  (shared fixture)
from tests.auth.conftest import Member, Team, lora_file, team  # noqa: F401  (shared fixture)
from tests.auth.test_strict_ownership import live_endpoint
from tests.support.live_server import read_events, served


def started_job(member: Member, endpoint: str, lora: str = "a.safetensors") -> str:
    body = {"task_type": "txt2img", "inference_type": "Async", "models": {"Lora": [lora]}}
    answer = member.post("/prod/inferences", json=body | {"sagemaker_endpoint_name": endpoint})
    assert answer.status_code == 201, answer.json()
    job_id = answer.json()["data"]["inference"]["id"]
    assert member.put(f"/prod/inferences/{job_id}/start").status_code == 202
    return job_id


def test_another_users_job_stream_is_the_same_404_as_its_get(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    job_id = started_job(team.alice, live_endpoint(team.alice, "team-a"))
    for path in (f"/prod/inferences/{job_id}", f"/prod/inferences/{job_id}/events"):
        answer = team.bob.get(path)
        assert (answer.status_code, answer.json()["message"]) == (404, f"inference with id {job_id} not found")
    no_token = team.esd.get(f"/prod/inferences/{job_id}/events")
    assert no_token.status_code == 401
    team.esd.engine.reporter.job_failed(job_id, "stopped by the test")  # ended: its stream replays and closes
    mine = team.alice.get(f"/prod/inferences/{job_id}/events")
    assert mine.status_code == 200 and "event: failed" in mine.text


def test_the_per_user_stream_shows_only_the_users_jobs_and_the_admin_sees_all(team: Team):
    team.alice.upload("a.safetensors", lora_file())
    team.bob.upload("b.safetensors", lora_file())
    endpoint_a, endpoint_b = live_endpoint(team.alice, "team-a"), live_endpoint(team.bob, "team-b")
    with served(team.esd.http.app) as base:
        seen: dict[str, list[dict]] = {}

        def listen(member: Member) -> threading.Thread:
            headers = {"Authorization": f"Bearer {member.token}"}
            found = seen.setdefault(member.name, [])
            url = f"{base}/prod/events"
            thread = threading.Thread(
                target=lambda: found.extend(read_events(url, headers, stop=lambda e: len(e) >= expected[member.name]))
            )
            thread.start()
            return thread

        expected = {"alice": 2, "bob": 2, "root": 4}
        readers = [listen(member) for member in (team.alice, team.bob, team.root)]
        time.sleep(0.5)
        job_a = started_job(team.alice, endpoint_a)
        job_b = started_job(team.bob, endpoint_b, "b.safetensors")
        team.esd.engine.reporter.job_failed(job_a, "a")
        team.esd.engine.reporter.job_failed(job_b, "b")
        for reader in readers:
            reader.join(20)
    assert {e["data"]["job_id"] for e in seen["alice"]} == {job_a}
    assert {e["data"]["job_id"] for e in seen["bob"]} == {job_b}
    assert {e["data"]["job_id"] for e in seen["root"]} == {job_a, job_b}
    assert [e["event"] for e in seen["alice"]] == ["queued", "failed"]
