"""Market data: stock master, daily prices, fundamentals, collected sessions.

Revision ID: 0002_market_data
Revises: 0001_job_runs
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0002_market_data"
down_revision = "0001_job_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stocks",
        sa.Column("ticker", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("market", sa.String(16), nullable=False),
        sa.Column("updated_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "daily_prices",
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("ticker", sa.String(12), primary_key=True),
        sa.Column("open", sa.BigInteger(), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.Column("close", sa.BigInteger(), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("change_pct", sa.Float(), nullable=False),
        sa.Column("market_cap", sa.BigInteger(), nullable=False),
        sa.Column("market", sa.String(16), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "fundamentals",
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("ticker", sa.String(12), primary_key=True),
        sa.Column("bps", sa.BigInteger(), nullable=False),
        sa.Column("per", sa.Float(), nullable=False),
        sa.Column("pbr", sa.Float(), nullable=False),
        sa.Column("eps", sa.BigInteger(), nullable=False),
        sa.Column("div", sa.Float(), nullable=False),
        sa.Column("dps", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "collected_sessions",
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("stock_rows", sa.Integer(), nullable=False),
        sa.Column("price_rows", sa.Integer(), nullable=False),
        sa.Column("fundamental_rows", sa.Integer(), nullable=False),
        sa.Column("rejected_rows", sa.Integer(), nullable=False),
        sa.Column("collected_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("collected_sessions")
    op.drop_table("fundamentals")
    op.drop_table("daily_prices")
    op.drop_table("stocks")
