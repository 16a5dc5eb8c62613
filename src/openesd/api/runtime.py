"""What a server process builds once at start: database, object store, secrets, seeded defaults."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from openesd.checkpoints.importer import CheckpointImporter
from openesd.keys import PasswordCipher, load_or_create_api_key
from openesd.metadata.db import create_db_engine, create_sessionmaker
from openesd.metadata.migrate import upgrade_to_head
from openesd.settings import Settings
from openesd.users.service import UserService


@dataclass
class Runtime:
    engine: Engine
    sessionmaker: sessionmaker[Session]
    store: object  # openesd.storage.base.ObjectStore
    api_keys: list[str]
    api_key_created: bool
    password_cipher: PasswordCipher
    importer: CheckpointImporter

    def start_background(self) -> None:
        """Pick up work a previous process left unfinished."""
        self.importer.resume_pending()

    def close(self) -> None:
        self.importer.shutdown()
        self.engine.dispose()


def boot(settings: Settings) -> Runtime:
    """Migrate, seed the default roles and user where absent, and open the backends. Idempotent."""
    from openesd.storage import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.resolved_database_url)
    upgrade_to_head(engine)
    make_session = create_sessionmaker(engine)
    cipher = PasswordCipher(settings.data_dir)
    with make_session.begin() as session:
        UserService(session, cipher, settings).seed_defaults()
    keys, created = list(settings.api_keys), False
    if not keys:
        key, created = load_or_create_api_key(settings.data_dir)
        keys = [key]
    store = open_store(settings.resolved_object_store_url, settings)
    importer = CheckpointImporter(make_session, store, settings)
    return Runtime(engine, make_session, store, keys, created, cipher, importer)
