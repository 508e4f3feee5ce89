"""Current prices from KIS (inquire-price), for the live adapter and for dry run.

Dry run may price its intraday ticks from KIS when ``ORCHESTRATOR_PAPER_QUOTES`` says so
(``broker.kis_quotes_wanted``); its orders stay in the paper broker. It does so through
:class:`KisQuotes` only, which can do nothing but read prices:

- this package (``kis_api``) never imports the live adapter (``services.trading_engine.kis``):
  an import-linter contract holds it, and a test shows dry run runs with that adapter
  unimportable;
- the client :class:`KisQuotes` makes is read-only: it refuses any POST before anything
  leaves (an order or a cancel is a POST), and no order path is known here;
- it needs no account number: only the app key and secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from services.common.clock import Clock
from services.common.settings import ConfigurationError, Settings
from services.trading_engine.kis_api.client import KisClient
from services.trading_engine.kis_api.errors import KisError
from services.trading_engine.kis_api.parsing import rows, text, whole

logger = logging.getLogger(__name__)

QUOTE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"
#: ``iscd_stat_cls_code`` (종목상태구분코드) of a ticker whose trading is halted (거래정지)
HALTED_STATUS = "58"


@dataclass(frozen=True)
class Quote:
    """One ticker's current price, and whether its trading is halted (the price is then
    its last trade's, not one an order could fill at now)."""

    price: int
    halted: bool


def current_quote(client: KisClient, tr_id: str, ticker: str) -> Quote:
    """``ticker``'s inquire-price (one paced GET): ``stck_prpr``, inside the day's limits
    (``stck_llam``..``stck_mxpr``) when KIS gives them; halted when ``temp_stop_yn`` is Y
    or the status is 거래정지. Raises :class:`KisError` for an answer that is not that."""
    answer = client.get(QUOTE_PATH, tr_id, {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": ticker})
    try:
        output = rows(answer.body.get("output"))
        row = output[0] if output else {}
        price, lower, upper = whole(row, "stck_prpr"), whole(row, "stck_llam"), whole(row, "stck_mxpr")
    except (TypeError, ValueError, ArithmeticError) as exc:  # NaN, Infinity, an output that is no row
        raise KisError(f"KIS inquire-price for {ticker}: unreadable answer ({exc}); expected stck_prpr, "
                       "stck_llam and stck_mxpr as numbers") from None
    if price <= 0:
        raise KisError(f"KIS inquire-price gave no current price for {ticker}; expected stck_prpr > 0")
    if upper > 0 and not lower <= price <= upper:
        raise KisError(f"KIS inquire-price gave {ticker} at {price}, outside the day's limits {lower}..{upper}")
    halted = text(row, "temp_stop_yn") == "Y" or text(row, "iscd_stat_cls_code") == HALTED_STATUS
    return Quote(price, halted)


@dataclass(frozen=True, repr=False)
class QuoteConfig:
    """The KIS app quotes are read as: host and quote tr_id of the configured
    environment, app key and secret, pace. Its repr hides the key and secret."""

    host: str
    tr_id: str
    app_key: str
    app_secret: str
    requests_per_second: float

    @classmethod
    def from_settings(cls, settings: Settings) -> QuoteConfig:
        return cls(host=settings.kis_host, tr_id=settings.kis_tr_ids.quote,
                   app_key=settings.kis_app_key, app_secret=settings.kis_app_secret,
                   requests_per_second=settings.kis_requests_per_second)

    def __repr__(self) -> str:
        return (f"QuoteConfig(host={self.host!r}, tr_id={self.tr_id!r}, app_key='***', app_secret='***', "
                f"requests_per_second={self.requests_per_second!r})")


class KisQuotes:
    """A paper account's quote source: every asked ticker's current price from KIS, or
    none. Each call opens a read-only client and closes it (a tick's requests share
    one connection; the token is kept in ``cache_dir``'s file across calls). A tick may
    go unpriced, so a failed request is retried once, after ``timeout`` seconds at most.
    ``monotonic``, ``sleep`` and ``transport`` are for tests, as :class:`KisClient` takes them."""

    def __init__(self, config: QuoteConfig, *, cache_dir: Path, clock: Clock,
                 transport: httpx.BaseTransport | None = None, monotonic: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, retries: int = 1, timeout: float = 5.0) -> None:
        self._tr_id = config.tr_id
        self._client = partial(KisClient, config, cache_dir=cache_dir, clock=clock, transport=transport,
                               monotonic=monotonic, sleep=sleep, retries=retries, timeout=timeout, read_only=True)

    def prices(self, tickers: Sequence[str]) -> dict[str, int]:
        """Every one of ``tickers``' current prices, or {} if KIS did not give them all
        or one is halted (logged): a tick never mixes KIS's prices with stale ones, and a
        halted ticker fills nothing (its session settles on its bar, which knows the halt)."""
        if not tickers:
            return {}
        try:
            with self._client() as client:
                quotes = {ticker: current_quote(client, self._tr_id, ticker) for ticker in tickers}
        except (KisError, ConfigurationError) as exc:
            logger.warning("KIS quotes unavailable, this tick is not priced (a session no tick priced settles "
                           "on its daily bar): %s", exc)
            return {}
        halted = sorted(ticker for ticker, quote in quotes.items() if quote.halted)
        if halted:
            logger.warning("KIS reports %s halted (거래정지): this tick is not priced (a session no tick priced "
                           "settles on its daily bar)", ", ".join(halted))
            return {}
        return {ticker: quote.price for ticker, quote in quotes.items()}
