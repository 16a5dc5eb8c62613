"""Dreambooth-era base models of the legacy API (esd-legacy-api.md §9).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legacy_models",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("checkpoint_id", sa.String(36), nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("job_status", sa.String(16), nullable=False),
        sa.Column("output_s3_location", sa.String(1024), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("allowed_roles_or_users", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_legacy_models"),
    )
    op.create_index("ix_legacy_models_job_status", "legacy_models", ["job_status"])
    op.create_index("ix_legacy_models_created", "legacy_models", ["created"])


def downgrade() -> None:
    op.drop_table("legacy_models")
