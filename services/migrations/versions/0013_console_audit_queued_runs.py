"""The console's mutations: ``console_audit`` records every mutation the REST API was
asked for (after its token was accepted): when, for which account, what, from where,
and how it was answered; ``queued_runs`` holds the job runs asked for through the API
until a running scheduler of the account claims and runs them.

Revision ID: 0013_console_audit_queued_runs
Revises: 0012_scheduler_heartbeats
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0013_console_audit_queued_runs"
down_revision = "0012_scheduler_heartbeats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("client", sa.String(300), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
    )
    op.create_index("ix_console_audit_account", "console_audit", ["user_id", "dry_run", "id"])
    op.create_table(
        "queued_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("job_name", sa.String(64), nullable=False),
        sa.Column("trading_date", sa.Date(), nullable=True),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_queued_runs_account_status", "queued_runs", ["user_id", "dry_run", "status"])


def downgrade() -> None:
    op.drop_index("ix_queued_runs_account_status", table_name="queued_runs")
    op.drop_table("queued_runs")
    op.drop_index("ix_console_audit_account", table_name="console_audit")
    op.drop_table("console_audit")
