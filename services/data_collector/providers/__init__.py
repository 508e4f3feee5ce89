"""Market data providers: one call per trading date returns the whole market.

Canonical English columns, tickers as strings (some KRX codes contain letters):

- ``stocks``: ticker, name, market
- ``prices``: ticker, date, open, high, low, close, volume, value, change_pct, market_cap, market
- ``fundamentals``: ticker, date, bps, per, pbr, eps, div, dps
- ``indices``: name (KOSPI, KOSDAQ), date, close: the market indices' closes, where the
  provider publishes them (none for the simulated market)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd

from services.common.clock import Clock
from services.common.market_calendar import MarketCalendar
from services.common.settings import ConfigurationError

STOCK_COLUMNS = ["ticker", "name", "market"]
PRICE_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume", "value",
                 "change_pct", "market_cap", "market"]
FUNDAMENTAL_COLUMNS = ["ticker", "date", "bps", "per", "pbr", "eps", "div", "dps"]
INDEX_COLUMNS = ["name", "date", "close"]
#: no index closes (a snapshot's default), copied rather than built anew for each snapshot
_NO_INDICES = pd.DataFrame(columns=INDEX_COLUMNS)
MARKETS = ("KOSPI", "KOSDAQ")


class ProviderError(Exception):
    """A provider could not deliver a trading date."""


class SessionNotAvailable(ProviderError):
    """The date is not a session, or its close has not happened yet."""


class ProviderUnavailable(ProviderError, ConfigurationError):
    """The provider cannot work here (library missing, no credentials): one clear line."""


class HistoryMissing(ProviderError):
    """The stored history does not hold the session (collect it there first)."""


class TransientProviderError(ProviderError):
    """A failure worth retrying (timeout, 5xx, empty answer)."""


@dataclass(frozen=True)
class MarketSnapshot:
    """One trading date of the whole market, as a provider delivered it."""

    trading_date: date
    stocks: pd.DataFrame
    prices: pd.DataFrame
    fundamentals: pd.DataFrame
    indices: pd.DataFrame = field(default_factory=lambda: _NO_INDICES.copy())


def require_closed_session(calendar: MarketCalendar, clock: Clock, trading_date: date) -> None:
    """What every provider refuses: a date that is not a KRX session, or whose close has
    not happened yet."""
    session = calendar.session(trading_date)
    if session is None:
        raise SessionNotAvailable(f"{trading_date} is not a KRX session")
    if clock.now() < session.close:
        raise SessionNotAvailable(f"{trading_date}'s close ({session.close:%H:%M}) has not happened yet")


class MarketDataProvider(Protocol):
    name: str

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        """The whole market (KOSPI and KOSDAQ) for ``trading_date``."""
