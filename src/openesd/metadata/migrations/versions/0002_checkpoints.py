"""Checkpoints and their unique file names.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("checkpoint_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("allowed_roles_or_users", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("hashes", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("version", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
    )
    op.create_index("ix_checkpoints_checkpoint_type", "checkpoints", ["checkpoint_type"])
    op.create_index("ix_checkpoints_status", "checkpoints", ["status"])
    op.create_index("ix_checkpoints_created", "checkpoints", ["created"])
    op.create_index("ix_checkpoints_content_hash", "checkpoints", ["content_hash"])
    op.create_table(
        "checkpoint_names",
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("checkpoint_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_checkpoint_names"),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["checkpoints.id"],
            ondelete="CASCADE",
            name="fk_checkpoint_names_checkpoint_id_checkpoints",
        ),
    )
    op.create_index("ix_checkpoint_names_checkpoint_id", "checkpoint_names", ["checkpoint_id"])


def downgrade() -> None:
    op.drop_table("checkpoint_names")
    op.drop_table("checkpoints")
