"""The engine's way back for trainings: TrainingEvents written to the tables in short transactions.

Workers never touch the tables. A report about a training that was deleted or already ended is ignored.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from sqlalchemy.orm import Session, object_session, sessionmaker

from openesd.checkpoints.repository import CheckpointRepository, NameTaken
from openesd.execution.events import (
    TrainingCompleted,
    TrainingEvent,
    TrainingFailed,
    TrainingProgress,
    TrainingStatus,
    TrainingStopped,
)
from openesd.jobevents.publish import publish
from openesd.metadata.models import Checkpoint, Training, sole_owner
from openesd.storage.base import ObjectStore
from openesd.storage.layout import checkpoint_folder
from openesd.trainings.repository import TrainingRepository
from openesd.trainings.schemas import TERMINAL

log = logging.getLogger("openesd.trainings.reporter")
PROGRESS_WRITE_EVERY_S = 0.5
RESTART_MESSAGE = (
    "the server stopped while this training was running, which ended it; start a new training "
    "(its output checkpoint stays Initial)"
)


class TrainingReporter:
    """Implements `TrainingEvents` of `openesd.execution.events`."""

    def __init__(self, make_session: sessionmaker[Session], store: ObjectStore):
        self._make_session = make_session
        self._store = store
        self._last_progress: dict[str, float] = {}

    def on_training(self, event: TrainingEvent) -> None:
        match event:
            case TrainingStatus():
                self.training_status(event.training_id, event.status)
            case TrainingProgress():
                self.training_progress(event.training_id, event.progress)
            case TrainingCompleted():
                self.training_completed(event.training_id, event.result)
            case TrainingFailed():
                self.training_failed(event.training_id, event.message)
            case TrainingStopped():
                self.training_stopped(event.training_id)

    def training_status(self, training_id: str, status: str) -> None:
        with self._make_session.begin() as session:
            training = _running(session, training_id)
            if training is not None:
                first = training.progress is None and status == "Downloading"
                training.job_status = status
                publish_training_event(training, "scheduled" if first else "phase", {"phase": status})

    def training_progress(self, training_id: str, progress: dict) -> None:
        now = time.monotonic()
        last = progress.get("step") == progress.get("total_steps")
        if not last and now - self._last_progress.get(training_id, 0.0) < PROGRESS_WRITE_EVERY_S:
            return
        self._last_progress[training_id] = now
        with self._make_session.begin() as session:
            training = _running(session, training_id)
            if training is not None:
                training.progress = {
                    key: progress.get(key)
                    for key in ("step", "total_steps", "epoch", "total_epochs", "loss", "eta_seconds")
                }
                data = {key: value for key, value in training.progress.items() if key != "total_steps"}
                publish_training_event(training, "step", {**data, "total": progress.get("total_steps")})

    def training_completed(self, training_id: str, result: dict) -> None:
        """§10.3: the output checkpoint becomes Active with every file; no file at all is `Fail`."""
        with self._make_session.begin() as session:
            training = _running(session, training_id)
            if training is None:
                return
            summary = {key: result.get(key) for key in ("files", "steps", "warnings")}
            training.params = {**training.params, "resp": {"raw_resp": summary}}
            files = list(result.get("files") or [])
            if not files:
                self._end(training, "Fail")
                return
            checkpoint = CheckpointRepository(session).get_for_update(training.checkpoint_id)
            if checkpoint is None:  # deleted while training: drop the copies made for it
                self._store.delete_prefix(checkpoint_folder("Lora", training.checkpoint_id) + "/")
            else:
                _activate(session, checkpoint, files, result.get("hashes") or {})
            self._end(training, "Completed")

    def training_failed(self, training_id: str, message: str) -> None:
        self._fail(training_id, "Failed", message)

    def training_stopped(self, training_id: str) -> None:
        self._fail(training_id, "Stopped", "stopped on request")

    def _fail(self, training_id: str, status: str, message: str) -> None:
        with self._make_session.begin() as session:
            training = _running(session, training_id)
            if training is not None:
                training.params = {
                    **training.params,
                    "resp": {"status": status, "error_msg": message, "raw_resp": message},
                }
                self._end(training, status)

    def _end(self, training: Training, status: str) -> None:
        training.job_status = status
        resp = training.params.get("resp") or {}
        if status == "Completed":
            files = (resp.get("raw_resp") or {}).get("files") or []
            publish_training_event(training, "succeeded", {"checkpoint_id": training.checkpoint_id, "files": files})
        elif status == "Stopped":
            publish_training_event(training, "cancelled", {"message": resp.get("error_msg")})
        else:
            message = resp.get("error_msg") or "the training wrote no output file"  # `Fail`: §10.3
            publish_training_event(training, "failed", {"status": status, "message": message})
        if training.progress:
            training.progress = {**training.progress, "eta_seconds": 0.0 if status == "Completed" else None}
        self._last_progress.pop(training.id, None)


def publish_training_event(training: Training, kind: str, data: dict[str, Any]) -> int:
    """An event of `training` in the transaction that changes its row (decisions.md, Jobs: live events)."""
    session = object_session(training)
    if session is None:
        raise ValueError(f"training {training.id} is not in a session: its event would not be committed with it")
    owner = sole_owner(training.allowed_roles_or_users)
    return publish(session, job_kind="training", job_id=training.id, owner=owner, kind=kind, data=data)


def _running(session: Session, training_id: str) -> Training | None:
    training = TrainingRepository(session).get_for_update(training_id)
    return training if training is not None and training.job_status not in TERMINAL else None


def _activate(session: Session, checkpoint: Checkpoint, files: list[str], hashes: dict[str, str]) -> None:
    """Every output file becomes a name of the checkpoint; an intermediate whose name another checkpoint
    holds stays in the training's output folder only (names are unique across checkpoints)."""
    repository = CheckpointRepository(session)
    names = [name for name in files if name in checkpoint.names or _reserved(repository, checkpoint.id, name)]
    checkpoint.names = names
    checkpoint.hashes = {name: hashes[name] for name in names if name in hashes}
    checkpoint.content_hash = checkpoint.hashes.get(names[0])
    checkpoint.status = "Active"


def _reserved(repository: CheckpointRepository, checkpoint_id: str, name: str) -> bool:
    try:
        repository.reserve(checkpoint_id, [name])
    except NameTaken:
        log.warning("%s is taken by another checkpoint; it stays in the training's output folder only", name)
        return False
    return True


def fail_interrupted(make_session: sessionmaker[Session]) -> int:
    """After a restart: the trainings this machine was running ended with the old process; say so."""
    host = socket.gethostname()
    with make_session.begin() as session:
        interrupted = [t for t in TrainingRepository(session).running() if t.runner_host in (None, host)]
        for training in interrupted:
            training.params = {
                **training.params,
                "resp": {"status": "Failed", "error_msg": RESTART_MESSAGE, "raw_resp": RESTART_MESSAGE},
            }
            training.job_status = "Failed"
            publish_training_event(training, "failed", {"status": "Failed", "message": RESTART_MESSAGE})
    return len(interrupted)
