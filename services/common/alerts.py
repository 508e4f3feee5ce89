"""Alerts: the incidents someone must hear about.

A failed or missed run and a trading halt are each logged at ERROR with the
:class:`Alert` attached (:func:`raise_alert`); a calendar about to run out of
reviewed data, which needs attention within weeks, not now, at WARNING; a resume and
an instance starting or stopping, which are news, at INFO. The installed channels
(``services.common.notifications``) send each one; an incident with a :attr:`Alert.key`
is sent once until :func:`clear_alert` says it is over.

The body the old webhook (``ORCHESTRATOR_ALERT_WEBHOOK_URL``) receives
(``ALERT_BODY_KEYS``): ``text`` (one line, what Slack incoming webhooks and
Telegram-style relays display), ``event`` (one of ``ALERT_EVENTS``), ``severity``
(``error``, ``warning`` or ``info``), ``summary`` (the line without the prefix), ``host``,
``at`` (ISO time of the event) and ``details`` (an object: the job, user, dates,
error, ...). Every time in the body (``at``, and a detail given as a ``datetime``) is
ISO 8601 in the display zone the channels were installed with, with its offset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

logger = logging.getLogger(__name__)

ALERT_EVENTS = ("run_failed", "run_missed", "trading_halted", "calendar_ending", "trading_resumed",
                "instance_started", "instance_stopped", "limit_breach")
WARNING_EVENTS = ("calendar_ending",)
INFO_EVENTS = ("trading_resumed", "instance_started", "instance_stopped")
ALERT_BODY_KEYS = ("text", "event", "severity", "summary", "host", "at", "details")
TEXT_PREFIX = "[krx-orchestrator]"


@dataclass(frozen=True)
class Alert:
    event: str
    summary: str  # one line
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event not in ALERT_EVENTS:
            raise ValueError(f"alert event {self.event!r}; expected one of {', '.join(ALERT_EVENTS)}")

    @property
    def severity(self) -> str:
        """'info' for what is only news (a resume, an instance started or stopped),
        'warning' for what can wait a little (the calendar running out, a limit that only
        warns), else 'error'."""
        if self.event in INFO_EVENTS:
            return "info"
        if self.event == "limit_breach":  # as its action: a warning only, or entries blocked or a halt
            return "warning" if self.details.get("action") == "warn" else "error"
        return "warning" if self.event in WARNING_EVENTS else "error"

    @property
    def key(self) -> str | None:
        """What this incident is about: while it has not cleared (:func:`clear_alert`),
        the same incident again is logged but not sent again. None: each one is sent."""
        user, job = self.details.get("user_id", ""), self.details.get("job")
        if self.event in ("run_failed", "run_missed") and job:
            return f"{self.event}:{user}:{job}"
        if self.event == "calendar_ending":
            return "calendar_ending"
        return None

    def body(self, host: str, at: datetime, tz: tzinfo = UTC) -> dict[str, Any]:
        """The JSON object the webhook receives, its times in ``tz``."""
        details = {key: value.astimezone(tz).isoformat() if isinstance(value, datetime) else value
                   for key, value in self.details.items()}
        return {"text": f"{TEXT_PREFIX} {self.summary}", "event": self.event, "severity": self.severity,
                "summary": self.summary, "host": host, "at": at.astimezone(tz).isoformat(timespec="seconds"),
                "details": details}


_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


#: who hears each alert (the installed channels: services.common.notifications)
_alert_listeners: list[Callable[[Alert], None]] = []


def raise_alert(log: logging.Logger | logging.LoggerAdapter[Any], alert: Alert) -> None:
    """Log ``alert`` at its severity (ERROR, WARNING or INFO), and hand it to the
    installed channels (``services.common.notifications``), whatever the log level."""
    log.log(_LOG_LEVELS[alert.severity], "%s", alert.summary, extra={"alert": alert})
    _tell(_alert_listeners, alert)


def _tell(listeners: list[Callable[[Any], None]], news: Any) -> None:
    """Each listener hears ``news``; one that fails is logged and changes nothing of the
    caller (a job, a commit)."""
    for listener in list(listeners):
        try:
            listener(news)
        except Exception:  # noqa: BLE001 (an incident's channels never break what raised it)
            logger.exception("a listener of alerts failed on: %s", news)


def listen_for_alerts(listener: Callable[[Alert], None]) -> Callable[[], None]:
    """Call ``listener`` with each alert raised; returns what stops it."""
    _alert_listeners.append(listener)
    return lambda: _alert_listeners.remove(listener)


@dataclass(frozen=True)
class Cleared:
    """Incidents that are over (their :attr:`Alert.key`): the next one is sent again."""

    keys: tuple[str, ...]


#: who hears that incidents are over (the installed channels: services.common.notifications)
_clear_listeners: list[Callable[[Cleared], None]] = []


def listen_for_clears(listener: Callable[[Cleared], None]) -> Callable[[], None]:
    """Call ``listener`` with each :class:`Cleared`; returns what stops it."""
    _clear_listeners.append(listener)
    return lambda: _clear_listeners.remove(listener)


def clear_alert(*keys: str) -> None:
    """Say that the incidents of ``keys`` are over: the next one of each is sent again."""
    _tell(_clear_listeners, Cleared(keys))


def run_alert_keys(user_id: str, job: str) -> tuple[str, str]:
    """The keys of a job's failed and missed runs: over once it succeeds."""
    return f"run_failed:{user_id}:{job}", f"run_missed:{user_id}:{job}"
