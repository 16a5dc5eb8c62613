"""Prometheus metrics at `/metrics`, outside the ESD surface (no API key, like `/healthz`).

Two kinds, by where the truth lives. What happens in this process (requests answered, jobs this
replica's engine finished, model loads its workers reported, bytes uploaded through it) is counted in
the Runtime's registry: Prometheus sums them over replicas. What the database holds (jobs by status,
queue length, instances) is read at each scrape, so every replica reports the same whole numbers.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openesd.metadata.models import Endpoint, InferenceJob

router = APIRouter(tags=["system"])
UNMATCHED = "<unmatched>"  # the label of paths no route serves: raw paths would make labels unbounded
JOB_SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
UPLOAD_ROUTE = "/objects/{key:path}"


class Metrics:
    """This process's counters, and the database read at each scrape, in one registry."""

    def __init__(self, make_session: sessionmaker[Session]):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "openesd_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "openesd_http_request_duration_seconds",
            "Time to answer, by route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "openesd_inference_job_duration_seconds",
            "Start to end of the inference jobs this replica's engine finished",
            ["endpoint", "status"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.model_loads = Counter(
            "openesd_model_loads",
            "Model files loaded by the workers of succeeded jobs",
            ["endpoint"],
            registry=self.registry,
        )
        self.model_cache_hits = Counter(
            "openesd_model_cache_hits", "Models the workers found already loaded", ["endpoint"], registry=self.registry
        )
        self.upload_bytes = Counter(
            "openesd_upload_bytes", "Bytes stored through signed PUT URLs (/objects)", ["kind"], registry=self.registry
        )
        self.registry.register(StoredState(make_session))

    def job_finished(self, endpoint: str, status: str, seconds: float, worker: dict[str, int] | None = None) -> None:
        """A job reached `status`; `worker` is what its worker counted: {"model_loads", "cache_hits"}."""
        self.job_seconds.labels(endpoint, status).observe(max(0.0, seconds))
        if worker:
            self.model_loads.labels(endpoint).inc(worker.get("model_loads", 0))
            self.model_cache_hits.labels(endpoint).inc(worker.get("cache_hits", 0))


class StoredState(Collector):
    """Gauges read from the tables at scrape time: right across replicas and restarts."""

    def __init__(self, make_session: sessionmaker[Session]):
        self._make_session = make_session

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._make_session() as session:
            names = dict(session.execute(select(Endpoint.id, Endpoint.endpoint_name)).all())
            yield self._jobs(session, names)
            yield self._queue(session, names)
            yield self._instances(session)

    @staticmethod
    def _jobs(session: Session, names: dict[str, str]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "openesd_inference_jobs", "Inference jobs by status and endpoint", labels=["endpoint", "status"]
        )
        counts = select(InferenceJob.endpoint_id, InferenceJob.status, func.count()).group_by(
            InferenceJob.endpoint_id, InferenceJob.status
        )
        totals: Tally[tuple[str, str]] = Tally()
        for endpoint_id, status, count in session.execute(counts):
            totals[(_endpoint_label(names, endpoint_id), status)] += count
        for labels, count in sorted(totals.items()):
            family.add_metric(list(labels), count)
        return family

    @staticmethod
    def _queue(session: Session, names: dict[str, str]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "openesd_inference_queue_length",
            "Jobs started on an endpoint that no worker has begun yet",
            labels=["endpoint"],
        )
        # Only unfinished jobs are read (few); a worker that begins a job moves its phase past `queued`.
        unfinished = session.execute(select(InferenceJob.endpoint_id, InferenceJob.progress).where(InferenceJob.queued))
        totals = Tally(
            _endpoint_label(names, endpoint_id)
            for endpoint_id, progress in unfinished
            if (progress or {}).get("phase", "queued") == "queued"
        )
        for name in sorted(set(names.values()) | set(totals)):
            family.add_metric([name], totals[name])
        return family

    @staticmethod
    def _instances(session: Session) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "openesd_endpoint_instances", "Live instances of each endpoint, by its state", labels=["endpoint", "state"]
        )
        rows = session.execute(
            select(Endpoint.endpoint_name, Endpoint.endpoint_status, Endpoint.current_instance_count).order_by(
                Endpoint.endpoint_name
            )
        )
        for name, state, count in rows:
            family.add_metric([name, state], count or 0)
        return family


def _endpoint_label(names: dict[str, str], endpoint_id: str | None) -> str:
    return names.get(endpoint_id, "<deleted>") if endpoint_id else ""


class MetricsMiddleware:
    """Counts every answer by its route's path template; bytes of successful PUTs to `/objects`."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = _metrics_of(scope)
        if scope["type"] != "http" or metrics is None:
            await self.app(scope, receive, send)
            return
        started, status, received = time.perf_counter(), [500], [0]

        async def counting_receive() -> Message:
            message = await receive()
            received[0] += len(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            self._record(metrics, scope, status[0], received[0], time.perf_counter() - started)

    @staticmethod
    def _record(metrics: Metrics, scope: Scope, status: int, received: int, seconds: float) -> None:
        route = _route_label(scope)
        metrics.requests.labels(scope["method"], route, str(status)).inc()
        metrics.request_seconds.labels(scope["method"], route).observe(seconds)
        if route == UPLOAD_ROUTE and scope["method"] == "PUT" and status == 200:
            kind = "part" if b"upload_id=" in scope.get("query_string", b"") else "object"
            metrics.upload_bytes.labels(kind).inc(received)


def _route_label(scope: Scope) -> str:
    """The matched route's template under the prefix it was included with (`/prod`, `/legacy`).

    FastAPI hands the route as declared (`/inferences/{id}`); the prefix is the path's leading segments
    beyond the template's: literal, because only a registered prefix can have matched.
    """
    template: str | None = getattr(scope.get("route"), "path", None)
    if not template:
        return UNMATCHED
    if ":path}" in template:  # spans segments, so its prefix cannot be told; no such route is prefixed
        return template
    segments = scope["path"].split("/")
    extra = len(segments) - len(template.split("/"))
    return "/".join(segments[: extra + 1]) + template if extra > 0 else template


def _metrics_of(scope: Scope) -> Metrics | None:
    """The app's runtime metrics; None before the lifespan built the runtime (or for other scope types)."""
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    return getattr(runtime, "metrics", None)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
