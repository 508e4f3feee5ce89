"""The KIS app a client talks as: its host, app key and secret, and its pace. Both the
live adapter's :class:`~services.trading_engine.kis.config.KisConfig` and the quote-only
:class:`~services.trading_engine.kis_api.quotes.QuoteConfig` are one."""

from __future__ import annotations

from typing import Protocol


class KisApp(Protocol):
    """What :class:`~.client.KisClient` and its token keeper read of a configuration."""

    @property
    def host(self) -> str: ...

    @property
    def app_key(self) -> str: ...

    @property
    def app_secret(self) -> str: ...

    @property
    def requests_per_second(self) -> float: ...
