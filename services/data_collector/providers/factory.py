"""Choose the provider named by ``ORCHESTRATOR_DATA_PROVIDER``."""

from __future__ import annotations

from services.common.clock import Clock
from services.common.market_calendar import MarketCalendar
from services.common.settings import Settings
from services.data_collector.providers import MarketDataProvider, ProviderUnavailable


def history_url(settings: Settings) -> str:
    """Where the stored provider reads: ORCHESTRATOR_HISTORY_DATABASE_URL, else DATABASE_URL."""
    return settings.history_database_url or settings.database_url


def make_provider(settings: Settings, clock: Clock, calendar: MarketCalendar) -> MarketDataProvider:
    if settings.data_provider == "stored":
        from services.data_collector.providers.stored import StoredHistoryProvider

        url = history_url(settings)
        if url == settings.database_url:
            raise ProviderUnavailable(
                "ORCHESTRATOR_DATA_PROVIDER=stored reads the history of another database, and "
                "ORCHESTRATOR_HISTORY_DATABASE_URL is DATABASE_URL itself; expected the database backfill "
                "collected into (simulate reads the live one's by default)")
        return StoredHistoryProvider(url=url, shown_url=settings.redacted_database_url(url), calendar=calendar,
                                     clock=clock)
    if settings.data_provider == "pykrx":
        from services.data_collector.providers.pykrx_provider import PykrxProvider

        return PykrxProvider(calendar=calendar, clock=clock,
                             min_interval=settings.pykrx_min_interval_seconds)
    from services.data_collector.providers.simulated import SimulatedProvider

    return SimulatedProvider(calendar=calendar, clock=clock, seed=settings.simulated_seed,
                             universe_size=settings.simulated_universe)
