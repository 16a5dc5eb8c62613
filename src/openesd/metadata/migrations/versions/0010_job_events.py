"""Job events: the live event stream of inference jobs and trainings (decisions.md, Jobs: live events).

Adds `job_events`: one row per event, published in the transaction of the state change it reports, read by
every API replica's event streams (`GET /events`, `GET /inferences/{id}/events`, `GET /trainings/{id}/events`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_events_job", "job_events", ["job_kind", "job_id", "id"])
    op.create_index("ix_job_events_owner", "job_events", ["owner", "id"])
    op.create_index("ix_job_events_created", "job_events", ["created"])


def downgrade() -> None:
    op.drop_table("job_events")
