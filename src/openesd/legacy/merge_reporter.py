"""The engine's way back for legacy model merges: MergeEvents written to the output checkpoint in short
transactions (`Active` with its hash, or `Disabled` with `params.error`), and the start-up resubmission of
the merges a previous process left unfinished."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from openesd.checkpoints.repository import CheckpointRepository
from openesd.checkpoints.service import CheckpointService
from openesd.execution.base import Engine, MergeSpec
from openesd.execution.events import MergeEvent, MergeFailed, MergeSucceeded
from openesd.settings import Settings
from openesd.storage.base import ObjectStore

PENDING = "merge_job"  # the output record's param holding its MergeSpec until the merge ends


class MergeReporter:
    """Implements `MergeEvents` of `openesd.execution.events`."""

    def __init__(self, make_session: sessionmaker[Session], store: ObjectStore, settings: Settings):
        self._make_session, self._store, self._settings = make_session, store, settings

    def on_merge(self, event: MergeEvent) -> None:
        match event:
            case MergeSucceeded():
                self.merge_succeeded(event.checkpoint_id, event.key, event.sha256)
            case MergeFailed():
                self.merge_failed(event.checkpoint_id, event.message)

    def merge_succeeded(self, checkpoint_id: str, key: str, sha256: str) -> None:
        with self._make_session.begin() as session:
            record = CheckpointRepository(session).get_for_update(checkpoint_id)
            if record is None:  # deleted while it merged: drop the file
                self._store.delete(key)
                return
            CheckpointService(session, self._store, self._settings).record_hashes(record, {record.names[0]: sha256})
            record.params = {k: v for k, v in record.params.items() if k != PENDING}
            record.status = "Active"

    def merge_failed(self, checkpoint_id: str, message: str) -> None:
        with self._make_session.begin() as session:
            record = CheckpointRepository(session).get_for_update(checkpoint_id)
            if record is not None:
                record.params = {**{k: v for k, v in record.params.items() if k != PENDING}, "error": message}
                record.status = "Disabled"


def resume_pending(make_session: sessionmaker[Session], engine: Engine) -> None:
    """Submit again the merges a previous process left unfinished (their outputs are still `Initial`)."""
    with make_session() as session:
        pending = [MergeSpec(**c.params[PENDING]) for c in CheckpointRepository(session).pending_merges()]
    for spec in pending:
        engine.submit_merge(spec)
