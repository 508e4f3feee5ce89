"""Alerts: what someone must hear about now.

A failed or missed run and a trading halt are each logged at ERROR with the
:class:`Alert` attached (:func:`raise_alert`); a calendar about to run out of
reviewed data, which needs attention within weeks, not now, at WARNING. With
``ORCHESTRATOR_ALERT_WEBHOOK_URL`` set, :func:`install` also posts each one, as JSON,
to that webhook from a background thread: a slow or failing webhook delays nothing
and fails nothing (it is logged at WARNING).

The body (``ALERT_BODY_KEYS``): ``text`` (one line, what Slack incoming webhooks and
Telegram-style relays display), ``event`` (one of ``ALERT_EVENTS``), ``severity``
(``error`` or ``warning``), ``summary`` (the line without the prefix), ``host``,
``at`` (ISO time of the event) and ``details`` (an object: the job, user, dates,
error, ...). Every time in the body (``at``, and a detail given as a ``datetime``) is
ISO 8601 in the display zone the sink was installed with, with its offset.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

logger = logging.getLogger(__name__)

ALERT_EVENTS = ("run_failed", "run_missed", "trading_halted", "calendar_ending")
WARNING_EVENTS = ("calendar_ending",)
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
        """'warning' for what can wait a little (the calendar running out), else 'error'."""
        return "warning" if self.event in WARNING_EVENTS else "error"

    def body(self, host: str, at: datetime, tz: tzinfo = UTC) -> dict[str, Any]:
        """The JSON object the webhook receives, its times in ``tz``."""
        details = {key: value.astimezone(tz).isoformat() if isinstance(value, datetime) else value
                   for key, value in self.details.items()}
        return {"text": f"{TEXT_PREFIX} {self.summary}", "event": self.event, "severity": self.severity,
                "summary": self.summary, "host": host, "at": at.astimezone(tz).isoformat(timespec="seconds"),
                "details": details}


def raise_alert(log: logging.Logger | logging.LoggerAdapter[Any], alert: Alert) -> None:
    """Log ``alert`` at its severity (ERROR or WARNING); an installed webhook sends it."""
    level = logging.WARNING if alert.severity == "warning" else logging.ERROR
    log.log(level, "%s", alert.summary, extra={"alert": alert})


class WebhookHandler(logging.Handler):
    """Posts the alerts among the records it gets; other records are ignored."""

    def __init__(self, url: str, timeout: float, tz: tzinfo = UTC) -> None:
        super().__init__(logging.WARNING)
        self.url = url
        self.timeout = timeout
        self.tz = tz
        self.host = socket.gethostname()

    def emit(self, record: logging.LogRecord) -> None:
        alert = getattr(record, "alert", None)
        if not isinstance(alert, Alert):
            return
        at = datetime.fromtimestamp(record.created, UTC)
        data = json.dumps(alert.body(self.host, at, self.tz), ensure_ascii=False, default=str).encode("utf-8")
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (configured URL)
                response.read()
        except urllib.error.HTTPError as exc:
            self._failed(alert, f"HTTP {exc.code} {exc.reason}")
        except Exception as exc:  # noqa: BLE001 (any failure: the alert thread must live on)
            self._failed(alert, getattr(exc, "reason", None) or exc)

    def _failed(self, alert: Alert, reason: object) -> None:
        logger.warning("alert webhook %s failed (%s); the alert was: %s", _redacted(self.url), reason,
                       alert.summary)


class AlertSink:
    """The installed webhook: a queue on the root logger, emptied by one thread."""

    def __init__(self, url: str, timeout: float, tz: tzinfo = UTC) -> None:
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue()
        self._enqueue = logging.handlers.QueueHandler(self._queue)
        self._enqueue.setLevel(logging.WARNING)  # only alerts pass the filter below
        self._enqueue.addFilter(lambda record: isinstance(getattr(record, "alert", None), Alert))
        self._listener = logging.handlers.QueueListener(self._queue, WebhookHandler(url, timeout, tz))
        self._listener.start()
        logging.getLogger().addHandler(self._enqueue)

    def close(self) -> None:
        """Send what is queued, then stop."""
        logging.getLogger().removeHandler(self._enqueue)
        self._listener.stop()


def install(url: str, timeout: float, tz: tzinfo = UTC) -> AlertSink | None:
    """Send alerts to ``url``, their times in ``tz`` (None when ``url`` is empty: alerts
    are only logged)."""
    return AlertSink(url, timeout, tz) if url else None


def _redacted(url: str) -> str:
    """``url`` without its path and query, which often carry the webhook's secret."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/..." if rest else url
