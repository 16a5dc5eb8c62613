"""At-least-once execution: dead workers, restarts of the server, idle scale-in and the job deadline."""

from __future__ import annotations

import os
import signal
import time

from tests.api.conftest import ESDClient
from tests.inferences.conftest import open_app
from tests.support.esd_jobs import create_endpoint, create_job, find_endpoint, wait_endpoint, wait_job
from tests.support.generation_jobs import txt2img_payload
from tests.support.tiny_extras import sample_image, to_base64

SD = {"Stable-diffusion": ["tiny-sd15.safetensors"]}
ASYNC = "esd-async-test"
LONG_STEPS = 150  # long enough to watch progress on any machine
KILLED_STEPS = 30  # a worker is killed as soon as it holds the job: the retry need not be long


def worker_running(esd: ESDClient, job_id: str, not_pid: int | None = None, timeout: float = 120) -> int:
    """The pid of the worker process that has `job_id` in hand (waits for one other than `not_pid`)."""
    engine = esd.http.app.state.runtime.execution
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine._lock:
            for pool in engine._pools.values():
                for instance in pool.instances:
                    if instance.job and instance.job.id == job_id and instance.process.pid != not_pid:
                        return instance.process.pid
        time.sleep(0.05)
    raise AssertionError(f"no worker took job {job_id} within {timeout} s")


def start_long_job(esd: ESDClient, steps: int = LONG_STEPS) -> str:
    started = create_job(esd, "txt2img", ASYNC, txt2img_payload(steps=steps), SD, one_call=True)
    assert started.status_code == 202, started.json()
    return started.json()["data"]["inference"]["inference_id"]


def test_running_job_shows_progress(server):
    job_id = start_long_job(server)
    deadline = time.monotonic() + 120
    while True:
        data = server.get(f"/prod/inferences/{job_id}").json()["data"]
        progress = data.get("progress") or {}
        if progress.get("step"):
            break
        assert data["status"] == "inprogress" and time.monotonic() < deadline, data
        time.sleep(0.05)
    assert set(progress) == {"phase", "step", "total_steps", "eta_seconds"}
    assert progress["phase"] == "sampling" and progress["total_steps"] == LONG_STEPS
    assert wait_job(server, job_id)["status"] == "succeed"
    assert "progress" not in server.get(f"/prod/inferences/{job_id}").json()["data"]


def test_a_job_whose_worker_is_killed_succeeds_exactly_once(server):
    job_id = start_long_job(server, KILLED_STEPS)
    os.kill(worker_running(server, job_id), signal.SIGKILL)
    job = wait_job(server, job_id)
    assert job["status"] == "succeed", job.get("sagemakerRaw")
    assert job["image_names"] == ["image_0.png"]
    assert find_endpoint(server, ASYNC)["endpoint_status"] == "InService"


def test_a_job_whose_worker_dies_twice_fails_saying_why(server):
    job_id = start_long_job(server, KILLED_STEPS)
    first = worker_running(server, job_id)
    os.kill(first, signal.SIGKILL)
    os.kill(worker_running(server, job_id, not_pid=first), signal.SIGKILL)
    job = wait_job(server, job_id)
    assert job["status"] == "failed"
    assert job["sagemakerRaw"] == "the worker process running this job died twice (exit code -9)"
    # the endpoint recovers: the next job runs on a restarted worker
    again = create_job(server, "txt2img", ASYNC, txt2img_payload(steps=1), SD, one_call=True)
    assert wait_job(server, again.json()["data"]["inference"]["inference_id"])["status"] == "succeed"


def test_async_endpoint_scales_to_zero_when_idle_and_back_out_for_a_job(server):
    created = create_endpoint(
        server,
        endpoint_name="scale",
        autoscaling_enabled=True,
        min_instance_number=0,
        max_instance_number=1,
        assign_to_roles=["scalers"],
    )
    assert created["endpoint_status"] == "InService"
    wait_endpoint(server, "esd-async-scale", lambda e: e["current_instance_count"] == "0")
    payload = {"image": to_base64(sample_image()), "upscaling_resize": 2, "upscaler_1": "Lanczos"}
    started = create_job(server, "extra-single-image", "esd-async-scale", payload, one_call=True)
    assert started.status_code == 202, started.json()
    wait_endpoint(server, "esd-async-scale", lambda e: e["current_instance_count"] == "1")
    assert wait_job(server, started.json()["data"]["inference"]["inference_id"])["status"] == "succeed"
    wait_endpoint(server, "esd-async-scale", lambda e: e["current_instance_count"] == "0")
    assert find_endpoint(server, "esd-async-scale")["endpoint_status"] == "InService"


def test_jobs_queued_when_the_server_stops_all_succeed_after_a_restart(tmp_path, models_dir):
    from tests.checkpoints.conftest import upload_file

    first = open_app(tmp_path)
    esd = ESDClient(first)
    upload_file(
        esd, "tiny-sd15.safetensors", (models_dir / "tiny-sd15.safetensors").read_bytes(), 1, "Stable-diffusion"
    )
    create_endpoint(esd, endpoint_name="test")
    ids = [
        create_job(esd, "txt2img", ASYNC, txt2img_payload(steps=20, seed=n), SD, one_call=True).json()["data"][
            "inference"
        ]["inference_id"]
        for n in range(3)
    ]
    first.__exit__(None, None, None)  # stops the workers, whatever they were doing
    assert unfinished(tmp_path) > 0, "every job finished before the stop: the test proves nothing"
    second = open_app(tmp_path)
    try:
        esd = ESDClient(second)
        jobs = [wait_job(esd, job_id) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeed"] * 3, [j.get("sagemakerRaw") for j in jobs]
        assert find_endpoint(esd, ASYNC)["endpoint_status"] == "InService"
    finally:
        second.__exit__(None, None, None)


def unfinished(tmp_path) -> int:
    import sqlite3

    with sqlite3.connect(tmp_path / "openesd.db") as db:
        return db.execute("SELECT count(*) FROM inference_jobs WHERE queued AND status = 'inprogress'").fetchone()[0]


def test_a_job_past_the_deadline_is_failed_by_the_watchdog(tmp_path, models_dir):
    from tests.checkpoints.conftest import upload_file

    client = open_app(tmp_path, job_deadline_s=1.0)
    try:
        esd = ESDClient(client)
        upload_file(
            esd, "tiny-sd15.safetensors", (models_dir / "tiny-sd15.safetensors").read_bytes(), 1, "Stable-diffusion"
        )
        create_endpoint(esd, endpoint_name="test")
        job = wait_job(esd, start_long_job(esd))
        assert job["status"] == "failed"
        assert job["sagemakerRaw"] == "the job ran longer than the deadline of 1 s and was stopped"
    finally:
        client.__exit__(None, None, None)
