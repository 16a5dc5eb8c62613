"""The main of one endpoint instance's process: load a Generator once, then run the jobs the engine sends.

Speaks to the engine over one pipe with the types of `events.py`; it never touches the metadata tables.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from openesd.execution.base import JobSpec, ModelFile
from openesd.execution.errors import Cancelled
from openesd.execution.events import (
    CancelJob,
    InstanceReady,
    InstanceStartFailed,
    JobBatch,
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


def main(conn: Any, settings_values: dict[str, Any], device: str, preload: list[ModelFile] | None = None) -> None:
    """Entry point in the spawned process; returns when told to stop or when the pipe closes. The `preload`
    checkpoints are downloaded and loaded before the instance reports ready (a warm endpoint)."""
    try:
        from openesd.generation import Generator
        from openesd.generation.models.fastpath import FastPath
        from openesd.settings import Settings
        from openesd.storage import open_store

        settings = Settings(**settings_values)
        store = open_store(settings.resolved_object_store_url, settings)
        generator = Generator(device=device, fastpath=FastPath.from_settings(settings))
        models_dir = settings.data_dir / "cache" / "models"
        if settings.warm_rembg:
            threading.Thread(target=_warm_rembg, name="openesd-warm-rembg", daemon=True).start()
        preload_checkpoints(generator, store, preload or [], models_dir)
    except BaseException as error:  # the engine reports this on the endpoint
        conn.send(InstanceStartFailed(f"{type(error).__name__}: {error}"))
        return
    conn.send(InstanceReady(os.getpid(), tuple(entry["id"] for entry in preload or [])))
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
            case JobBatch():
                if not _serve_batch(conn, message, generator, store, models_dir):
                    return


class Mailbox:
    """What the engine says while jobs run, read from the pipe between model calls by whichever job runs; one
    per `JobSpec` or `JobBatch` (a CancelJob of a job that has ended already is stale: never looked at)."""

    def __init__(self, conn: Any):
        self._conn = conn
        self.cancelled: set[str] = set()
        self.stop_instance = False

    def read(self) -> None:
        while self._conn.poll():
            match self._conn.recv():
                case CancelJob(job_id=job_id):
                    self.cancelled.add(job_id)
                case StopInstance():
                    self.stop_instance = True


def preload_checkpoints(generator: Any, store: ObjectStore, preload: list[ModelFile], models_dir: Path) -> None:
    """Download and load a warm endpoint's checkpoints into the generator's model cache."""
    files = fetch_models(store, {"Stable-diffusion": list(preload)}, models_dir)
    for path in files.get("Stable-diffusion", []):
        generator.preload(path)


def _warm_rembg() -> None:
    """At the lowest CPU priority, so that a job started meanwhile keeps the cores; a failure here only
    means the first rembg job compiles instead."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass
    try:
        from openesd.generation.tasks.rembg import warm_alpha_matting

        started = time.monotonic()
        warm_alpha_matting()
        log.info("rembg alpha matting warmed in %.1f s", time.monotonic() - started)
    except Exception:
        log.warning("warming rembg's alpha matting failed; the first rembg job compiles it", exc_info=True)


class Orders:
    """One job's view of the mailbox: a CancelJob of this job (or a StopInstance) raises Cancelled at the next
    model call, so the job ends within one model call."""

    def __init__(self, conn: Any, job_id: str, mailbox: Mailbox | None = None):
        self._job_id = job_id
        self._mailbox = mailbox if mailbox is not None else Mailbox(conn)

    @property
    def stop_instance(self) -> bool:
        return self._mailbox.stop_instance

    def check(self, step: int) -> None:
        self._mailbox.read()
        if self._mailbox.stop_instance or self._job_id in self._mailbox.cancelled:
            raise Cancelled(step)


def _serve(conn: Any, job: JobSpec, generator: Any, store: Any, models_dir: Path) -> bool:
    """Run one job and report its end; False when the engine asked this instance to stop meanwhile."""
    conn.send(JobStarted(job.id, job.attempt))
    orders = Orders(conn, job.id)
    try:
        result = _run(conn, job, generator, store, models_dir, orders)
    except Exception as error:
        _report_end(conn, job, orders, error)
        return not orders.stop_instance
    conn.send(JobSucceeded(job.id, result))
    return True


def _serve_batch(conn: Any, batch: JobBatch, generator: Any, store: Any, models_dir: Path) -> bool:
    """Run compatible jobs as one UNet batch (`Generator.run_together`), each started and reported on its own;
    False when the engine asked this instance to stop meanwhile."""
    if not hasattr(generator, "run_together"):  # the Generator's test doubles run jobs one by one
        return all(_serve(conn, job, generator, store, models_dir) for job in batch.jobs)
    mailbox = Mailbox(conn)
    runs, running = [], []
    for job in batch.jobs:
        conn.send(JobStarted(job.id, job.attempt))
        orders = Orders(conn, job.id, mailbox)
        try:
            runs.append(_request(conn, job, store, models_dir, orders))
        except Exception as error:  # a bad payload or a missing file ends this job only
            _report_end(conn, job, orders, error)
            continue
        running.append((job, orders))
    loads, hits = _cache_counts(generator)
    with _observing(generator, conn, [job for job, _ in running]):
        results = generator.run_together(runs) if runs else []
    counts = _cache_counts(generator)
    for index, ((job, orders), result) in enumerate(zip(running, results)):
        if isinstance(result, BaseException):
            _report_end(conn, job, orders, result)
        else:  # the batch's loads and hits are counted once, on its first job
            loaded = (counts[0] - loads, counts[1] - hits) if index == 0 else (0, 0)
            worker = {"model_loads": loaded[0], "cache_hits": loaded[1], "batch": len(runs)}
            conn.send(JobSucceeded(job.id, _answer(result, worker)))
    return not mailbox.stop_instance


def _report_end(conn: Any, job: JobSpec, orders: Orders, error: BaseException) -> None:
    """Report a job that ended with `error`; a stopping instance's job is dropped (the engine reported it)."""
    from openesd.errors import OpenESDError

    if isinstance(error, Cancelled):
        if not orders.stop_instance:
            conn.send(JobCancelled(job.id, error.step))
    elif isinstance(error, OpenESDError):
        conn.send(JobFailed(job.id, error.message))
    elif isinstance(error, Exception):  # a bug or a broken model file: the user still learns what happened
        log.error("job %s failed", job.id, exc_info=error)
        conn.send(JobFailed(job.id, f"the worker failed: {type(error).__name__}: {error}"))
    else:
        raise error


def _run(
    conn: Any, job: JobSpec, generator: Any, store: ObjectStore, models_dir: Path, orders: Orders
) -> dict[str, Any]:
    request, progress, previews = _request(conn, job, store, models_dir, orders)
    loads, hits = _cache_counts(generator)
    with _observing(generator, conn, [job]):
        if previews is not None:
            result = generator.run(request, progress, previews)
        else:  # the Generator's test doubles take (request, progress)
            result = generator.run(request, progress)
    loaded, hit = _cache_counts(generator)
    return _answer(result, {"model_loads": loaded - loads, "cache_hits": hit - hits})


def _request(conn: Any, job: JobSpec, store: ObjectStore, models_dir: Path, orders: Orders) -> Any:
    """The job's (GenerationRequest, progress, previews), its payload read and its model files fetched."""
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

    previews = PreviewRequest(job.preview_every, preview) if job.preview_every > 0 else None
    return GenerationRequest(job.task, payload, models), progress, previews


@contextlib.contextmanager
def _observing(generator: Any, conn: Any, jobs: list[JobSpec]) -> Iterator[None]:
    """Each model the worker's cache loads meanwhile is reported to these jobs as JobLoading."""
    cache = getattr(generator, "cache", None)  # test doubles of the Generator have none
    if cache is None:
        yield
        return

    def loading(kind: str, path: Path, seconds: float | None) -> None:
        for job in jobs:
            conn.send(JobLoading(job.id, "loading", path.name, _size(path), seconds))

    cache.observer = loading
    try:
        yield
    finally:
        cache.observer = None


def _answer(result: Any, worker: dict[str, int]) -> dict[str, Any]:
    return {
        "images": list(result.images),
        "parameters": result.parameters,
        "info": result.info,
        "html_info": result.html_info,
        "worker": worker,
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
