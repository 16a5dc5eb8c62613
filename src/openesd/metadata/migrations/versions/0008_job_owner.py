"""Job owner: the listing of inference jobs filters visibility and pages in SQL (decisions.md, Load).

Adds `inference_jobs.owner`, the only name of a job's `owner_group_or_role` (null when it holds none or
several), backfilled from that list, and the indexes one listing page reads.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_jobs = sa.table(
    "inference_jobs",
    sa.column("id", sa.String),
    sa.column("owner_group_or_role", sa.JSON),
    sa.column("owner", sa.String),
)


def upgrade() -> None:
    op.add_column("inference_jobs", sa.Column("owner", sa.String(255), nullable=True))
    connection = op.get_bind()
    owners = [
        {"job_id": job_id, "name": names[0]}
        for job_id, names in connection.execute(sa.select(_jobs.c.id, _jobs.c.owner_group_or_role))
        if isinstance(names, list) and len(names) == 1
    ]
    if owners:
        connection.execute(
            _jobs.update().where(_jobs.c.id == sa.bindparam("job_id")).values(owner=sa.bindparam("name")), owners
        )
    op.create_index("ix_inference_jobs_listing", "inference_jobs", ["task_type", "created", "id"])
    op.create_index("ix_inference_jobs_owner", "inference_jobs", ["owner", "task_type", "created"])


def downgrade() -> None:
    op.drop_index("ix_inference_jobs_owner", "inference_jobs")
    op.drop_index("ix_inference_jobs_listing", "inference_jobs")
    with op.batch_alter_table("inference_jobs") as batch:
        batch.drop_column("owner")
