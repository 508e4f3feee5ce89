"""Trading tables: the paper account, orders, fills, positions, closed trades,
signals and portfolio snapshots. Money in whole KRW; every row says whether it was
dry run (paper) or sent to the broker."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base, UTCDateTime


class PaperAccount(Base):
    """A user's paper account: opened with ``--portfolio-value`` as its cash."""

    __tablename__ = "paper_accounts"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    initial_cash: Mapped[int] = mapped_column(BigInteger)
    cash: Mapped[int] = mapped_column(BigInteger)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the last session settled on its daily bar (a provider without intraday prices)
    bars_settled_through: Mapped[date | None] = mapped_column(Date, nullable=True)


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("user_id", "client_order_id", name="uq_orders_client_order_id"),
                      Index("ix_orders_open", "user_id", "dry_run", "status"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str] = mapped_column(String(120))
    broker: Mapped[str] = mapped_column(String(16))
    broker_order_id: Mapped[str | None] = mapped_column(String(64))
    trading_date: Mapped[date] = mapped_column(Date)
    ticker: Mapped[str] = mapped_column(String(12))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[int] = mapped_column(BigInteger)
    limit_price: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    filled_quantity: Mapped[int] = mapped_column(BigInteger)
    #: cash held back for an open paper buy (released as it fills or ends)
    reserved_cash: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(300))
    dry_run: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: live orders: when a process claimed the order to send it (NULL: not sent yet)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FillRow(Base):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("user_id", "dry_run", "fill_key", name="uq_fills_fill_key"),
                      Index("ix_fills_trade_date", "user_id", "dry_run", "trade_date"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    #: unique per account: paper "<order id>:<fill number>", live the broker's order and fill
    fill_key: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[str] = mapped_column(String(64))
    ticker: Mapped[str] = mapped_column(String(12))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[int] = mapped_column(BigInteger)
    commission: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    trade_date: Mapped[date] = mapped_column(Date)
    settles_on: Mapped[date] = mapped_column(Date)
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool]


class PositionRow(Base):
    """An open position; ``cost`` includes buy commissions; ``high_water`` is the
    highest price seen since it opened (trailing stops)."""

    __tablename__ = "positions"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dry_run: Mapped[bool] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[int] = mapped_column(BigInteger)
    opened_on: Mapped[date] = mapped_column(Date)
    high_water: Mapped[int] = mapped_column(BigInteger)


class ClosedTrade(Base):
    """A sale and the cost of the shares it sold: the history half-Kelly sizing reads."""

    __tablename__ = "closed_trades"

    fill_id: Mapped[int] = mapped_column(ForeignKey("fills.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    dry_run: Mapped[bool]
    ticker: Mapped[str] = mapped_column(String(12))
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[int] = mapped_column(BigInteger)
    proceeds: Mapped[int] = mapped_column(BigInteger)  # after commission and tax
    pnl: Mapped[int] = mapped_column(BigInteger)


class SignalRow(Base):
    """An entry or exit signal for a trading date, with why and how strong."""

    __tablename__ = "signals"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dry_run: Mapped[bool] = mapped_column(primary_key=True)
    trading_date: Mapped[date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # entry | exit
    source: Mapped[str] = mapped_column(String(16))  # pre_open | intraday
    reason: Mapped[str] = mapped_column(String(300))
    strength: Mapped[float] = mapped_column(Float)
    reference_price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    client_order_id: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignalRun(Base):
    """Signals of (user, mode, date) were generated: a re-run places nothing twice."""

    __tablename__ = "signal_runs"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dry_run: Mapped[bool] = mapped_column(primary_key=True)
    trading_date: Mapped[date] = mapped_column(Date, primary_key=True)
    watchlist_date: Mapped[date] = mapped_column(Date)
    entries: Mapped[int]
    exits: Mapped[int]
    orders: Mapped[int]
    sizing: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PortfolioSnapshot(Base):
    __tablename__ = "portfolio_snapshots"
    # the peak equity in one index probe (every risk check reads it)
    __table_args__ = (Index("ix_snapshots_equity", "user_id", "dry_run", "equity"),)

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dry_run: Mapped[bool] = mapped_column(primary_key=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    trading_date: Mapped[date] = mapped_column(Date)
    cash: Mapped[int] = mapped_column(BigInteger)
    settled_cash: Mapped[int] = mapped_column(BigInteger)
    market_value: Mapped[int] = mapped_column(BigInteger)
    equity: Mapped[int] = mapped_column(BigInteger)
    exposure: Mapped[float] = mapped_column(Float)  # market value / equity
    unrealised_pnl: Mapped[int] = mapped_column(BigInteger)
    positions: Mapped[int]
    prices_observed: Mapped[bool]  # False: valued at the latest stored closes
