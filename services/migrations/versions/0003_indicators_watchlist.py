"""Indicators (technical, financial, calculated sessions) and watchlists.

Revision ID: 0003_indicators_watchlist
Revises: 0002_market_data
Create Date: 2026-11-22
"""
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0003_indicators_watchlist"
down_revision = "0002_market_data"
branch_labels = None
depends_on = None

TECHNICAL = ["sma_5", "sma_20", "sma_60", "sma_120", "ema_12", "ema_26", "ema_20", "rsi_14", "macd",
             "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14", "stoch_k",
             "stoch_d", "volume_ratio_20", "state_macd_fast", "state_macd_slow", "state_rsi_gain",
             "state_rsi_loss"]


def _key() -> list[sa.Column[Any]]:
    return [sa.Column("date", sa.Date(), primary_key=True), sa.Column("ticker", sa.String(12), primary_key=True)]


def upgrade() -> None:
    op.create_table("technical_indicators", *_key(),
                    *[sa.Column(name, sa.Float(), nullable=True) for name in TECHNICAL],
                    sqlite_with_rowid=False)
    op.create_table(
        "financial_indicators", *_key(),
        *[sa.Column(name, sa.Float(), nullable=True)
          for name in ("per", "pbr", "eps", "bps", "dividend_yield", "roe")],
        sa.Column("earnings_positive", sa.Boolean(), nullable=True),
        sa.Column("market_cap", sa.BigInteger(), nullable=True),
        sa.Column("market_cap_rank", sa.Integer(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "calculated_sessions",
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("tickers", sa.Integer(), nullable=False),
        sa.Column("lookback_start", sa.Date(), nullable=False),
        sa.Column("calculated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "watchlist_entries",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("ticker", sa.String(12), primary_key=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Float(), nullable=False)
          for name in ("score", "trend", "momentum", "volatility", "liquidity", "value")],
        sa.Column("close", sa.BigInteger(), nullable=False),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("entry_close", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "watchlist_runs",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("watchlist_runs", "watchlist_entries", "calculated_sessions", "financial_indicators",
                  "technical_indicators"):
        op.drop_table(table)
