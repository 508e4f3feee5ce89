"""Prices to value positions and fill orders with: observed at the broker during the
session, or else the latest stored closes (valuation only: nothing fills on them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection

from services.common.market_calendar import KRX_TZ, MarketCalendar, Session
from services.data_collector.queries import latest_closes_before, volumes_on
from services.trading_engine.orders import Broker


@dataclass(frozen=True)
class Quotes:
    """Prices of some tickers; ``observed`` means seen during the session now (orders
    may fill at them), otherwise they are the latest stored closes (valuation only)."""

    prices: dict[str, int]
    observed: bool


def current_quotes(broker: Broker, connection: Connection, tickers: Sequence[str], moment: datetime,
                   session: Session) -> Quotes:
    """Prices at ``moment``: the broker's from the session's open on, or else (none
    observed) the latest stored closes before ``moment``'s day."""
    if not tickers:
        return Quotes({}, False)
    if session.open <= moment:
        observed = broker.quotes(tickers, min(moment, session.close))
        if observed:
            return Quotes(dict(observed), True)
    return Quotes(latest_closes_before(connection, tickers, moment.astimezone(KRX_TZ).date()), False)


def valuation_prices(broker: Broker, connection: Connection, calendar: MarketCalendar, tickers: Sequence[str],
                     moment: datetime) -> dict[str, int]:
    """Prices to value positions at ``moment``: observed ones from the session's open
    on, else (or where none was observed) the latest stored closes, the day's own once
    collected."""
    if not tickers:
        return {}
    today = moment.astimezone(KRX_TZ).date()
    prices = latest_closes_before(connection, tickers, today + timedelta(days=1))
    session = calendar.session(today)
    if session is not None and moment >= session.open:
        quotes = current_quotes(broker, connection, tickers, moment, session)
        if quotes.observed:
            prices.update(quotes.prices)
    return prices


def participation_caps(connection: Connection, tickers: Sequence[str], previous_day: date,
                       share: float = 0.05) -> Mapping[str, int]:
    """At most ``share`` of a ticker's previous-session volume fills at one observation."""
    volumes = volumes_on(connection, previous_day, tickers)
    return {ticker: max(1, int(volume * share)) for ticker, volume in volumes.items()}
