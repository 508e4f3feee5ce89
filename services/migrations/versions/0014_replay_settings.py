"""The settings a replay ran with: ``replay_settings`` holds, per user of a simulation
database, the values of the settings that shape a replay's result, so a replay of the
same database with other settings is refused instead of answering with the old result.

Revision ID: 0014_replay_settings
Revises: 0013_console_audit_queued_runs
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0014_replay_settings"
down_revision = "0013_console_audit_queued_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_settings",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replay_settings")
