"""Endpoints and inference jobs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("endpoint_name", sa.String(255), nullable=False),
        sa.Column("endpoint_type", sa.String(16), nullable=False),
        sa.Column("endpoint_status", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("autoscaling", sa.Boolean(), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("initial_instance_count", sa.Integer(), nullable=False),
        sa.Column("current_instance_count", sa.Integer(), nullable=False),
        sa.Column("min_instance_number", sa.Integer(), nullable=False),
        sa.Column("max_instance_number", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.String(32), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.Column("end_time", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner_group_or_role", sa.JSON(), nullable=False),
        sa.Column("custom_extensions", sa.Text(), nullable=False),
        sa.Column("creator", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_endpoints"),
        sa.UniqueConstraint("endpoint_name", name="uq_endpoints_endpoint_name"),
    )
    op.create_index("ix_endpoints_endpoint_status", "endpoints", ["endpoint_status"])
    op.create_index("ix_endpoints_instance_type", "endpoints", ["instance_type"])
    op.create_index("ix_endpoints_started", "endpoints", ["started"])
    op.create_table(
        "inference_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("inference_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_group_or_role", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.String(32), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("start_time", sa.String(32), nullable=True),
        sa.Column("complete_time", sa.String(32), nullable=True),
        sa.Column("image_names", sa.JSON(), nullable=True),
        sa.Column("inference_info_name", sa.String(255), nullable=True),
        sa.Column("sagemaker_raw", sa.Text(), nullable=True),
        sa.Column("payload_string", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("endpoint_id", sa.String(36), nullable=True),
        sa.Column("queued", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inference_jobs"),
    )
    op.create_index("ix_inference_jobs_task_type", "inference_jobs", ["task_type"])
    op.create_index("ix_inference_jobs_status", "inference_jobs", ["status"])
    op.create_index("ix_inference_jobs_created", "inference_jobs", ["created"])
    op.create_index("ix_inference_jobs_endpoint_id", "inference_jobs", ["endpoint_id"])
    op.create_index("ix_inference_jobs_queued", "inference_jobs", ["queued"])


def downgrade() -> None:
    op.drop_table("inference_jobs")
    op.drop_table("endpoints")
