"""Risk: trading halts and risk-limit breaches.

Revision ID: 0005_risk
Revises: 0004_trading
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0005_risk"
down_revision = "0004_trading"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trading_halts",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("halted_at", UTCDateTime(), nullable=False),
        sa.Column("halted_by", sa.String(32), nullable=False),
        sa.Column("resumed_at", UTCDateTime(), nullable=True),
        sa.Column("resumed_by", sa.String(32), nullable=True),
        sa.Column("baseline_at", UTCDateTime(), nullable=True),
        sa.Column("baseline_equity", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "risk_breaches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("trading_date", sa.Date(), nullable=False),
        sa.Column("limit_name", sa.String(48), nullable=False),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("checked_by", sa.String(32), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.UniqueConstraint("user_id", "dry_run", "trading_date", "limit_name", "subject",
                            name="uq_risk_breaches_once_a_day"),
    )


def downgrade() -> None:
    op.drop_table("risk_breaches")
    op.drop_table("trading_halts")
