"""Trainings on this machine: one spawned worker process per training, on a GPU when there is one.

The worker fetches the base model and the dataset from the object store into a work folder, trains,
uploads the LoRA files and says so over its pipe with TrainingEvents; a reader thread per training
hands them to the trainings' consumer. A stop is cooperative (the trainer polls an event between
batches) and becomes a kill when the worker does not end within STOP_GRACE_S.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openesd.execution.base import ModelFile, TrainingSpec, report
from openesd.execution.events import (
    TrainingCompleted,
    TrainingEvent,
    TrainingEvents,
    TrainingFailed,
    TrainingProgress,
    TrainingStatus,
    TrainingStopped,
)

if TYPE_CHECKING:
    from openesd.storage.base import ObjectStore

log = logging.getLogger("openesd.execution.training")
_SPAWN = multiprocessing.get_context("spawn")
STOP_GRACE_S = 20.0
CPU_TYPES = ("cpu",)
SHUTDOWN_MESSAGE = (
    "the server shut down while this training was running, which ended it; start a new training "
    "(its output checkpoint stays Initial)"
)


@dataclass
class _Run:
    spec: TrainingSpec
    process: Any
    conn: Any
    stop: Any  # multiprocessing Event the trainer polls
    gpu: int | None
    stop_asked: bool = False
    closing: bool = False  # the server is shutting down: not a user's stop
    ended: bool = False
    reader: threading.Thread | None = field(default=None, repr=False)


class TrainingRunner:
    """Runs trainings as worker processes and reports them through `events`."""

    def __init__(self, settings_values: dict[str, Any], events: TrainingEvents, gpus: int):
        self._values = settings_values
        self._events = events
        self._gpus = gpus
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def submit(self, spec: TrainingSpec) -> None:
        with self._lock:
            if spec.id in self._runs:
                return
            run = self._start(spec)
            run.reader = threading.Thread(
                target=self._read, args=(run,), name=f"openesd-training-{spec.id[:8]}", daemon=True
            )
            self._runs[spec.id] = run
        run.reader.start()

    def _start(self, spec: TrainingSpec) -> _Run:
        """Start the training's worker process; the Ray engine starts an actor in its place."""
        from openesd.execution._pool import start_pinned

        gpu = self._pick_gpu(spec.instance_type)
        parent, child = _SPAWN.Pipe()
        stop = _SPAWN.Event()
        process = _SPAWN.Process(
            target=main,
            args=(child, stop, self._values, spec, "cpu" if gpu is None else "cuda"),
            name="openesd-trainer",
            daemon=True,
        )
        start_pinned(process, gpu)
        child.close()
        return _Run(spec, process, parent, stop, gpu)

    def stop(self, training_id: str) -> None:
        with self._lock:
            run = self._runs.get(training_id)
        if run is None:  # not running here (finished, or never started): the row can say Stopped at once
            self._emit(TrainingStopped(training_id))
            return
        run.stop_asked = True
        run.stop.set()
        threading.Thread(target=self._kill_later, args=(run, STOP_GRACE_S), daemon=True).start()

    def running(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def close(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.closing = True
            run.stop.set()
        for run in runs:
            self._kill_later(run, 2.0)
            if run.reader is not None:
                run.reader.join(5.0)

    # -- internals ---------------------------------------------------------------------------------
    def _pick_gpu(self, instance_type: str) -> int | None:
        if not self._gpus or instance_type in CPU_TYPES:
            return None
        used = [r.gpu for r in self._runs.values() if r.gpu is not None]
        return min(range(self._gpus), key=used.count)

    @staticmethod
    def _kill_later(run: _Run, grace: float) -> None:
        run.process.join(grace)
        if run.process.is_alive():
            log.warning("training %s did not stop within %.0f s; killing its worker", run.spec.id, grace)
            run.process.kill()
            run.process.join(5.0)

    def _read(self, run: _Run) -> None:
        """Forward the worker's messages until it ends; a worker that dies silently fails the training."""
        try:
            while True:
                try:
                    message = run.conn.recv()
                except (EOFError, OSError):
                    break
                if self._forward(run, message):
                    break
        finally:
            run.process.join(10.0)
            if not run.ended and run.closing:
                self._emit(TrainingFailed(run.spec.id, SHUTDOWN_MESSAGE))
            elif not run.ended:
                if run.stop_asked:
                    self._emit(TrainingStopped(run.spec.id))
                else:
                    self._emit(TrainingFailed(run.spec.id, self._lost(run)))
            run.conn.close()
            with self._lock:
                self._runs.pop(run.spec.id, None)

    @staticmethod
    def _lost(run: _Run) -> str:
        """Why a worker that ended without a last word failed its training."""
        return f"the training process exited with code {run.process.exitcode} before it finished"

    def _forward(self, run: _Run, message: TrainingEvent) -> bool:
        """Emit one message; True when it was the last one."""
        match message:
            case TrainingStatus() | TrainingProgress():
                self._emit(message)
            case TrainingStopped() if run.closing:
                return True  # reported as a shutdown by the caller
            case TrainingCompleted() | TrainingFailed() | TrainingStopped():
                run.ended = True
                self._emit(message)
                return True
        return False

    def _emit(self, event: TrainingEvent) -> None:
        report(self._events.on_training, event)


# -- the worker process ---------------------------------------------------------------------------


def main(conn: Any, stop: Any, settings_values: dict[str, Any], spec: TrainingSpec, device: str) -> None:
    """Entry point of the spawned trainer process: one training, then exit."""
    from openesd.errors import OpenESDError

    try:
        result = _run(conn, stop, settings_values, spec, device)
    except OpenESDError as error:
        conn.send(TrainingFailed(spec.id, error.message))
    except BaseException as error:  # a bug or a broken file: the user still learns what happened
        log.exception("training %s failed", spec.id)
        conn.send(TrainingFailed(spec.id, f"the trainer failed: {type(error).__name__}: {error}"))
    else:
        conn.send(TrainingStopped(spec.id) if result is None else TrainingCompleted(spec.id, result))
    finally:
        conn.close()


def _run(
    conn: Any, stop: Any, settings_values: dict[str, Any], spec: TrainingSpec, device: str
) -> dict[str, Any] | None:
    from openesd.settings import Settings
    from openesd.storage import open_store
    from openesd.trainer import TrainingConfig, TrainingJob, train

    settings = Settings(**settings_values)
    store = open_store(settings.resolved_object_store_url, settings)
    work_root = settings.data_dir / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"training-{spec.id[:8]}-", dir=work_root))
    try:
        conn.send(TrainingStatus(spec.id, "Downloading"))
        base_model = _fetch_model(store, spec.model, settings.data_dir / "cache" / "models")
        dataset_dir = _fetch_dataset(store, spec.dataset_prefix, work / "dataset")
        config = TrainingConfig.from_kohya(spec.config)
        job = TrainingJob(
            base_model=base_model,
            model_type=spec.model_type,
            dataset_dir=dataset_dir,
            output_dir=work / "output",
            config=config,
            device=device,
        )
        conn.send(TrainingStatus(spec.id, "Training"))
        result = train(job, progress=lambda p: conn.send(TrainingProgress(spec.id, asdict(p))), should_stop=stop.is_set)
        if result.stopped:
            return None
        conn.send(TrainingStatus(spec.id, "Uploading"))
        files = [result.files[-1], *result.files[:-1]] if result.files else []
        hashes = {path.name: _upload(store, path, spec) for path in files}
        return {
            "files": [p.name for p in files],
            "hashes": hashes,
            "steps": result.steps,
            "ignored_keys": result.ignored_keys,
            "warnings": result.warnings,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_model(store: Any, model: ModelFile, root: Path) -> Path:
    """The base checkpoint, downloaded once per machine into `<root>/<id>/<file>` (shared with inference)."""
    path = root / model["id"] / model["model_name"]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        store.download(model["key"], path)  # atomic: a crash never leaves half a file
    return path


def _fetch_dataset(store: Any, prefix: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for stored in store.list(prefix):
        relative = stored.key[len(prefix) :]
        if not relative or ".." in relative.split("/"):
            continue
        store.download(stored.key, dest / relative)
    return dest


def _upload(store: ObjectStore, path: Path, spec: TrainingSpec) -> str:
    """Store the LoRA under the training's output folder and the output checkpoint's folder; its sha256 (hashed
    by the store as it wrote the file)."""
    stored = [store.put_file(f"{prefix}/{path.name}", path) for prefix in (spec.output_prefix, spec.checkpoint_folder)]
    return stored[0].put_sha256()
