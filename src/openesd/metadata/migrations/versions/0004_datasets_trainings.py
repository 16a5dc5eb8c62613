"""Datasets, their items, and trainings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("prefix", sa.String(255), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("allowed_roles_or_users", sa.JSON(), nullable=False),
        sa.Column("creator", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_datasets"),
    )
    op.create_index("ix_datasets_status", "datasets", ["status"])
    op.create_index("ix_datasets_created", "datasets", ["created"])
    op.create_table(
        "dataset_items",
        sa.Column("dataset_name", sa.String(64), nullable=False),
        sa.Column("sort_key", sa.String(512), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("item_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("allowed_roles_or_users", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_name"], ["datasets.name"], name="fk_dataset_items_dataset_name_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_name", "sort_key", name="pk_dataset_items"),
    )
    op.create_index("ix_dataset_items_key", "dataset_items", ["key"])
    op.create_table(
        "trainings",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("job_status", sa.String(32), nullable=False),
        sa.Column("checkpoint_id", sa.String(36), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("sagemaker_train_name", sa.String(255), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("allowed_roles_or_users", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("runner_host", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trainings"),
    )
    op.create_index("ix_trainings_created", "trainings", ["created"])
    op.create_index("ix_trainings_job_status", "trainings", ["job_status"])
    op.create_index("ix_trainings_instance_type", "trainings", ["instance_type"])


def downgrade() -> None:
    op.drop_table("trainings")
    op.drop_table("dataset_items")
    op.drop_table("datasets")
