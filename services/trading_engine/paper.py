"""The paper broker: the default (dry run) broker, a simulated account kept in the
database so that a restart resumes it.

Rules (DESIGN.md section 9):
- Limit prices go on the tick grid (buy up, sell down); an order outside the +-30%
  band of the previous close is rejected. Whole shares only.
- A buy holds back its cost plus commission (a market buy at the upper band price, as
  brokers do) so open orders can never overdraw the account; a sell needs the shares,
  net of other open sells.
- Fills happen at observations made after the order was placed: a market order at the
  next observed price (the open, for an order placed before the session), a limit
  order at its limit when the observed price trades through it. An observation may
  cap the quantity (partial fills). Limit orders end with their trading date
  (cancelled at the close); market orders wait for the next observed price.
- Where observations come from is the account's :class:`Pricing`: the simulated
  market's intraday path, KIS's quotes at the moment of a tick, or (nothing observed)
  each session's daily bar once it is stored (:mod:`bar_settlement`).
- Every fill pays commission (floored KRW); sells pay the sell tax of the trade date.
  Fills settle T+2 sessions, but sale proceeds fund new buys at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)

from services.common.clock import Clock
from services.common.database import fetch_typed
from services.common.job_api import Account
from services.common.krx_market import FALLBACK_MARKET, TODAY, PriceGrid, grid_on
from services.common.market_calendar import KRX_TZ, MarketCalendar
from services.common.market_rules import MARKETS, OutsideMarketRules
from services.data_collector.queries import closes_on, markets_on
from services.trading_engine.fees import FeeSchedule, NoTaxRate
from services.trading_engine.models import ClosedTrade, FillRow, OrderRow, PaperAccount, PositionRow
from services.trading_engine.orders import (
    OPEN_STATUSES,
    Balance,
    Cash,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from services.trading_engine.snapshots import priced_on

logger = logging.getLogger(__name__)

#: ``(tickers, trading_date) -> {ticker: previous session's close}``
ReferencePrices = Callable[[Sequence[str], date], Mapping[str, int]]
#: ``(tickers, moment) -> prices observed at moment``: the simulated market's intraday
#: path (every ticker's), or KIS's quotes now ({}: none observed)
QuoteSource = Callable[[Sequence[str], datetime], Mapping[str, int]]


class Pricing(Enum):
    """Where a paper account's prices come from, and so when a day's limit orders end."""

    #: every tick observes (the simulated market): they expire at the session's last tick
    INTRADAY = "intraday"
    #: no tick observes (pykrx, stored history): the session's bar settles them
    DAILY_BARS = "daily bars"
    #: a tick at "now" observes KIS's quotes: a session a tick priced ends at its last
    #: tick, as INTRADAY; one no tick priced (KIS unreachable) settles on its bar
    LIVE_QUOTES = "live quotes"


# --- the rules, pure ---------------------------------------------------------------------------


def order_price(request: OrderRequest, previous_close: int | None,
                grid: PriceGrid = TODAY) -> tuple[int | None, str | None]:
    """The limit on ``grid``'s ticks (or the upper band price a market buy is funded
    at), or the reason the order is rejected."""
    if request.quantity < 1:
        return None, f"quantity {request.quantity}: expected whole shares, 1 or more"
    if previous_close is None or previous_close <= 0:
        return None, f"no previous close for {request.ticker}: cannot check the price band"
    lower, upper = grid.price_limits(previous_close)
    if request.order_type is OrderType.MARKET:
        return (upper if request.side is Side.BUY else lower), None
    if request.limit_price is None or request.limit_price <= 0:
        return None, "a limit order needs a positive limit price"
    price = grid.round_to_tick(request.limit_price, "up" if request.side is Side.BUY else "down")
    if not lower <= price <= upper:
        return None, f"limit {price} is outside the daily band {lower}-{upper} (previous close {previous_close})"
    return price, None


def execution_price(side: Side, order_type: OrderType, limit: int | None, observed: int, *,
                    auction: bool = False) -> int | None:
    """The fill price at an observed price, or None if the order does not fill there. In
    an ``auction`` (a daily bar's open) a limit order the price trades through fills at
    that price, as the opening auction fills it; elsewhere at its limit."""
    if order_type is OrderType.MARKET:
        return observed
    assert limit is not None
    if side is Side.BUY:
        return (observed if auction else limit) if observed <= limit else None
    return (observed if auction else limit) if observed >= limit else None


# --- the statements, built once (a replay runs tens of thousands of jobs) --------------------------

_ACCOUNTS, _ORDERS = PaperAccount.__table__, OrderRow.__table__
_FILLS, _POSITIONS = FillRow.__table__, PositionRow.__table__
# one bound value each, not an expanding list (its SQL would be rendered again at each execution)
_OPEN = [literal(status.value) for status in sorted(OPEN_STATUSES, key=lambda status: status.value)]


def _mine(table: Table) -> ColumnElement[bool]:
    """The paper rows of the account named by the ``owner`` parameter (not ``user_id``:
    an UPDATE reserves its columns' names)."""
    return and_(table.c.user_id == bindparam("owner"), table.c.dry_run.is_(True))


def _open_orders_of(*criteria: ColumnElement[bool]) -> Select[Any]:
    return select(_ORDERS).where(_mine(_ORDERS), _ORDERS.c.status.in_(_OPEN), *criteria).order_by(_ORDERS.c.id)


_ACCOUNT = select(_ACCOUNTS).where(_ACCOUNTS.c.user_id == bindparam("owner"))
_ADD_CASH = update(_ACCOUNTS).where(_ACCOUNTS.c.user_id == bindparam("owner")).values(
    cash=_ACCOUNTS.c.cash + bindparam("change"))
_RESERVED = select(func.coalesce(func.sum(_ORDERS.c.reserved_cash), 0)).where(
    _mine(_ORDERS), _ORDERS.c.status.in_(_OPEN))
_BALANCE = select(_ACCOUNTS.c.cash, _RESERVED.scalar_subquery()).where(_ACCOUNTS.c.user_id == bindparam("owner"))
_UNSETTLED = select(_FILLS.c.side, _FILLS.c.quantity, _FILLS.c.price, _FILLS.c.commission, _FILLS.c.tax).where(
    _mine(_FILLS), _FILLS.c.settles_on > bindparam("today"))
_HELD = select(_POSITIONS).where(_mine(_POSITIONS), _POSITIONS.c.quantity > 0).order_by(_POSITIONS.c.ticker)
_POSITION = select(_POSITIONS).where(_mine(_POSITIONS), _POSITIONS.c.ticker == bindparam("ticker"))
_FILLS_ON = select(_FILLS).where(_mine(_FILLS), _FILLS.c.trade_date == bindparam("day")).order_by(_FILLS.c.id)
_ORDERS_ON = select(_ORDERS).where(_mine(_ORDERS), _ORDERS.c.trading_date == bindparam("day")).order_by(_ORDERS.c.id)
_OPEN_ORDERS = _open_orders_of()
_MATCHABLE = _open_orders_of(_ORDERS.c.created_at < bindparam("observed_at"))
_EXPIRING = _open_orders_of(_ORDERS.c.order_type == OrderType.LIMIT.value,
                            _ORDERS.c.trading_date <= bindparam("day"))
_ORDER = select(_ORDERS).where(_mine(_ORDERS), _ORDERS.c.id == bindparam("order_id"))
_BY_CLIENT_ID = select(_ORDERS).where(_ORDERS.c.user_id == bindparam("owner"),
                                      _ORDERS.c.client_order_id == bindparam("client_order_id"))
_SELLING = select(func.coalesce(func.sum(_ORDERS.c.quantity - _ORDERS.c.filled_quantity), 0)).where(
    _mine(_ORDERS), _ORDERS.c.ticker == bindparam("ticker"), _ORDERS.c.side == Side.SELL.value,
    _ORDERS.c.status.in_(_OPEN))
_FILL_COUNT = select(func.count()).select_from(_FILLS).where(_FILLS.c.order_id == bindparam("order_id"))
_MARK = update(_POSITIONS).where(_mine(_POSITIONS), _POSITIONS.c.ticker == bindparam("mark_ticker"),
                                 _POSITIONS.c.high_water < bindparam("mark_price")).values(
    high_water=bindparam("mark_price"))


# --- the broker --------------------------------------------------------------------------------


class PaperBroker:
    """Implements :class:`~services.trading_engine.orders.Broker` on the caller's
    connection (the caller owns the transaction)."""

    name = "paper"

    def __init__(self, connection: Connection, *, user_id: str, fees: FeeSchedule, calendar: MarketCalendar,
                 clock: Clock, initial_cash: int, reference_prices: ReferencePrices | None = None,
                 quote_source: QuoteSource | None = None, pricing: Pricing = Pricing.INTRADAY) -> None:
        self.connection = connection
        self.account = Account(user_id, dry_run=True)
        self.user_id = user_id
        self.quote_source = quote_source
        self.fees = fees
        self.calendar = calendar
        self.clock = clock
        self.initial_cash = initial_cash
        self.reference_prices = reference_prices or self._stored_previous_closes
        self.pricing = pricing
        self._priced_days: set[date] = set()  # sessions this broker observed prices of
        self._markets: dict[tuple[str, date], str] = {}
        self._me = {"owner": user_id}

    # -- account ---------------------------------------------------------------------------------

    def paper_account(self) -> PaperAccount:
        """The user's account, opened with ``initial_cash`` on first use."""
        rows = fetch_typed(self.connection, _ACCOUNT, self._me)
        if not rows:
            self.connection.execute(insert(PaperAccount).values(
                user_id=self.user_id, initial_cash=self.initial_cash, cash=self.initial_cash,
                opened_at=self.clock.now()))
            logger.info("opened paper account %s with %d KRW", self.user_id, self.initial_cash)
            rows = fetch_typed(self.connection, _ACCOUNT, self._me)
        return rows[0]  # type: ignore[no-any-return]

    def _balance(self) -> int:
        return int(self.paper_account().cash)

    def _reserved(self) -> int:
        return int(self.connection.scalar(_RESERVED, self._me) or 0)

    def cash(self) -> Cash:
        rows = fetch_typed(self.connection, _BALANCE, self._me)
        if not rows:
            self.paper_account()  # opened on first use
            rows = fetch_typed(self.connection, _BALANCE, self._me)
        ((balance, reserved),) = rows
        today = self.clock.now().astimezone(KRX_TZ).date()
        pending = fetch_typed(self.connection, _UNSETTLED, {**self._me, "today": today})
        # the deposit before unsettled trades (sale proceeds not yet in, buys not yet paid),
        # as the part of ``available`` it covers (the way KIS's D+0 / D+2 deposits relate)
        unsettled = sum(_cash_change(Side(side), q * p, c, t) for side, q, p, c, t in pending)
        available = int(balance) - int(reserved)
        return Cash(available=available, settled=max(0, min(available, available - unsettled)),
                    held_back=int(reserved))

    def positions(self) -> list[Position]:
        rows = fetch_typed(self.connection, _HELD, self._me)
        return [Position(r.ticker, int(r.quantity), int(r.cost), r.opened_on, int(r.high_water)) for r in rows]

    def fills(self, day: date) -> list[Fill]:
        rows = self.connection.execute(_FILLS_ON, {**self._me, "day": day}).all()
        return [_fill_of(row) for row in rows]

    def open_orders(self) -> list[Order]:
        rows = fetch_typed(self.connection, _OPEN_ORDERS, self._me)
        return [_order_of(row) for row in rows]

    def orders(self, day: date) -> list[Order]:
        rows = self.connection.execute(_ORDERS_ON, {**self._me, "day": day}).all()
        return [_order_of(row) for row in rows]

    # -- orders ----------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> Order:
        existing = self._by_client_id(request.client_order_id)
        if existing is not None:
            return _order_of(existing)
        self.paper_account()
        previous_close = self.reference_prices([request.ticker], request.trading_date).get(request.ticker)
        try:
            price, reason = order_price(request, previous_close, self.grid(request.ticker, request.trading_date))
        except OutsideMarketRules as exc:
            price, reason = None, str(exc)
        reserve = 0
        if reason is None and price is not None:
            if request.side is Side.BUY:
                reserve = self.fees.buy_cost(request.quantity, price)
                available = self._balance() - self._reserved()
                if reserve > available:
                    reason = f"insufficient cash: needs {reserve} KRW, {available} available"
            else:
                free = self._held(request.ticker) - self._selling(request.ticker)
                if request.quantity > free:
                    reason = f"insufficient shares: selling {request.quantity}, {free} free to sell"
        status = OrderStatus.NEW if reason is None else OrderStatus.REJECTED
        now = self.clock.now()
        self.connection.execute(insert(OrderRow).values(
            user_id=self.user_id, client_order_id=request.client_order_id, broker=self.name, broker_order_id=None,
            trading_date=request.trading_date, ticker=request.ticker, side=request.side.value,
            order_type=request.order_type.value, quantity=request.quantity,
            limit_price=price if request.order_type is OrderType.LIMIT and reason is None else request.limit_price,
            status=status.value, filled_quantity=0, reserved_cash=reserve if reason is None else 0,
            reason=(reason or request.reason)[:300], dry_run=True, created_at=now, updated_at=now))
        if reason:
            logger.info("paper order %s rejected: %s", request.client_order_id, reason)
        row = self._by_client_id(request.client_order_id)
        assert row is not None
        return _order_of(row)

    def quotes(self, tickers: Sequence[str], moment: datetime) -> dict[str, int]:
        """The quote source's prices at ``moment`` (the simulated market's intraday
        path, KIS's quotes); none without a source (a provider with daily bars only)."""
        if self.quote_source is None:
            return {}
        everything = self.quote_source(tickers, moment)
        return {ticker: everything[ticker] for ticker in tickers if ticker in everything}

    def observe(self, prices: Mapping[str, int], moment: datetime, caps: Mapping[str, int] | None = None) -> int:
        """Fill the open orders ``prices`` allow (see :meth:`match`) and raise the
        high-water marks to them."""
        if not prices:
            return 0
        if self.pricing is Pricing.LIVE_QUOTES:
            self._start_priced_session(moment.astimezone(KRX_TZ).date())
        fills = self.match(prices, moment, caps)
        self.mark(prices)
        return len(fills)

    def balance(self) -> Balance:
        account = self.paper_account()  # its cash includes what open buys hold back
        return Balance(int(account.cash), int(account.initial_cash))

    def end_of_day(self, day: date) -> int:
        """At the session's last tick, its limit orders expire, unless the session's bar
        will settle them (daily bars; live quotes when no tick priced it)."""
        if self.pricing is Pricing.INTRADAY or (self.pricing is Pricing.LIVE_QUOTES and self._priced(day)):
            return self.expire_day_orders(day)
        return 0

    def _priced(self, day: date) -> bool:
        """Whether a tick observed prices of session ``day`` (a bar never settles it then)."""
        return day in self._priced_days or priced_on(self.connection, self.user_id, day)

    def _start_priced_session(self, day: date) -> None:
        """At the first prices observed of session ``day``, the limit orders of earlier
        sessions still open expire: once this session is priced no bar settles those
        (a close tick that never ran, a session whose bar never came)."""
        if not self._priced(day):
            expired = self.expire_day_orders(day - timedelta(days=1))
            if expired:
                logger.warning("%d limit order(s) of sessions before %s expired: no bar settles them once %s is "
                               "priced", expired, day, day)
        self._priced_days.add(day)

    def cancel(self, order_id: str, reason: str = "cancelled") -> Order:
        row = self.connection.execute(_ORDER, {**self._me, "order_id": int(order_id)}).one()
        if row.status in {s.value for s in OPEN_STATUSES}:
            self.connection.execute(update(OrderRow).where(OrderRow.id == row.id).values(
                status=OrderStatus.CANCELLED.value, reserved_cash=0, updated_at=self.clock.now(),
                reason=f"{row.reason}; {reason}"[:300]))
        return _order_of(self.connection.execute(_ORDER, {**self._me, "order_id": row.id}).one())

    def match(self, prices: Mapping[str, int], observed_at: datetime,
              max_quantity: Mapping[str, int] | None = None, *, auction: bool = False,
              first_seen_after: datetime | None = None, placed_before: datetime | None = None) -> list[Fill]:
        """Fill the open orders placed before ``observed_at`` (or ``placed_before``) that
        ``prices`` (observed then, on the tick grid) allow; ``max_quantity`` caps each
        ticker's fill. At an ``auction``, and for an order placed at or after
        ``first_seen_after`` (the first price it sees), a limit the price trades through
        fills at that price (see :func:`execution_price`)."""
        fills = []
        orders = self.connection.execute(_MATCHABLE, {**self._me, "observed_at": min(
            observed_at, placed_before or observed_at)}).all()
        trade_date = observed_at.astimezone(KRX_TZ).date()
        references = self.reference_prices(sorted({o.ticker for o in orders if o.ticker in prices}), trade_date) \
            if orders else {}
        for order in orders:
            observed = prices.get(order.ticker)
            if observed is None or order.trading_date > trade_date:
                continue
            reference = references.get(order.ticker)
            if reference is not None:
                lower, upper = self.grid(order.ticker, trade_date).price_limits(reference)
                if not lower <= observed <= upper:
                    logger.warning("observed %s at %d outside its band %d-%d: not filled", order.ticker, observed,
                                   lower, upper)
                    continue
            fresh = auction or (first_seen_after is not None and order.created_at >= first_seen_after)
            price = execution_price(Side(order.side), OrderType(order.order_type), order.limit_price, observed,
                                    auction=fresh)
            if price is None:
                continue
            quantity = order.quantity - order.filled_quantity
            if max_quantity is not None:
                quantity = min(quantity, max(0, max_quantity.get(order.ticker, quantity)))
            if order.side == Side.SELL.value:
                quantity = min(quantity, self._held(order.ticker))
            else:  # never more than its own reserve and the free cash pay for (a carried market buy)
                budget = int(order.reserved_cash) + self._balance() - self._reserved()
                quantity = min(quantity, self.fees.affordable_quantity(budget, price))
            if quantity <= 0:
                continue
            fill = self._fill(order, quantity, price, trade_date, observed_at)
            if fill is not None:
                fills.append(fill)
                if max_quantity is not None and order.ticker in max_quantity:
                    max_quantity = {**max_quantity, order.ticker: max_quantity[order.ticker] - quantity}
        return fills

    def expire_day_orders(self, trading_date: date) -> int:
        """Cancel the limit orders of ``trading_date`` still open at its close."""
        rows = self.connection.execute(_EXPIRING, {**self._me, "day": trading_date}).all()
        for row in rows:
            self.cancel(str(row.id), "expired at the close")
        return len(rows)

    def mark(self, prices: Mapping[str, int]) -> None:
        """Raise each position's high-water mark to the observed price (one statement)."""
        if not prices:
            return
        self.connection.execute(_MARK, [{**self._me, "mark_ticker": ticker, "mark_price": price}
                                        for ticker, price in prices.items()])

    def grid(self, ticker: str, day: date) -> PriceGrid:
        """The tick table and band of ``ticker``'s market on ``day`` (its market as quoted
        the session before; KOSPI's where none is stored). Raises OutsideMarketRules."""
        key = (ticker, day)
        if key not in self._markets:
            previous = self.calendar.previous_session(day)
            found = markets_on(self.connection, previous.date, [ticker]) if previous is not None else {}
            market = found.get(ticker)
            self._markets[key] = market if market in MARKETS else FALLBACK_MARKET
        return grid_on(day, self._markets[key])

    # -- internals -------------------------------------------------------------------------------

    def _fill(self, order: Any, quantity: int, price: int, trade_date: date, at: datetime) -> Fill | None:
        side = Side(order.side)
        amount = quantity * price
        commission = self.fees.commission(amount, trade_date)
        try:
            tax = self.fees.sell_tax(amount, trade_date) if side is Side.SELL else 0
        except NoTaxRate as exc:
            self.cancel(str(order.id), str(exc))
            return None
        settles_on = settlement_date(self.calendar, trade_date)
        filled = order.filled_quantity + quantity
        status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
        reserved = 0
        if side is Side.BUY and status is OrderStatus.PARTIALLY_FILLED:
            reserved = self.fees.buy_cost(order.quantity - filled, order.limit_price or price) \
                if order.order_type == OrderType.LIMIT.value else max(0, order.reserved_cash - amount - commission)
        sequence = self.connection.scalar(_FILL_COUNT, {"order_id": order.id}) or 0
        result = self.connection.execute(insert(FillRow).values(
            order_id=order.id, fill_key=f"{order.id}:{sequence + 1}", user_id=self.user_id, ticker=order.ticker,
            side=side.value, quantity=quantity, price=price, commission=commission, tax=tax,
            trade_date=trade_date, settles_on=settles_on, filled_at=at, dry_run=True))
        fill_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        self.connection.execute(update(OrderRow).where(OrderRow.id == order.id).values(
            filled_quantity=filled, status=status.value, reserved_cash=reserved, updated_at=at))
        change = _cash_change(side, amount, commission, tax)
        self.connection.execute(_ADD_CASH, {**self._me, "change": change})
        if side is Side.BUY:
            self._add_shares(order.ticker, quantity, amount + commission, price, trade_date)
        else:
            self._remove_shares(order.ticker, quantity, amount - commission - tax, trade_date, fill_id)
        return Fill(str(order.id), order.ticker, side, quantity, price, commission, tax, trade_date, settles_on,
                    at, True)

    def _add_shares(self, ticker: str, quantity: int, cost: int, price: int, day: date) -> None:
        row = self._position(ticker)
        if row is None:
            self.connection.execute(insert(PositionRow).values(
                user_id=self.user_id, dry_run=True, ticker=ticker, quantity=quantity, cost=cost, opened_on=day,
                high_water=price))
        else:
            self.connection.execute(update(_POSITIONS).where(self._position_row(ticker)).values(
                quantity=row.quantity + quantity, cost=row.cost + cost, high_water=max(row.high_water, price)))

    def _remove_shares(self, ticker: str, quantity: int, proceeds: int, day: date, fill_id: int) -> None:
        row = self._position(ticker)
        assert row is not None and row.quantity >= quantity
        cost = row.cost if quantity == row.quantity else row.cost * quantity // row.quantity
        self.connection.execute(insert(ClosedTrade).values(
            fill_id=fill_id, user_id=self.user_id, dry_run=True, ticker=ticker, opened_on=row.opened_on,
            closed_on=day, quantity=quantity, cost=cost, proceeds=proceeds, pnl=proceeds - cost))
        where = self._position_row(ticker)
        if quantity == row.quantity:
            self.connection.execute(_POSITIONS.delete().where(where))
        else:
            self.connection.execute(update(_POSITIONS).where(where).values(
                quantity=row.quantity - quantity, cost=row.cost - cost))

    def _position_row(self, ticker: str) -> ColumnElement[bool]:
        return and_(_POSITIONS.c.user_id == self.user_id, _POSITIONS.c.dry_run.is_(True),
                    _POSITIONS.c.ticker == ticker)

    def _position(self, ticker: str) -> PositionRow | None:
        return self.connection.execute(_POSITION, {**self._me, "ticker": ticker}).first()  # type: ignore[return-value]

    def _held(self, ticker: str) -> int:
        row = self._position(ticker)
        return int(row.quantity) if row else 0

    def _selling(self, ticker: str) -> int:
        return int(self.connection.scalar(_SELLING, {**self._me, "ticker": ticker}) or 0)

    def _by_client_id(self, client_order_id: str) -> OrderRow | None:
        return self.connection.execute(  # type: ignore[return-value]
            _BY_CLIENT_ID, {**self._me, "client_order_id": client_order_id}).first()

    def _stored_previous_closes(self, tickers: Sequence[str], trading_date: date) -> dict[str, int]:
        previous = self.calendar.previous_session(trading_date)
        if previous is None or not tickers:
            return {}
        return closes_on(self.connection, previous.date, tickers)


def settlement_date(calendar: MarketCalendar, trade_date: date) -> date:
    """T+2: the second session after ``trade_date`` (weekdays past the calendar's end)."""
    day = trade_date
    for _ in range(2):
        following = calendar.next_session(day)
        day = following.date if following is not None else _next_weekday(day)
    return day


def _next_weekday(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _cash_change(side: Side, amount: int, commission: int, tax: int) -> int:
    return -(amount + commission) if side is Side.BUY else amount - commission - tax


def _order_of(row: Any) -> Order:
    return Order(str(row.id), row.client_order_id, row.trading_date, row.ticker, Side(row.side),
                 OrderType(row.order_type), int(row.quantity),
                 None if row.limit_price is None else int(row.limit_price), OrderStatus(row.status),
                 int(row.filled_quantity), row.reason, bool(row.dry_run))


def _fill_of(row: Any) -> Fill:
    return Fill(str(row.order_id), row.ticker, Side(row.side), int(row.quantity), int(row.price),
                int(row.commission), int(row.tax), row.trade_date, row.settles_on, row.filled_at, bool(row.dry_run))
