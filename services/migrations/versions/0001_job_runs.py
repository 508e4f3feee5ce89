"""The run ledger.

Revision ID: 0001_job_runs
Revises:
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0001_job_runs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_name", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=False),
        sa.Column("trading_date", sa.Date(), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.UniqueConstraint("job_name", "user_id", "scheduled_for", name="uq_job_runs_fire"),
    )
    op.create_index("ix_job_runs_job_scheduled", "job_runs", ["job_name", "scheduled_for"])


def downgrade() -> None:
    op.drop_index("ix_job_runs_job_scheduled", table_name="job_runs")
    op.drop_table("job_runs")
