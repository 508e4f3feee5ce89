"""Notifications: incidents (and, through :func:`current`, any message) sent to the
channels of ``ORCHESTRATOR_NOTIFY_URLS`` (apprise: Telegram, Discord, Slack, e-mail,
ntfy, JSON ...) and the old ``ORCHESTRATOR_ALERT_WEBHOOK_URL``, without ever blocking
or failing the code that raised them.

Incidents are raised with :func:`services.common.alerts.raise_alert`: while installed
(:func:`install`), :class:`AlertRelay` turns each into a message in the language of
``ORCHESTRATOR_NOTIFY_LANGUAGE`` and queues it on the :class:`Notifier`, whatever the
log level.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, tzinfo

from services.common.alerts import Alert, Cleared, listen_for_alerts, listen_for_clears
from services.common.notifications.channels import Channel, Level, masked, parse_channels
from services.common.notifications.delivery import deliver
from services.common.notifications.messages import LANGUAGES, Message, incident_message, won
from services.common.notifications.notifier import BACKOFF_SECONDS, Notifier

__all__ = ["LANGUAGES", "AlertRelay", "Channel", "Level", "Message", "Notifier", "channels_of", "current",
           "deliver", "incident_message", "install", "masked", "parse_channels", "won"]

_current: Notifier | None = None


class AlertRelay:
    """Queues each alert raised as a message in ``language``."""

    def __init__(self, notifier: Notifier, language: str, tz: tzinfo = UTC) -> None:
        self.notifier, self.language, self.tz = notifier, language, tz

    def __call__(self, alert: Alert) -> None:
        self.notifier.notify(incident_message(alert, self.language, self.tz))


def channels_of(settings: object) -> tuple[Channel, ...]:
    """The settings' channels: ORCHESTRATOR_NOTIFY_URLS', then the old webhook (warnings
    and errors, as before)."""
    channels = parse_channels(getattr(settings, "notify_urls", ""))
    webhook = getattr(settings, "alert_webhook_url", "")
    if webhook:
        channels += (Channel(webhook, Level.WARNING, webhook=True),)
    return channels


def current() -> Notifier | None:
    """The installed notifier (None: nothing is sent)."""
    return _current


@contextmanager
def install(channels: tuple[Channel, ...], *, language: str = "ko", timeout: float = 10.0,
            tz: tzinfo = UTC, backoff: float = BACKOFF_SECONDS) -> Iterator[Notifier | None]:
    """Send incidents to ``channels`` while the block runs; what is queued is sent
    before it ends. Without channels nothing is installed (incidents are only logged)."""
    global _current
    if not channels:
        yield None
        return
    notifier = Notifier(channels, timeout=timeout, tz=tz, backoff=backoff)
    stop_alerts = listen_for_alerts(AlertRelay(notifier, language, tz))
    stop_clears = listen_for_clears(lambda cleared: _clear(notifier, cleared))
    previous, _current = _current, notifier
    try:
        yield notifier
    finally:
        _current = previous
        stop_alerts()
        stop_clears()
        notifier.close()


def _clear(notifier: Notifier, cleared: Cleared) -> None:
    notifier.clear(cleared.keys)
