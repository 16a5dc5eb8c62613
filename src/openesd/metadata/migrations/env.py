"""Alembic environment: runs on the connection handed in by `openesd.metadata.migrate`."""

from alembic import context

from openesd.metadata import models  # noqa: F401  (registers the tables on Base.metadata)
from openesd.metadata.base import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
