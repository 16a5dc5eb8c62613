"""Runs merges off the API process: one orchestrating thread, the tensor work in a spawned process.

The thread downloads the inputs, waits for the child, stores the result and updates the record;
the child only reads local files and writes one (torch never loads into the API process)."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from openesd.checkpoints.repository import CheckpointRepository
from openesd.checkpoints.service import CheckpointService
from openesd.legacy.merges import MergeJob
from openesd.settings import Settings
from openesd.storage.base import ObjectStore

log = logging.getLogger("openesd.legacy.merge")


def merge_files(job: dict, inputs: dict[str, str | None], output: str) -> None:
    """In the child: the merge itself, from local paths."""
    from openesd.modeltools.merge import MergeOptions, merge_checkpoints

    options = MergeOptions(job["interp_method"], job["multiplier"], job["save_as_half"], job["discard_weights"],
                           job["metadata"])
    paths = {role: Path(p) if p else None for role, p in inputs.items()}
    merge_checkpoints(paths["primary"], Path(output), options, paths["secondary"], paths["tertiary"], paths["vae"])


class MergeRunner:
    def __init__(self, make_session: sessionmaker[Session], store: ObjectStore, settings: Settings):
        self._make_session, self._store, self._settings = make_session, store, settings
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="openesd-merge")

    def submit(self, job: MergeJob) -> None:
        self._thread.submit(self._run, job)

    def resume_pending(self) -> None:
        """Run again the merges a previous process left unfinished (their outputs are still `Initial`)."""
        with self._make_session() as session:
            pending = [MergeJob(**c.params["merge_job"]) for c in CheckpointRepository(session).pending_merges()]
        for job in pending:
            self.submit(job)

    def _run(self, job: MergeJob) -> None:
        work = Path(tempfile.mkdtemp(prefix="merge-", dir=self._scratch()))
        try:
            inputs = {role: str(self._fetch(key, work, role)) if key else None for role, key in (
                ("primary", job.primary_key), ("secondary", job.secondary_key),
                ("tertiary", job.tertiary_key), ("vae", job.vae_key))}
            output = work / "out.safetensors"
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
                child.submit(merge_files, asdict(job), inputs, str(output)).result()
            self._store.put_file(job.output_key, output)
            self._finish(job, _sha256(output))
        except Exception as error:  # every failure is recorded on the checkpoint for the user to read
            log.warning("merge into %s failed: %s", job.checkpoint_id, error)
            self._fail(job, str(getattr(error, "message", error)) or type(error).__name__)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _scratch(self) -> Path:
        folder = self._settings.data_dir / "tmp" / "merges"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _fetch(self, key: str, work: Path, role: str) -> Path:
        suffix = Path(key).suffix.lower()  # the reader picks safetensors or weights-only torch by suffix
        return self._store.download(key, work / f"{role}{suffix}")

    def _finish(self, job: MergeJob, sha256: str) -> None:
        with self._make_session.begin() as session:
            service = CheckpointService(session, self._store, self._settings)
            record = CheckpointRepository(session).get_for_update(job.checkpoint_id)
            if record is None:  # deleted while it merged: drop the file
                self._store.delete(job.output_key)
                return
            service.record_hashes(record, {record.names[0]: sha256})
            record.params = {k: v for k, v in record.params.items() if k != "merge_job"}
            record.status = "Active"

    def _fail(self, job: MergeJob, error: str) -> None:
        with self._make_session.begin() as session:
            record = CheckpointRepository(session).get_for_update(job.checkpoint_id)
            if record is not None:
                record.params = {**{k: v for k, v in record.params.items() if k != "merge_job"}, "error": error}
                record.status = "Disabled"

    def shutdown(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
