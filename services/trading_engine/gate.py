"""The risk gate: the one check before any order is placed (the risk manager's
assessment of the account, and the position limits of each order).

A trading job opens the gate once, in its transaction (which runs the assessment:
breaches are recorded and a total-loss breach halts trading there and then), and
``order_book.submit`` asks it about every order. Sells always pass: protective exits
stay allowed while halted. A buy is refused while trading is halted, after the
session's daily-loss limit was reached, or when it would open a position past
``ORCHESTRATOR_MAX_POSITIONS`` or make one larger than
``ORCHESTRATOR_MAX_POSITION_SIZE_PCT`` of equity.

A position keeps its slot until it is sold: an open sell, of part or all of it, filled
in part or not at all, frees nothing, since it may never fill (cancelled, expired,
outside the price band), and the new position would then be one too many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection

from services.common.job_api import JobContext
from services.common.krx_market import FALLBACK_MARKET, TODAY, PriceGrid, grid_on
from services.common.market_rules import OutsideMarketRules
from services.risk_manager.assessment import Assessment, assess
from services.risk_manager.limits import Commitments, RiskLimits, entry_refusal
from services.trading_engine.history import account_state
from services.trading_engine.orders import OPEN_STATUSES, Broker, Order, OrderRequest, OrderType, Position, Side


@dataclass
class RiskGate:
    assessment: Assessment | None  # None: a gate for protective exits only (:meth:`exits_only`)
    limits: RiskLimits | None
    prices: Mapping[str, int]
    values: dict[str, int] = field(default_factory=dict)  # KRW held or being bought, per ticker
    slots: set[str] = field(default_factory=set)  # tickers that take a position slot: held or being bought
    grid: PriceGrid = TODAY  # the session's price band (KOSPI's ticks), for market buys' funding price

    @classmethod
    def open(cls, ctx: JobContext, connection: Connection, broker: Broker, moment: datetime,
             prices: Mapping[str, int], *, positions: Sequence[Position] | None = None,
             open_orders: Sequence[Order] | None = None) -> RiskGate:
        """Assess the account of ``ctx`` for its trading date at ``moment``; ``prices``
        value positions and price market buys (a ticker without one is valued at cost).
        ``positions`` and ``open_orders``: the broker's, if the caller has just read them."""
        if positions is None:
            positions = broker.positions()
        limits = RiskLimits.from_settings(ctx.settings)
        state = account_state(connection, broker, positions, prices, ctx.trading_date)
        assessment = assess(connection, broker.account, state, limits, day=ctx.trading_date, moment=moment,
                            checked_by=ctx.job_name)
        gate = cls(assessment, limits, prices, grid=_session_grid(ctx.trading_date))
        for position in positions:
            gate.values[position.ticker] = position.quantity * int(prices.get(position.ticker)
                                                                   or round(position.average_price))
            gate.slots.add(position.ticker)
        for order in broker.open_orders() if open_orders is None else open_orders:
            gate.placed(order)
        return gate

    @classmethod
    def exits_only(cls) -> RiskGate:
        """A gate where no assessment runs (a daily bar's settlement, at a past moment):
        sells pass, as at every gate; every buy is refused."""
        return cls(None, None, {})

    @property
    def halted(self) -> str | None:
        """The halt in force, described; None when trading is not halted."""
        halt = self.assessment.halt if self.assessment is not None else None
        return halt.describe() if halt is not None else None

    @property
    def entries_refused(self) -> str | None:
        """Why no new position may open now (halt or daily loss), if none may."""
        if self.assessment is None or self.limits is None:
            return "only protective exits are placed here"
        if self.halted:
            return f"trading halted: {self.halted}"
        if self.assessment.entries_blocked:
            return f"new entries blocked for the session: {self.assessment.entries_blocked}"
        return None

    def refusal(self, request: OrderRequest) -> str | None:
        """Why ``request`` may not be placed, or None if it may."""
        if request.side is Side.SELL:
            return None
        if self.assessment is None or self.limits is None:
            return "only protective exits are placed here"
        price = self._price_of(request.ticker, request.order_type, request.limit_price)
        if price <= 0:
            return f"no price known for {request.ticker}: cannot check the position limits"
        return entry_refusal(request.ticker, request.quantity * price, equity=self.assessment.metrics.equity,
                             committed=Commitments(self.values, self.slots), halted=self.halted,
                             entries_blocked=self.assessment.entries_blocked, limits=self.limits)

    def placed(self, order: Order) -> None:
        """Count an order the broker accepted against the limits of the next ones: a
        buy adds to its ticker and takes its slot; a sell frees nothing until it fills."""
        if order.side is not Side.BUY or order.status not in OPEN_STATUSES or order.remaining < 1:
            return
        ticker = order.ticker
        price = self._price_of(ticker, order.order_type, order.limit_price)
        self.values[ticker] = self.values.get(ticker, 0) + order.remaining * price
        self.slots.add(ticker)

    def _price_of(self, ticker: str, order_type: OrderType, limit_price: int | None) -> int:
        """A limit order's limit; a market buy's funding price, the upper band over the
        reference (as sizing and the paper broker's hold-back do)."""
        if order_type is OrderType.LIMIT:
            return int(limit_price or 0)
        reference = self.prices.get(ticker)
        return self.grid.price_limits(int(reference))[1] if reference else 0


def _session_grid(day: date) -> PriceGrid:
    try:
        return grid_on(day, FALLBACK_MARKET)
    except OutsideMarketRules:
        return TODAY
