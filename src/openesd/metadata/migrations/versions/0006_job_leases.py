"""Job leases: which API replica carries an unfinished inference job, and until when (decisions.md, Ray).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inference_jobs", sa.Column("lease_owner", sa.String(255), nullable=True))
    op.add_column("inference_jobs", sa.Column("lease_expires", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inference_jobs") as batch:
        batch.drop_column("lease_expires")
        batch.drop_column("lease_owner")
