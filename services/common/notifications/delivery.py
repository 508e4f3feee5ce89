"""Sending one message to one channel: through apprise, or, for the old webhook
(``ORCHESTRATOR_ALERT_WEBHOOK_URL``), as the documented JSON body of its alert.

:func:`deliver` answers None when the channel took the message, else why not, in one
line that never holds the channel's URL.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from datetime import UTC, tzinfo
from urllib.parse import unquote

from services.common.alerts import TEXT_PREFIX
from services.common.notifications.channels import Channel, Level, quiet_secret_loggers
from services.common.notifications.messages import Message

_APPRISE_TYPES = {Level.INFO: "info", Level.WARNING: "warning", Level.ERROR: "failure"}


def deliver(channel: Channel, message: Message, timeout: float, tz: tzinfo = UTC, *, test: bool = False,
            ) -> str | None:
    """Send ``message`` to ``channel``: None if delivered, else the reason. The webhook
    hears incidents only (as before), and ``test`` messages."""
    if channel.webhook:
        reason = _post_webhook(channel.url, message, timeout, tz, test)
    else:
        reason = _notify_apprise(channel.url, message)
    return None if reason is None else without_url(reason, channel.url)


def _notify_apprise(url: str, message: Message) -> str | None:
    import apprise

    quiet_secret_loggers()

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return "apprise does not accept this URL"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        sent = notifier.notify(body=message.body, title=message.title,
                               notify_type=_APPRISE_TYPES[message.level])
    if sent:
        return None
    lines = [line.split(" - WARNING - ", 1)[-1].split(" - ERROR - ", 1)[-1]
             for line in captured.getvalue().splitlines() if " - WARNING - " in line or " - ERROR - " in line]
    return lines[-1].strip() if lines else "not delivered"


def _post_webhook(url: str, message: Message, timeout: float, tz: tzinfo, test: bool) -> str | None:
    alert = message.alert
    if alert is None and not test:
        return None  # the webhook hears incidents only, as before
    if alert is None:  # a test: the documented body, its text the message's
        body = {"text": f"{TEXT_PREFIX} {message.title}: {message.body}", "event": "test", "severity": "info",
                "summary": message.body, "host": socket.gethostname(),
                "at": message.at.astimezone(tz).isoformat(timespec="seconds"), "details": {}}
    else:
        body = alert.body(socket.gethostname(), message.at, tz)
    data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    import httpx  # here: an instance without a webhook never loads it (12 MB of an idle start)

    try:
        response = httpx.post(url, content=data, timeout=timeout,
                              headers={"Content-Type": "application/json; charset=utf-8"})
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.is_success:
        return None
    return f"HTTP {response.status_code} {response.reason_phrase}"


def without_url(reason: str, url: str) -> str:
    """``reason`` with any part of the channel's URL beyond its scheme (its user,
    password, path pieces, query values, each also as URL-decoded) left out."""
    secret = url.split("://", 1)[-1]
    pieces = {secret, *(piece for piece in re.split(r"[/?&=:@#]", secret) if len(piece) >= 4)}
    pieces |= {unquote(piece) for piece in pieces}
    for part in sorted(pieces, key=len, reverse=True):
        reason = reason.replace(part, "...")
    return " ".join(reason.split())
