"""Scheduler heartbeats: every running scheduler (``start``) writes a row of its own and
renews ``beat_at`` every few seconds, so the REST API's ``/ready`` knows a scheduler of
the account is alive (a row whose beat is old is a scheduler that died).

Revision ID: 0012_scheduler_heartbeats
Revises: 0011_live_baseline
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0012_scheduler_heartbeats"
down_revision = "0011_live_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_heartbeats",
        sa.Column("instance_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("beat_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_scheduler_heartbeats_account", "scheduler_heartbeats", ["user_id", "dry_run", "beat_at"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_heartbeats_account", table_name="scheduler_heartbeats")
    op.drop_table("scheduler_heartbeats")
