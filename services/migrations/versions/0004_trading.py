"""Trading: paper accounts, orders, fills, positions, closed trades, signals and
portfolio snapshots.

Revision ID: 0004_trading
Revises: 0003_indicators_watchlist
Create Date: 2026-11-22
"""
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0004_trading"
down_revision = "0003_indicators_watchlist"
branch_labels = None
depends_on = None


def _money(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "paper_accounts",
        sa.Column("user_id", sa.String(64), primary_key=True),
        _money("initial_cash"), _money("cash"),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(120), nullable=False),
        sa.Column("broker", sa.String(16), nullable=False),
        sa.Column("broker_order_id", sa.String(64), nullable=True),
        sa.Column("trading_date", sa.Date(), nullable=False),
        sa.Column("ticker", sa.String(12), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        _money("quantity"), _money("limit_price", nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        _money("filled_quantity"), _money("reserved_cash"),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_orders_client_order_id"),
    )
    op.create_index("ix_orders_open", "orders", ["user_id", "dry_run", "status"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("fill_key", sa.String(80), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("ticker", sa.String(12), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        _money("quantity"), _money("price"), _money("commission"), _money("tax"),
        sa.Column("trade_date", sa.Date(), nullable=False),
        sa.Column("settles_on", sa.Date(), nullable=False),
        sa.Column("filled_at", UTCDateTime(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("user_id", "dry_run", "fill_key", name="uq_fills_fill_key"),
    )
    op.create_index("ix_fills_trade_date", "fills", ["user_id", "dry_run", "trade_date"])
    op.create_table(
        "positions",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("dry_run", sa.Boolean(), primary_key=True),
        sa.Column("ticker", sa.String(12), primary_key=True),
        _money("quantity"), _money("cost"),
        sa.Column("opened_on", sa.Date(), nullable=False),
        _money("high_water"),
    )
    op.create_table(
        "closed_trades",
        sa.Column("fill_id", sa.Integer(), sa.ForeignKey("fills.id"), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("ticker", sa.String(12), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=False),
        _money("quantity"), _money("cost"), _money("proceeds"), _money("pnl"),
    )
    op.create_index("ix_closed_trades_user_id", "closed_trades", ["user_id"])
    op.create_table(
        "signals",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("dry_run", sa.Boolean(), primary_key=True),
        sa.Column("trading_date", sa.Date(), primary_key=True),
        sa.Column("ticker", sa.String(12), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        _money("reference_price"), _money("quantity"),
        sa.Column("client_order_id", sa.String(120), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "signal_runs",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("dry_run", sa.Boolean(), primary_key=True),
        sa.Column("trading_date", sa.Date(), primary_key=True),
        sa.Column("watchlist_date", sa.Date(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("exits", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("sizing", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "portfolio_snapshots",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("dry_run", sa.Boolean(), primary_key=True),
        sa.Column("taken_at", UTCDateTime(), primary_key=True),
        sa.Column("trading_date", sa.Date(), nullable=False),
        _money("cash"), _money("settled_cash"), _money("market_value"), _money("equity"),
        sa.Column("exposure", sa.Float(), nullable=False),
        _money("unrealised_pnl"),
        sa.Column("positions", sa.Integer(), nullable=False),
        sa.Column("prices_observed", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for table in ("portfolio_snapshots", "signal_runs", "signals", "closed_trades", "positions", "fills",
                  "orders", "paper_accounts"):
        op.drop_table(table)
