"""The AUTOMATIC1111 API's per-user settings (`POST /sdapi/v1/options`, decisions.md).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webui_options",
        sa.Column("username", sa.String(255), sa.ForeignKey("users.username", ondelete="CASCADE"), primary_key=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webui_options")
