"""The main of one endpoint instance's process: load a Generator once, then run the jobs the engine sends.

Speaks to the engine over one pipe with the types of `events.py`; it never touches the metadata tables.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from openesd.execution.base import JobSpec, ModelFile
from openesd.execution.errors import Cancelled
from openesd.execution.events import (
    CancelJob,
    InstanceReady,
    InstanceStartFailed,
    JobCancelled,
    JobFailed,
    JobLoading,
    JobProgress,
    JobStarted,
    JobSucceeded,
    StopInstance,
)

if TYPE_CHECKING:
    from openesd.storage.base import ObjectStore

log = logging.getLogger("openesd.execution.worker")
PROGRESS_EVERY_S = 0.25


def main(conn: Any, settings_values: dict[str, Any], device: str) -> None:
    """Entry point in the spawned process; returns when told to stop or when the pipe closes."""
    try:
        from openesd.generation import Generator
        from openesd.generation.models.fastpath import FastPath
        from openesd.settings import Settings
        from openesd.storage import open_store

        settings = Settings(**settings_values)
        store = open_store(settings.resolved_object_store_url, settings)
        generator = Generator(device=device, fastpath=FastPath.from_settings(settings))
    except BaseException as error:  # the engine reports this on the endpoint
        conn.send(InstanceStartFailed(f"{type(error).__name__}: {error}"))
        return
    conn.send(InstanceReady(os.getpid()))
    models_dir = settings.data_dir / "cache" / "models"
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        match message:
            case StopInstance():
                return
            case JobSpec():
                if not _serve(conn, message, generator, store, models_dir):
                    return


class Orders:
    """What the engine says while a job runs, read from the pipe between model calls: a CancelJob of this
    job (or a StopInstance) raises Cancelled there, so the job ends within one model call."""

    def __init__(self, conn: Any, job_id: str):
        self._conn, self._job_id = conn, job_id
        self.stop_instance = False

    def check(self, step: int) -> None:
        while self._conn.poll():
            match self._conn.recv():
                case CancelJob(job_id=job_id) if job_id == self._job_id:
                    raise Cancelled(step)
                case StopInstance():
                    self.stop_instance = True
                    raise Cancelled(step)
                # a CancelJob of a job that has ended already is stale: dropped


def _serve(conn: Any, job: JobSpec, generator: Any, store: Any, models_dir: Path) -> bool:
    """Run one job and report its end; False when the engine asked this instance to stop meanwhile."""
    from openesd.errors import OpenESDError

    conn.send(JobStarted(job.id, job.attempt))
    orders = Orders(conn, job.id)
    try:
        result = _run(conn, job, generator, store, models_dir, orders)
    except Cancelled as cancelled:
        if not orders.stop_instance:  # a stopping instance's job is dropped: the engine reported it
            conn.send(JobCancelled(job.id, cancelled.step))
        return not orders.stop_instance
    except OpenESDError as error:
        conn.send(JobFailed(job.id, error.message))
        return True
    except Exception as error:  # a bug or a broken model file: the user still learns what happened
        log.exception("job %s failed", job.id)
        conn.send(JobFailed(job.id, f"the worker failed: {type(error).__name__}: {error}"))
        return True
    conn.send(JobSucceeded(job.id, result))
    return True


def _run(
    conn: Any, job: JobSpec, generator: Any, store: ObjectStore, models_dir: Path, orders: Orders
) -> dict[str, Any]:
    from openesd.generation import GenerationRequest, parse_payload
    from openesd.generation.previews import PreviewRequest

    payload = parse_payload(
        job.payload_string if job.payload_string is not None else _read_payload(store, job.param_key)
    )
    models = fetch_models(store, job.models or {}, models_dir, lambda *phase: conn.send(JobLoading(job.id, *phase)))
    orders.check(0)  # a cancel that came while the models downloaded: nothing is sampled
    last = [0.0]

    def progress(step: int, total: int) -> None:
        orders.check(step)  # called once per model call: the cancel lands within one step
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or step >= total:
            last[0] = now
            conn.send(JobProgress(job.id, step, total))

    def preview(step: int, total: int, image: bytes) -> None:
        # Every preview is sent (the job asked for one per N calls); it also serves as this step's progress.
        last[0] = time.monotonic()
        conn.send(JobProgress(job.id, step, total, preview=image))

    def loading(kind: str, path: Path, seconds: float | None) -> None:
        conn.send(JobLoading(job.id, "loading", path.name, _size(path), seconds))

    loads, hits = _cache_counts(generator)
    request = GenerationRequest(job.task, payload, models)
    cache = getattr(generator, "cache", None)  # test doubles of the Generator have none
    if cache is not None:
        cache.observer = loading
    try:
        if job.preview_every > 0:
            result = generator.run(request, progress, PreviewRequest(job.preview_every, preview))
        else:  # the Generator's test doubles take (request, progress)
            result = generator.run(request, progress)
    finally:
        if cache is not None:
            cache.observer = None
    loaded, hit = _cache_counts(generator)
    return {
        "images": list(result.images),
        "parameters": result.parameters,
        "info": result.info,
        "html_info": result.html_info,
        "worker": {"model_loads": loaded - loads, "cache_hits": hit - hits},
    }


def _cache_counts(generator: Any) -> tuple[int, int]:
    """(loads, hits) of the worker's model cache so far; the API's `/metrics` counts them per job."""
    cache = getattr(generator, "cache", None)  # test doubles of the Generator have none
    return (cache.loads, cache.hits) if cache is not None else (0, 0)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    except OSError:
        return 0


def _read_payload(store: ObjectStore, key: str) -> bytes:
    from openesd.errors import BadRequest

    if store.stat(key) is None:
        raise BadRequest(
            f"the job's payload was never uploaded: {store.uri(key)} does not exist; "
            "PUT it to api_params_s3_upload_url before starting the job"
        )
    return store.get_bytes(key)


def fetch_models(
    store: ObjectStore,
    models: dict[str, list[ModelFile]],
    root: Path,
    report: Callable[[str, str, int, float | None], None] | None = None,
) -> dict[str, list[Path]]:
    """Local paths of the job's model files, downloaded once per node into `<root>/<id>/<file>`. `report(phase,
    model, bytes, seconds)` hears each download begin (seconds None) and end (its duration)."""
    local: dict[str, list[Path]] = {}
    for kind, entries in models.items():
        for entry in entries:
            key = entry.get("key")
            if not key:  # virtual models (VAE `Automatic`/`None`) have no file
                continue
            path = root / entry["id"] / entry["model_name"]
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                if report:
                    stored = store.stat(key)
                    report("downloading", entry["model_name"], stored.size if stored else 0, None)
                started = time.monotonic()
                store.download(key, path)  # atomic: a crash never leaves half a file
                if report:
                    seconds = round(time.monotonic() - started, 3)
                    report("downloading", entry["model_name"], path.stat().st_size, seconds)
            local.setdefault(kind, []).append(path)
    return local
