"""Where notifications go: ``ORCHESTRATOR_NOTIFY_URLS``, one or more apprise URLs
separated by spaces or new lines, each optionally led by the lowest level it takes:

    tgram://BOT_TOKEN/CHAT_ID  error=discord://WEBHOOK_ID/WEBHOOK_TOKEN  warning=mailto://user:pass@example.com

A URL carries its secret (a bot token, a webhook path, a password): it is shown only
masked (:func:`masked`), as its scheme and host.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from enum import IntEnum


class Level(IntEnum):
    """How much a notification matters; a channel takes its own level and above."""

    INFO = 10
    WARNING = 20
    ERROR = 30

    @property
    def label(self) -> str:
        return self.name.lower()


LEVELS = {level.label: level for level in Level}
_LEVELED = re.compile(r"(info|warning|error)=(.+)", re.IGNORECASE)
#: the schemes whose URL names a real host (shown when masked); the others keep a token
#: there (tgram://BOT_TOKEN, discord://WEBHOOK_ID/TOKEN, ntfy://TOPIC, mailto://USER:PASS@...)
HOSTED_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls", "http", "https"})
_PREFIXED = re.compile(r"([^=:/]+)=([a-z][a-z0-9+.-]*://.*)", re.IGNORECASE)
_URL = re.compile(r"([a-z][a-z0-9+.-]*)://(\S*)", re.IGNORECASE)


@dataclass(frozen=True)
class Channel:
    url: str = field(default="", repr=False)  # secret: never shown as is
    level: Level = Level.INFO
    #: the old ORCHESTRATOR_ALERT_WEBHOOK_URL: incidents POSTed as the documented JSON body
    webhook: bool = False

    @property
    def name(self) -> str:
        return masked(self.url)

    def takes(self, level: Level) -> bool:
        return level >= self.level


def masked(url: str) -> str:
    """``url`` as its scheme and host only (its user, password, path and query, where
    the secrets are, left out)."""
    found = _URL.fullmatch(url.strip())
    if found is None:
        return "<not a URL>"
    scheme = found[1].lower()
    host = found[2].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1].split("/", 1)[0]
    if scheme not in HOSTED_SCHEMES:
        host = ""  # a token where a host would be (tgram://BOT_TOKEN/..., discord://WEBHOOK_ID/...)
    return f"{scheme}://{host}/..." if host else f"{scheme}://..."


def parse_channels(text: str) -> tuple[Channel, ...]:
    """The channels of ``ORCHESTRATOR_NOTIFY_URLS``; a ValueError names the one not
    accepted (masked) and what is."""
    channels = []
    for word in text.split():
        level, url = Level.INFO, word
        leveled = _LEVELED.fullmatch(word)
        if leveled is not None:
            level, url = LEVELS[leveled[1].lower()], leveled[2]
        elif (prefixed := _PREFIXED.fullmatch(word)) is not None:
            raise ValueError(f"{prefixed[1]!r} (before {masked(prefixed[2])}) is not a level; expected info=, "
                             "warning= or error= before a URL, or the URL alone")
        if _URL.fullmatch(url) is None:
            raise ValueError(f"{masked(url)} is not a URL; expected apprise URLs (tgram://, discord://, "
                             "slack://, mailto://, json:// ...), each optionally led by info=, warning= or error=")
        if not _apprise_accepts(url):
            raise ValueError(f"{masked(url)} is not a URL apprise can send to; see "
                             "https://github.com/caronc/apprise/wiki for each service's form")
        channels.append(Channel(url, level))
    return tuple(channels)


def _apprise_accepts(url: str) -> bool:
    import apprise  # about 0.3 s: loaded only when channels are configured

    quiet_secret_loggers()
    return bool(apprise.Apprise().add(url))


def quiet_secret_loggers() -> None:
    """Keep channel URLs out of the log: apprise logs each URL it loads (at DEBUG), and
    urllib3, under it, each request's path. apprise's warnings are captured where it
    sends and said once, masked, by the notifier."""
    apprise_logger = logging.getLogger("apprise")
    apprise_logger.propagate = False
    if _below_warning not in apprise_logger.filters:
        apprise_logger.addFilter(_below_warning)  # its DEBUG lines name each URL it loads
    for name in ("urllib3", "requests_oauthlib"):
        third_party = logging.getLogger(name)
        if third_party.getEffectiveLevel() < logging.WARNING:
            third_party.setLevel(logging.WARNING)


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING
