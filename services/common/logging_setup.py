"""Logging configuration for the CLI entry points (one place, one format)."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, tzinfo
from typing import Any

from services.common.setting_values import redact_passwords
from services.common.text import printable

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class InertFormatter(logging.Formatter):
    """The time in the display zone (the machine's own when none is given), with
    milliseconds and its UTC offset (2026-11-20T16:00:01.250+09:00); control characters
    shown as escapes, so a message (one line) or an exception's text (a traceback keeps
    its lines) never sends a raw ESC to the terminal."""

    def __init__(self, fmt: str, tz: tzinfo | None = None) -> None:
        super().__init__(fmt)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, self.tz)
        return (moment if self.tz is not None else moment.astimezone()).isoformat(timespec="milliseconds")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return printable(redact_passwords(super().formatException(ei)), keep="\n")

    def formatStack(self, stack_info: str) -> str:
        return printable(redact_passwords(super().formatStack(stack_info)), keep="\n")


class OneLineDatabaseErrors(logging.Filter):
    """An error SQLAlchemy or psycopg logs with its traceback (the pool's "Exception
    during reset or similar" when it takes back a connection the server has closed) is
    one line: the message and what the database said. No line shows a password."""

    def filter(self, record: logging.LogRecord) -> bool:
        from services.common.database import database_error_line

        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # logging reports the bad arguments itself
        if record.exc_info and record.exc_info[1] is not None and record.name.startswith(("sqlalchemy", "psycopg")):
            message = f"{message}: {database_error_line(record.exc_info[1])}"
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = redact_passwords(message), None
        return True


def configure_logging(level: str = "INFO", tz: tzinfo | None = None) -> None:
    """Send log lines to stderr at ``level``, timed in ``tz`` (the display zone); quiet
    the chattier libraries."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(InertFormatter(LOG_FORMAT, tz))
    handler.addFilter(OneLineDatabaseErrors())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("services").setLevel(logging.NOTSET)  # a command may have quietened it (simulate)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("matplotlib").setLevel(max(logging.WARNING, root.level))
    # httpx logs each request's URL at INFO: a webhook's URL is its secret
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
