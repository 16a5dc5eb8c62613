"""Background URL imports: one thread per download, state kept on the record, resumed after restarts."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from openesd.checkpoints.downloads import download
from openesd.checkpoints.service import ImportRecords
from openesd.settings import Settings
from openesd.storage.base import ObjectStore

log = logging.getLogger("openesd.checkpoints.importer")


class CheckpointImporter:
    def __init__(self, make_session: sessionmaker[Session], store: ObjectStore, settings: Settings, workers: int = 2):
        self._make_session = make_session
        self._store = store
        self._settings = settings
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="openesd-import")

    def submit(self, checkpoint_id: str) -> None:
        self._pool.submit(self._run, checkpoint_id)

    def resume_pending(self) -> None:
        """Restart imports a previous process left unfinished (their records are still `Initial`)."""
        with self._make_session() as session:
            pending = ImportRecords(session, self._store, self._settings).pending()
        for checkpoint_id in pending:
            self.submit(checkpoint_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _records(self, session: Session) -> ImportRecords:
        return ImportRecords(session, self._store, self._settings)

    def _run(self, checkpoint_id: str) -> None:
        with self._make_session.begin() as session:
            job = self._records(session).start(checkpoint_id)
        if job is None:
            return
        url, key = job
        try:
            fetched = download(
                url,
                self._settings.data_dir / "tmp" / "imports",
                allow_private=self._settings.allow_private_url_imports,
                max_bytes=self._settings.max_import_bytes,
                timeout=self._settings.import_timeout_s,
                progress=lambda done, total: self._progress(checkpoint_id, done, total),
            )
        except Exception as error:  # every failure is recorded on the record for the user to read
            log.warning("import of %s failed: %s", url, error)
            with self._make_session.begin() as session:
                self._records(session).fail(checkpoint_id, str(getattr(error, "message", error)))
            return
        try:
            self._store.put_file(key, fetched.path)
            with self._make_session.begin() as session:
                kept = self._records(session).finish(checkpoint_id, key, fetched.sha256)
            if not kept:
                self._store.delete(key)
        except Exception as error:
            log.exception("storing the import of %s failed", url)
            with self._make_session.begin() as session:
                self._records(session).fail(checkpoint_id, f"storing the file failed: {error}")
        finally:
            fetched.path.unlink(missing_ok=True)

    def _progress(self, checkpoint_id: str, done: int, total: int | None) -> None:
        with self._make_session.begin() as session:
            self._records(session).progress(checkpoint_id, done, total)
