"""Current prices from KIS (inquire-price), for the live adapter and for dry run.

Dry run may price its intraday ticks from KIS when ``ORCHESTRATOR_PAPER_QUOTES`` says so
(:func:`kis_quotes_wanted`); its orders stay in the paper broker. It does so through
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
from services.trading_engine.kis_api.parsing import rows, whole

logger = logging.getLogger(__name__)

QUOTE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"


def current_price(client: KisClient, tr_id: str, ticker: str) -> int:
    """``ticker``'s current price (``stck_prpr``), one paced GET; raises :class:`KisError`."""
    answer = client.get(QUOTE_PATH, tr_id, {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": ticker})
    output = rows(answer.body.get("output"))
    price = whole(output[0], "stck_prpr") if output else 0
    if price <= 0:
        raise KisError(f"KIS inquire-price gave no current price for {ticker}; expected stck_prpr > 0")
    return price


def _has_credentials(settings: Settings) -> bool:
    return bool(settings.kis_app_key and settings.kis_app_secret)


def kis_quotes_wanted(settings: Settings) -> bool:
    """Whether a paper account prices its ticks from KIS: ``kis``, or ``auto`` with the
    app key and secret set; never on the simulated market, which prices its own ticks."""
    if settings.data_provider == "simulated" or settings.paper_quotes == "off":
        return False
    return settings.paper_quotes == "kis" or _has_credentials(settings)


def check_paper_quotes(settings: Settings) -> None:
    """Refuse ``ORCHESTRATOR_PAPER_QUOTES=kis`` where it cannot work, with one line."""
    if settings.paper_quotes != "kis":
        return
    if settings.data_provider == "simulated":
        raise ConfigurationError(
            "ORCHESTRATOR_PAPER_QUOTES=kis prices dry run from KIS, but ORCHESTRATOR_DATA_PROVIDER=simulated "
            "prices its own ticks; expected a real provider (pykrx, stored) or ORCHESTRATOR_PAPER_QUOTES=auto/off")
    missing = [name for name, value in (("KIS_APP_KEY", settings.kis_app_key),
                                        ("KIS_APP_SECRET", settings.kis_app_secret)) if not value]
    if missing:
        raise ConfigurationError(
            f"ORCHESTRATOR_PAPER_QUOTES=kis needs {' and '.join(missing)}, not set in the environment or .env; "
            "expected the KIS open API app key and secret (no account number: quotes only), or "
            "ORCHESTRATOR_PAPER_QUOTES=auto/off")


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
        paper = settings.kis_environment == "paper"
        tr_ids = settings.kis_paper_tr_ids if paper else settings.kis_live_tr_ids
        return cls(host=settings.kis_paper_host if paper else settings.kis_live_host, tr_id=tr_ids.quote,
                   app_key=settings.kis_app_key, app_secret=settings.kis_app_secret,
                   requests_per_second=settings.kis_requests_per_second)

    def __repr__(self) -> str:
        return (f"QuoteConfig(host={self.host!r}, tr_id={self.tr_id!r}, app_key='***', app_secret='***', "
                f"requests_per_second={self.requests_per_second!r})")


class KisQuotes:
    """A paper account's quote source: every asked ticker's current price from KIS, or
    none. Each call opens a read-only client and closes it (a tick's requests share
    one connection; the token is kept in ``cache_dir``'s file across calls). ``monotonic``,
    ``sleep``, ``transport`` and ``retries`` are for tests, as :class:`KisClient` takes them."""

    def __init__(self, config: QuoteConfig, *, cache_dir: Path, clock: Clock,
                 transport: httpx.BaseTransport | None = None, monotonic: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, retries: int = 3) -> None:
        self._tr_id = config.tr_id
        self._client = partial(KisClient, config, cache_dir=cache_dir, clock=clock, transport=transport,
                               monotonic=monotonic, sleep=sleep, retries=retries, read_only=True)

    def prices(self, tickers: Sequence[str]) -> dict[str, int]:
        """Every one of ``tickers``' current prices, or {} if KIS did not give them all
        (logged): a tick never mixes KIS's prices with stale ones."""
        if not tickers:
            return {}
        try:
            with self._client() as client:
                return {ticker: current_price(client, self._tr_id, ticker) for ticker in tickers}
        except (KisError, ConfigurationError) as exc:
            logger.warning("KIS quotes unavailable, this tick is not priced (a session no tick priced settles "
                           "on its daily bar): %s", exc)
            return {}
