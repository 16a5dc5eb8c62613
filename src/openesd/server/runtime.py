"""What a server process builds once at start: database, object store, secrets, seeded defaults."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from openesd.api.metrics import Metrics
from openesd.checkpoints.importer import CheckpointImporter
from openesd.auth.passwords import Passwords
from openesd.execution.base import Engine as ExecutionEngine
from openesd.inferences.leases import LeaseKeeper, release, replica_name
from openesd.inferences.reporter import EngineReporter, JobWaiter
from openesd.jobevents.bell import EventBell
from openesd.keys import PasswordCipher, load_or_create_api_key
from openesd.metadata.db import create_db_engine, create_sessionmaker
from openesd.metadata.migrate import upgrade_to_head
from openesd.settings import Settings
from openesd.users.service import UserService
from openesd.webhooks.dispatcher import WebhookDispatcher

if TYPE_CHECKING:
    from openesd.trainings.reporter import TrainingReporter

log = logging.getLogger("openesd.server.runtime")
COMPAT_WARNING = (
    "OPENESD_AUTH_MODE=compat: the `username` header is trusted, as ESD trusts it, so anyone holding the API key "
    "can act as any user; set OPENESD_AUTH_MODE=strict for any shared server"
)


@dataclass
class Runtime:
    engine: Engine
    sessionmaker: sessionmaker[Session]
    store: object  # openesd.storage.base.ObjectStore
    api_keys: list[str]
    api_key_created: bool
    password_cipher: PasswordCipher
    importer: CheckpointImporter
    waiter: JobWaiter
    engine_url: str
    settings: Settings
    replica: str = field(default_factory=replica_name)  # owner of the job leases taken by this process
    metrics: Metrics = field(init=False)  # `/metrics`; its database gauges read through `sessionmaker`
    event_bell: EventBell = field(init=False)  # wakes the open event streams of this process
    _execution: ExecutionEngine | None = None
    _leases: LeaseKeeper | None = None
    _webhooks: WebhookDispatcher | None = None

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.sessionmaker)
        self.event_bell = EventBell(self.sessionmaker, self.settings.job_events_keep_s)

    @property
    def execution(self) -> ExecutionEngine:
        """The execution engine (worker processes), opened on first use."""
        if self._execution is None:
            from openesd.execution import open_engine
            from openesd.execution.events import EngineConsumers
            from openesd.legacy.merge_reporter import MergeReporter
            from openesd.trainings.reporter import TrainingReporter

            reporter = EngineReporter(self.sessionmaker, self.store, self.waiter, self.metrics)
            events = EngineConsumers(
                endpoints=reporter,
                jobs=reporter,
                trainings=TrainingReporter(self.sessionmaker, self.store),
                merges=MergeReporter(self.sessionmaker, self.store, self.settings),
            )
            self._execution = open_engine(self.engine_url, self.settings, events)
            reporter.cancel_requested = self._execution.cancel
        return self._execution

    def training_reporter(self) -> TrainingReporter:
        """For a route: writes a training's failure when the engine refuses it."""
        from openesd.trainings.reporter import TrainingReporter

        return TrainingReporter(self.sessionmaker, self.store)

    def start_background(self) -> None:
        """Pick up work a previous process left unfinished."""
        from openesd.inferences.recovery import resume
        from openesd.trainings.reporter import fail_interrupted

        self.importer.resume_pending()
        fail_interrupted(self.sessionmaker)
        lease_s = self.settings.job_lease_s
        resume(self.sessionmaker, self.execution, self.replica, lease_s)
        if self.settings.legacy_enabled:  # the legacy model merges (run-model-merge) left unfinished
            from openesd.legacy.merge_reporter import resume_pending

            resume_pending(self.sessionmaker, self.execution)
        self._leases = LeaseKeeper(self.sessionmaker, self.execution, self.replica, lease_s)
        self._leases.start()
        if self.settings.webhook_poll_s > 0:
            self._webhooks = self.webhook_dispatcher()
            self._webhooks.start()

    def webhook_dispatcher(self, clock: Callable[[], float] = time.time) -> WebhookDispatcher:
        """This replica's webhook delivery (tests build their own with a clock of their choosing)."""
        return WebhookDispatcher(
            self.sessionmaker,
            self.password_cipher,
            self.replica,
            allow_private=self.settings.allow_private_webhooks,
            timeout_s=self.settings.webhook_timeout_s,
            poll_s=self.settings.webhook_poll_s,
            clock=clock,
        )

    def close(self) -> None:
        self.event_bell.close()
        self.importer.shutdown()
        if self._leases is not None:
            self._leases.stop()
        if self._webhooks is not None:
            self._webhooks.stop()
        if self._execution is not None:
            self._execution.close()
            self._release_leases()
        self.engine.dispose()

    def _release_leases(self) -> None:
        """The closed engine carries nothing now: let another replica take its jobs without waiting."""
        try:
            release(self.sessionmaker, self.replica)
        except SQLAlchemyError:  # the leases then lapse by themselves
            log.warning("could not release the job leases of %s", self.replica, exc_info=True)


def boot(settings: Settings) -> Runtime:
    """Migrate, seed the default roles and user where absent, and open the backends. Idempotent."""
    from openesd.storage import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.resolved_database_url)
    upgrade_to_head(engine)
    make_session = create_sessionmaker(engine)
    cipher = PasswordCipher(settings.data_dir, settings.password_key)
    with make_session.begin() as session:
        UserService(session, Passwords(cipher, settings.auth_mode), settings).seed_defaults()
    if settings.auth_mode == "compat":
        log.warning(COMPAT_WARNING)
    keys, created = list(settings.api_keys), False
    if not keys:
        key, created = load_or_create_api_key(settings.data_dir)
        keys = [key]
    store = open_store(settings.resolved_object_store_url, settings)
    importer = CheckpointImporter(make_session, store, settings)
    waiter = JobWaiter(make_session)
    return Runtime(engine, make_session, store, keys, created, cipher, importer, waiter, settings.engine_url, settings)
