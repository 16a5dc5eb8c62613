"""Model merges on this machine: one at a time, each in a spawned worker process (torch never loads into
the API process).

The worker fetches the inputs from the object store into a scratch folder, merges them on the CPU,
stores the result at the spec's output key and answers with one MergeEvent over its pipe; the runner's
thread hands it to the merges' consumer. A merge the server was running when it closed reports nothing:
its output checkpoint stays `Initial` and the next start submits it again.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openesd.execution.base import MergeSpec, report
from openesd.execution.events import MergeEvent, MergeEvents, MergeFailed, MergeSucceeded

if TYPE_CHECKING:
    from openesd.storage.base import ObjectStore

log = logging.getLogger("openesd.execution.merge")
_SPAWN = multiprocessing.get_context("spawn")


class MergeRunner:
    """Runs merges in submit order, each in a worker process, and reports them through `events`."""

    def __init__(self, settings_values: dict[str, Any], events: MergeEvents):
        self._values = settings_values
        self._events = events
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="openesd-merge")
        self._closing = threading.Event()
        self._running: Any = None  # the worker of the merge under way (a process here, a Ray task there)

    def submit(self, spec: MergeSpec) -> None:
        try:
            self._thread.submit(self._run, spec)
        except RuntimeError:  # closed: the output stays Initial and runs again on the next start
            log.info("merge into %s not started: the engine is closing", spec.checkpoint_id)

    def close(self) -> None:
        """Drop the queued merges and end the one under way, reporting none of them."""
        self._closing.set()
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._cancel()

    def _run(self, spec: MergeSpec) -> None:
        if self._closing.is_set():
            return
        event = self._execute(spec)
        if not self._closing.is_set():
            report(self._events.on_merge, event)

    def _execute(self, spec: MergeSpec) -> MergeEvent:
        """Run the merge in a spawned process; the Ray engine runs a Ray task in its place."""
        from openesd.execution._pool import start_pinned

        parent, child = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(target=main, args=(child, self._values, spec), name="openesd-merge", daemon=True)
        start_pinned(process, None)  # the merge runs on the CPU; no GPU is taken from the endpoints
        child.close()
        self._running = process
        try:
            event: MergeEvent = parent.recv()
            return event
        except (EOFError, OSError):
            process.join(10.0)
            return MergeFailed(
                spec.checkpoint_id, f"the merge process exited with code {process.exitcode} before it finished"
            )
        finally:
            process.join(10.0)
            parent.close()
            self._running = None

    def _cancel(self) -> None:
        process = self._running
        if process is not None:
            process.kill()


# -- the worker -----------------------------------------------------------------------------------


def main(conn: Any, settings_values: dict[str, Any], spec: MergeSpec) -> None:
    """Entry point of the spawned merge process: one merge, its event, then exit."""
    try:
        conn.send(run(settings_values, spec))
    finally:
        conn.close()


def run(settings_values: dict[str, Any], spec: MergeSpec) -> MergeEvent:
    """The whole merge where it runs (process or Ray task); never raises: the event says how it ended."""
    try:
        return MergeSucceeded(spec.checkpoint_id, spec.output_key, _merge(settings_values, spec))
    except Exception as error:  # every failure is recorded on the checkpoint for the user to read
        log.warning("merge into %s failed: %s", spec.checkpoint_id, error)
        return MergeFailed(spec.checkpoint_id, str(getattr(error, "message", error)) or type(error).__name__)


def _merge(settings_values: dict[str, Any], spec: MergeSpec) -> str:
    """Fetch, merge, store; the sha256 of the stored file (hashed by the store as it wrote it)."""
    from openesd.modeltools.merge import MergeOptions, merge_checkpoints
    from openesd.settings import Settings
    from openesd.storage import open_store

    settings = Settings(**settings_values)
    store = open_store(settings.resolved_object_store_url, settings)
    scratch = settings.data_dir / "tmp" / "merges"
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="merge-", dir=scratch))
    try:
        primary = _fetch(store, spec.primary_key, work, "primary")
        inputs = {
            role: _fetch(store, key, work, role) if key else None
            for role, key in (("secondary", spec.secondary_key), ("tertiary", spec.tertiary_key), ("vae", spec.vae_key))
        }
        options = MergeOptions(
            spec.interp_method, spec.multiplier, spec.save_as_half, spec.discard_weights, spec.metadata
        )
        output = work / "out.safetensors"
        merge_checkpoints(primary, output, options, inputs["secondary"], inputs["tertiary"], inputs["vae"])
        return store.put_file(spec.output_key, output).put_sha256()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch(store: ObjectStore, key: str, work: Path, role: str) -> Path:
    suffix = Path(key).suffix.lower()  # the reader picks safetensors or weights-only torch by suffix
    return store.download(key, work / f"{role}{suffix}")
