"""Bring the database schema to this release's head on start, refusing a schema from the future."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from openesd.metadata.errors import SchemaTooNew

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration; raise SchemaTooNew when the database is ahead of us."""
    config = _config()
    scripts = ScriptDirectory.from_config(config)
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
        unknown = [rev for rev in current if not _known(scripts, rev)]
        if unknown:
            raise SchemaTooNew(
                f"the database schema is at revision {', '.join(unknown)}, newer than this "
                f"OpenESD knows (head {scripts.get_current_head()}); upgrade OpenESD to the "
                "release that wrote it, or point OPENESD_DATABASE_URL at another database"
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # alembic raises several types for an unknown revision id
        return False
