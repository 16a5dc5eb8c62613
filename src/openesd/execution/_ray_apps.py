"""How an endpoint maps onto a Ray Serve application, and how many replicas an application's status shows."""

from __future__ import annotations

from typing import Any

from openesd.execution.base import EndpointSpec
from openesd.settings import Settings

DEPLOYMENT = "instance"
# Replica states that hold (or are about to hold) a worker, as the local engine counts its processes.
_GONE = ("STOPPING", "STOPPED")
# Serve's defaults (10 s pushes, a 30 s look-back) suit endpoints idle for 15 minutes; a short idle
# period needs metrics at least twice per period or the scale-in would lag far behind it.
_MAX_METRICS_INTERVAL_S = 10.0
_MAX_LOOK_BACK_S = 30.0


def app_name(endpoint_id: str) -> str:
    """By id, not name: a deleted endpoint's application may still be stopping when the name is reused."""
    return f"openesd-{endpoint_id}"


def floor_and_ceiling(endpoint: EndpointSpec) -> tuple[int, int]:
    """The replicas kept when idle and the most allowed, with the local engine's rules (`_pool.Pool`)."""
    floor = endpoint.min if endpoint.autoscaling else endpoint.initial
    if endpoint.endpoint_type == "Real-time":
        floor = max(floor, 1)
    ceiling = max(endpoint.max, endpoint.initial, 1) if endpoint.autoscaling else max(endpoint.initial, 1)
    return floor, ceiling


def autoscaling_config(endpoint: EndpointSpec, settings: Settings) -> dict[str, Any]:
    """Serve's autoscaler does the scaling: out on backlog per replica, in after the idle period."""
    floor, ceiling = floor_and_ceiling(endpoint)
    initial = max(endpoint.initial, 1 if endpoint.endpoint_type == "Real-time" else 0)
    interval = min(_MAX_METRICS_INTERVAL_S, max(0.1, settings.endpoint_idle_s / 2))
    return {
        "min_replicas": floor,
        "max_replicas": ceiling,
        "initial_replicas": min(max(initial, floor), ceiling),
        "target_ongoing_requests": settings.scale_out_backlog,
        "upscale_delay_s": 0.0,
        "downscale_delay_s": settings.endpoint_idle_s,
        "downscale_to_zero_delay_s": settings.endpoint_idle_s,
        "metrics_interval_s": interval,
        "look_back_period_s": min(_MAX_LOOK_BACK_S, max(2 * interval, settings.endpoint_idle_s)),
    }


def endpoint_deployment(endpoint: EndpointSpec, settings: Settings, gpus: int) -> Any:
    """The endpoint's Serve deployment, one GPU per replica when the cluster has GPUs. A replica takes up to
    `batch_max_jobs` calls at once and runs the compatible ones among them as one batch (`_ray_replica`)."""
    from ray import serve

    from openesd.execution._ray_replica import EndpointInstance

    return serve.deployment(
        EndpointInstance,
        name=DEPLOYMENT,
        ray_actor_options={"num_cpus": 1, "num_gpus": 1 if gpus else 0},
        autoscaling_config=autoscaling_config(endpoint, settings),
        max_ongoing_requests=settings.batch_max_jobs,
        max_queued_requests=-1,  # the database is the queue's truth; Serve must not shed jobs
        graceful_shutdown_timeout_s=5.0,
    )


def live_replicas(app: Any) -> int:
    """Replicas starting or running in an application status (`serve.status().applications[name]`)."""
    return sum(
        count
        for deployment in app.deployments.values()
        for state, count in deployment.replica_states.items()
        if state not in _GONE
    )


def running_replicas(app: Any) -> int:
    return sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())
