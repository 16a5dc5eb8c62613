"""`PUT /inferences/{id}/cancel` and the queue position, on both databases, with an engine that runs nothing:
the tests report what a worker would through the real reporter (the real worker: test_cancel_running.py)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.api.conftest import make_client  # noqa: F401  (shared fixture)
from tests.auth.conftest import Team, team  # noqa: F401  (shared fixture)
from tests.auth.test_strict_ownership import live_endpoint, new_job
from tests.auth.conftest import lora_file
from tests.inferences.test_leases import replica, start_job  # noqa: F401  (shared fixture)
from tests.inferences.test_rules import created, esd, message  # noqa: F401  (shared fixture)


def cancel(esd, job_id: str, user: str = "api"):
    return esd.put(f"/prod/inferences/{job_id}/cancel", user=user)


def job(esd, job_id: str) -> dict:
    return esd.get(f"/prod/inferences/{job_id}").json()["data"]


def started(esd) -> str:
    job_id = created(esd, payload_string="{}")  # one call: created and started
    assert job(esd, job_id)["status"] == "inprogress"
    return job_id


def test_a_created_job_is_cancelled_at_once_and_never_starts(esd):
    job_id = created(esd)
    answer = cancel(esd, job_id)
    assert answer.status_code == 200, answer.json()
    data = answer.json()["data"]
    assert (data["status"], data["sagemakerRaw"], data["cancelled_by"]) == ("cancelled", "cancelled by api", "api")
    assert job(esd, job_id)["status"] == "cancelled"
    refused = esd.put(f"/prod/inferences/{job_id}/start", user="api")
    assert message(refused) == f"InferenceJobId {job_id} was cancelled by api: create a new job to run it again"
    assert esd.engine.submitted == []


def test_a_queued_job_is_dropped_from_its_queue_and_never_runs(esd):
    job_id = started(esd)
    answer = cancel(esd, job_id)
    assert answer.status_code == 202, answer.json()  # the engine stops it once the cancel is committed
    assert answer.json()["data"]["cancelled_by"] == "api"
    assert esd.engine.cancelled == [job_id] and esd.engine.submitted == []
    view = job(esd, job_id)
    assert (view["status"], view["sagemakerRaw"]) == ("cancelled", "cancelled by api")
    assert view["progress"] == {"phase": "cancelled", "step": 0, "total_steps": None, "eta_seconds": None}
    esd.engine.reporter.job_succeeded(job_id, {"images": []})  # a late report of the worker changes nothing
    assert job(esd, job_id)["status"] == "cancelled"


def test_a_job_carried_by_another_replica_is_cancelled_through_its_row(esd):
    """The engine here does not carry the job: the replica that does reads the request at its next report."""
    job_id = started(esd)
    esd.engine.submitted.clear()  # as if another API replica's engine held it
    reporter, asked = esd.engine.reporter, []
    reporter.cancel_requested = asked.append
    reporter.job_started(job_id, 0)
    reporter.job_progress(job_id, 2, 10)
    assert asked == []
    assert cancel(esd, job_id, user="api").status_code == 202
    assert job(esd, job_id)["status"] == "inprogress"  # until the worker stops
    reporter.job_progress(job_id, 10, 10)  # the last step is always written: the carrier learns of the cancel
    assert asked == [job_id]
    reporter.job_cancelled(job_id, 3)
    view = job(esd, job_id)
    assert (view["status"], view["sagemakerRaw"]) == ("cancelled", "cancelled by api")
    assert (view["progress"]["step"], view["progress"]["total_steps"]) == (3, 10)


def test_a_finished_job_cannot_be_cancelled(esd):
    failed_id, succeeded_id, cancelled_id = started(esd), started(esd), created(esd)
    esd.engine.reporter.job_failed(failed_id, "boom")
    esd.engine.reporter.job_started(succeeded_id, 0)
    esd.engine.submitted.clear()
    esd.engine.reporter.job_succeeded(succeeded_id, {"images": [b"png"]})
    assert cancel(esd, cancelled_id).status_code == 200
    for job_id, status in ((failed_id, "failed"), (succeeded_id, "succeed"), (cancelled_id, "cancelled")):
        assert job(esd, job_id)["status"] == status
        assert message(cancel(esd, job_id)) == (
            f"inference job {job_id} has already ended with status {status}: "
            "only a created, queued or running job can be cancelled"
        )
    unknown = cancel(esd, "nope")
    assert (unknown.status_code, unknown.json()["message"]) == (404, "inference with id nope not found")


def test_cancel_needs_inference_all(esd):
    from tests.api.test_roles import make_role, make_user

    make_role(esd, "creators", ["inference:create"])
    make_user(esd, "cat", ["creators"])
    assert message(cancel(esd, created(esd), user="cat")) == "User cat has no permissions: ['inference:all']"


def test_legacy_views_and_listing_filter(esd):
    cancelled_id, waiting_id = created(esd), created(esd)
    cancel(esd, cancelled_id)

    def listed(**params) -> list[str]:
        answer = esd.get("/prod/inferences", params=params)
        assert answer.status_code == 200, answer.json()
        return [j["InferenceJobId"] for j in answer.json()["data"]["inferences"]]

    assert listed(status="cancelled") == [cancelled_id]
    assert listed(status="created") == [waiting_id]
    assert listed() == [waiting_id, cancelled_id]
    assert message(esd.get("/prod/inferences", params={"status": "done"})) == (
        "status done should be one of created, inprogress, succeed, failed, cancelled"
    )
    legacy = esd.get("/inference/get-inference-job", params={"jobID": cancelled_id}).json()
    assert (legacy["status"], legacy["sagemakerRaw"]) == ("failed", "cancelled by api")  # legacy clients know no more
    listed_legacy = {j["InferenceJobId"]: j["status"] for j in esd.get("/inference/list-inference-jobs").json()}
    assert listed_legacy == {cancelled_id: "failed", waiting_id: "created"}


def test_queue_position_of_waiting_jobs(esd):
    first, second, third = started(esd), started(esd), started(esd)
    endpoint_id = esd.engine.submitted[0].endpoint_id
    esd.engine.reporter.instances_changed(endpoint_id, 1)

    def place(job_id: str) -> tuple:
        progress = job(esd, job_id)["progress"]
        return progress["phase"], progress.get("queue_position"), progress.get("instances")

    assert [place(j) for j in (first, second, third)] == [("queued", n, 1) for n in (1, 2, 3)]
    esd.engine.reporter.job_started(first, 0)  # a worker took the first: the others move up
    assert [place(j) for j in (first, second, third)] == [("loading", None, None), ("queued", 1, 1), ("queued", 2, 1)]
    esd.engine.submitted.clear()  # the cancel goes through the row: the job still waits, but is no longer ahead
    cancel(esd, second)
    assert place(third) == ("queued", 1, 1)


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_someone_elses_job_answers_as_reading_it(team: Team, who: str):
    team.alice.upload("a.safetensors", lora_file())
    job_id = new_job(team.alice, live_endpoint(team.alice, "team-a"))["id"]
    other = getattr(team, who)
    read, cancelled = other.get(f"/prod/inferences/{job_id}"), other.put(f"/prod/inferences/{job_id}/cancel")
    assert (
        (cancelled.status_code, cancelled.json())
        == (read.status_code, read.json())
        == (
            404,
            {"statusCode": 404, "message": f"inference with id {job_id} not found"},
        )
    )
    assert team.alice.get(f"/prod/inferences/{job_id}").json()["data"]["status"] == "created"
    answer = team.root.put(f"/prod/inferences/{job_id}/cancel")  # an administrator may
    assert answer.json()["data"]["sagemakerRaw"] == "cancelled by root"


def test_a_cancel_asked_on_one_replica_stops_the_job_another_replica_carries(replica):
    a, b = replica(), replica()
    job_id = start_job(a)
    a.engine.reporter.cancel_requested = a.engine.cancel  # as Runtime.execution wires its engine
    answer = b.put(f"/prod/inferences/{job_id}/cancel", user="api")
    assert answer.status_code == 202 and b.engine.cancelled == [job_id]  # b's engine does not carry it
    a.engine.reporter.job_started(job_id, 0)  # a's worker reports: a reads the request from the row
    assert a.engine.cancelled == [job_id]
    view = b.get(f"/prod/inferences/{job_id}").json()["data"]
    assert (view["status"], view["sagemakerRaw"]) == ("cancelled", "cancelled by api")


def test_a_cancelled_job_whose_replica_died_is_not_dispatched_again(replica):
    a = replica(job_lease_s=0.3)
    job_id = start_job(a)
    a.runtime._leases.stop()  # a crash: no renewals, and nobody stops the job
    a.engine.submitted.clear()
    assert a.put(f"/prod/inferences/{job_id}/cancel", user="api").status_code == 202
    b = replica(job_lease_s=0.3)
    deadline = time.monotonic() + 5
    while (status := b.get(f"/prod/inferences/{job_id}").json()["data"]["status"]) != "cancelled":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert b.dispatched() == []


def test_a_real_time_start_waiting_on_a_job_that_gets_cancelled_answers_400(make_client):
    from tests.checkpoints.conftest import upload_file
    from tests.inferences.test_rules import endpoint
    from tests.support.model_files import model_file_bytes
    from tests.support.no_worker_engine import without_workers

    rt = make_client(realtime_timeout_s=60)
    rt.engine = without_workers(rt, ready=True)
    upload_file(rt, "m.safetensors", model_file_bytes(), 1, "Stable-diffusion")
    endpoint(rt, "rt", endpoint_type="Real-time", assign_to_roles=["rt"])
    job_id = created(rt, inference_type="Real-time", sagemaker_endpoint_name="esd-real-time-rt")
    later = threading.Timer(0.2, lambda: cancel(rt, job_id))
    rt.engine.submit = lambda spec: (rt.engine.submitted.append(spec), later.start())
    answer = rt.put(f"/prod/inferences/{job_id}/start", user="api")  # waits until the cancel ends the job
    later.join()
    assert answer.json() == {"statusCode": 400, "message": "cancelled by api"}
    assert job(rt, job_id)["status"] == "cancelled"
