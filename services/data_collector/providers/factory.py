"""Choose the provider named by ``ORCHESTRATOR_DATA_PROVIDER``."""

from __future__ import annotations

from services.common.clock import Clock
from services.common.market_calendar import MarketCalendar
from services.common.settings import Settings
from services.data_collector.providers import MarketDataProvider


def make_provider(settings: Settings, clock: Clock, calendar: MarketCalendar) -> MarketDataProvider:
    if settings.data_provider == "pykrx":
        from services.data_collector.providers.pykrx_provider import PykrxProvider

        return PykrxProvider(calendar=calendar, clock=clock,
                             min_interval=settings.pykrx_min_interval_seconds)
    from services.data_collector.providers.simulated import SimulatedProvider

    return SimulatedProvider(calendar=calendar, clock=clock, seed=settings.simulated_seed,
                             universe_size=settings.simulated_universe)
