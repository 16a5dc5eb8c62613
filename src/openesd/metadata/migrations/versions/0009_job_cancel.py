"""Job cancel: who asked to cancel an inference job (decisions.md, Jobs).

Adds `inference_jobs.cancelled_by`: set by `PUT /inferences/{id}/cancel`, read by the replica whose engine
carries the job (at the job's next report), so that a cancel reaches a worker from any API replica.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inference_jobs", sa.Column("cancelled_by", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inference_jobs") as batch:
        batch.drop_column("cancelled_by")
