"""What every engine promises about jobs (execution/base.py), checked through `Engine` and the events it
reports: started/progress/result, the worker's own failures, one retry after a worker death, undeploy."""

from __future__ import annotations

import io

from openesd.execution.base import EndpointSpec


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def test_a_job_reports_started_progress_and_its_images(engine):
    under = engine()
    endpoint = under.deploy()
    under.submit(endpoint, "job-1", steps=3)
    name, _, result = under.events.finished("job-1")
    assert name == "job_succeeded", result
    assert under.events.of("job_started", "job-1") == [("job-1", 0)]
    assert under.events.of("job_progress", "job-1")[-1] == ("job-1", 3, 3)
    assert [png_size(image) for image in result["images"]] == [(64, 64)]
    assert result["parameters"]["prompt"] == "a red fox" and "a red fox" in result["info"]


def test_a_job_the_worker_rejects_fails_with_the_workers_message(engine):
    under = engine()
    endpoint = under.deploy()
    under.submit(endpoint, "bad", sampler_name="No Such Sampler")
    name, _, text = under.events.finished("bad")
    assert name == "job_failed" and "No Such Sampler" in text
    under.submit(endpoint, "good")  # the worker serves the next job
    assert under.events.finished("good")[0] == "job_succeeded"


def test_a_killed_workers_job_is_retried_once_and_succeeds(engine):
    under = engine()
    endpoint = under.deploy()
    under.submit(endpoint, "long", steps=20)
    under.wait_worker_of("long")
    under.kill_worker_of("long")
    name, _, result = under.events.finished("long")
    assert name == "job_succeeded", result
    assert under.events.of("job_started", "long") == [("long", 0), ("long", 1)]
    assert len(under.events.of("job_succeeded", "long")) == 1 and under.events.of("job_failed") == []


def test_a_job_whose_worker_dies_twice_fails_saying_why(engine):
    under = engine()
    endpoint = under.deploy()
    under.submit(endpoint, "doomed", steps=20)
    under.wait_worker_of("doomed")
    first = under.kill_worker_of("doomed")
    under.events.wait_for("job_started", "doomed", lambda calls: ("doomed", 1) in calls)
    under.wait_worker_of("doomed")
    assert under.kill_worker_of("doomed") != first
    assert under.events.finished("doomed") == (
        "job_failed",
        "doomed",
        "the worker process running this job died twice (exit code -9)",
    )


def test_undeploy_fails_the_running_and_queued_jobs(engine):
    under = engine()
    endpoint = under.deploy()
    for job_id in ("running", "queued-1", "queued-2"):
        under.submit(endpoint, job_id, steps=150)
    under.wait_worker_of("running")
    under.engine.undeploy(endpoint.id)
    for job_id in ("running", "queued-1", "queued-2"):
        assert under.events.finished(job_id) == (
            "job_failed",
            job_id,
            "endpoint esd-async-test was deleted before the job finished",
        )
    assert under.engine.instance_count(endpoint.id) == 0
    under.submit(endpoint, "late")
    name, _, text = under.events.finished("late")
    assert name == "job_failed" and "is not running" in text


def test_a_job_for_an_endpoint_the_engine_does_not_run_fails_at_once(engine):
    under = engine()
    ghost = EndpointSpec(
        id="ghost", name="esd-async-ghost", endpoint_type="Async", initial=1, min=0, max=1, autoscaling=False
    )
    under.submit(ghost, "lost")
    name, _, text = under.events.finished("lost")
    assert name == "job_failed" and "ghost" in text
