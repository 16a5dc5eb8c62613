"""What every engine promises about endpoints (execution/base.py), checked through `Engine` and the events
it reports: readiness and instance counts, scaling to zero and out on backlog, real-time's one instance,
an endpoint whose workers cannot start."""

from __future__ import annotations

import time


def test_deploy_reports_ready_and_the_instances(engine):
    under = engine()
    endpoint = under.deploy(initial=2)
    under.events.wait_for("endpoint_ready", endpoint.id)
    under.events.wait_for("instances_changed", endpoint.id, lambda calls: (endpoint.id, 2) in calls)
    assert under.engine.instance_count(endpoint.id) == 2
    assert under.engine.instance_count("no-such-endpoint") == 0
    assert under.events.of("endpoint_failed") == []


def test_async_autoscaling_goes_to_zero_when_idle_and_out_again_for_a_job(engine):
    under = engine(endpoint_idle_s=0.5)
    endpoint = under.deploy(autoscaling=True, min=0, max=1)
    under.events.wait_for("endpoint_ready", endpoint.id)
    under.events.wait_for("instances_changed", endpoint.id, lambda calls: calls[-1] == (endpoint.id, 0))
    assert under.engine.instance_count(endpoint.id) == 0
    under.submit(endpoint, "wake")
    assert under.events.finished("wake")[0] == "job_succeeded"
    counts = [count for _, count in under.events.of("instances_changed", endpoint.id)]
    assert counts[:3] == [1, 0, 1]
    under.events.wait_for("instances_changed", endpoint.id, lambda calls: calls[-1] == (endpoint.id, 0))


def test_async_autoscaling_scales_out_on_backlog_up_to_max(engine):
    under = engine(scale_out_backlog=1.0)
    endpoint = under.deploy(autoscaling=True, min=1, max=2)
    for n in range(3):
        under.submit(endpoint, f"job-{n}", steps=8)
    for n in range(3):
        assert under.events.finished(f"job-{n}")[0] == "job_succeeded"
    counts = [count for _, count in under.events.of("instances_changed", endpoint.id)]
    assert max(counts) == 2, counts


def test_real_time_keeps_one_instance_however_idle(engine):
    under = engine(endpoint_idle_s=0.3)
    endpoint = under.deploy(endpoint_type="Real-time", autoscaling=True, min=0, max=2)
    under.events.wait_for("endpoint_ready", endpoint.id)
    time.sleep(1.5)  # five idle periods
    assert under.engine.instance_count(endpoint.id) == 1
    assert (endpoint.id, 0) not in under.events.of("instances_changed", endpoint.id)


def test_an_endpoint_whose_workers_cannot_start_fails_with_the_error(engine):
    under = engine(worker_start_timeout_s=0.01)
    endpoint = under.deploy()
    under.submit(endpoint, "waiting")
    assert under.events.wait_for("endpoint_failed", endpoint.id) == [
        (endpoint.id, "the worker did not load its runtime within 0.01 s")
    ]
    assert under.events.finished("waiting") == (
        "job_failed",
        "waiting",
        "endpoint esd-async-test failed: the worker did not load its runtime within 0.01 s",
    )
    under.submit(endpoint, "later")
    assert under.events.finished("later") == (
        "job_failed",
        "later",
        "endpoint esd-async-test is not running; create a new endpoint",
    )
    assert under.events.of("endpoint_ready") == []
    assert under.engine.instance_count(endpoint.id) == 0
