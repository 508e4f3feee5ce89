"""The values of the settings: each parser takes a variable's raw text and returns its
typed value, or raises ``ValueError`` saying what is accepted (the settings loader
turns that into one line naming the variable)."""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATA_PROVIDERS = ("simulated", "pykrx", "stored")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_MINUTES_PER_DAY = 24 * 60
_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected one of true/false/1/0/yes/no")


def parse_clock_time(text: str) -> time:
    match = re.fullmatch(r"([0-9]{1,2}):([0-9]{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError("expected a time HH:MM between 00:00 and 23:59")
    return time(int(match[1]), int(match[2]))


def parse_timezone(text: str) -> str:
    name = text.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown timezone; expected an IANA name such as Asia/Seoul or UTC") from None
    return name


def parse_optional_timezone(text: str) -> str:
    """An IANA name, or empty (the setting falls back to another)."""
    return parse_timezone(text) if text.strip() else ""


def _parse_int(text: str, what: str) -> int:
    stripped = text.strip()
    if not re.fullmatch(r"-?[0-9]{1,18}", stripped):
        raise ValueError(f"expected {what}")
    return int(stripped)


def _int_between(text: str, low: int, high: int | None, what: str) -> int:
    """A whole number in [low, high] (``high`` None: no upper bound)."""
    value = _parse_int(text, what)
    if value < low or (high is not None and value > high):
        raise ValueError(f"expected {what}")
    return value


MAX_GRACE_SECONDS = 7 * 24 * 3600


def parse_positive_int(text: str) -> int:
    return _int_between(text, 1, None, "a whole number above 0")


def parse_non_negative_int(text: str) -> int:
    return _int_between(text, 0, None, "a whole number, 0 or more")


def parse_grace_seconds(text: str) -> int:
    return _int_between(text, 0, MAX_GRACE_SECONDS,
                        f"a whole number of seconds from 0 to {MAX_GRACE_SECONDS} (a week)")


def parse_lease_seconds(text: str) -> int:
    return _int_between(text, 5, 3600, "a whole number of seconds from 5 to 3600")


def parse_interval_minutes(text: str) -> int:
    return _int_between(text, 1, _MINUTES_PER_DAY, "a whole number of minutes from 1 to 1440")


def parse_universe_size(text: str) -> int:
    return _int_between(text, 1, 5000, "a whole number of tickers from 1 to 5000")


def parse_day_divisor_minutes(text: str) -> int:
    value = parse_interval_minutes(text)
    if _MINUTES_PER_DAY % value:
        raise ValueError(
            "the interval must divide a day evenly (e.g. 5, 10, 15, 20, 30, 60, 120 minutes)"
        )
    return value


def parse_non_negative_float(text: str) -> float:
    value = _parse_float(text, "a number of seconds, 0 or more")
    if value < 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return value


def _parse_float(text: str, what: str) -> float:
    stripped = text.strip()
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]*)?|-?\.[0-9]+", stripped):
        raise ValueError(f"expected {what}")
    return float(stripped)


def _number(value: float) -> str:
    """``value`` as the shortest plain decimal that reads back as it: 70, 0.25, 0.00001."""
    text = format(Decimal(repr(value)), "f")
    return text.removesuffix(".0")


#: The watchlist's score factors (services/watchlist_manager/scoring.py defines them).
WATCHLIST_FACTORS = ("trend", "momentum", "volatility", "liquidity", "value")


def parse_weight_pairs(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """'a=0.3,b=0.7' -> {'a': 0.3, 'b': 0.7}; names from ``names``, finite weights >= 0
    with a positive, finite sum."""
    weights: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, number = part.partition("=")
        name = name.strip()
        if name not in names or not number.strip():
            raise ValueError(f"expected factor=weight pairs of {', '.join(names)}")
        if name in weights:
            raise ValueError(f"{name} is given twice; expected each factor once")
        try:
            weights[name] = float(number)
        except ValueError:
            raise ValueError(f"expected a number for {name}") from None
        if not (math.isfinite(weights[name]) and weights[name] >= 0):
            raise ValueError(f"expected a finite weight of 0 or more for {name}")
    if not weights or not 0 < sum(weights.values()) < math.inf:
        raise ValueError(f"expected factor=weight pairs of {', '.join(names)} with a positive, finite sum")
    return weights


@dataclass(frozen=True)
class FactorWeights:
    """The watchlist score's factor weights, in the order given; ``str()`` is the
    canonical ``factor=weight,...`` text."""

    pairs: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, float]:
        return dict(self.pairs)

    def __str__(self) -> str:
        return ",".join(f"{name}={_number(weight)}" for name, weight in self.pairs)


def parse_watchlist_weights(text: str) -> FactorWeights:
    return FactorWeights(tuple(parse_weight_pairs(text, WATCHLIST_FACTORS).items()))


def parse_percent(text: str) -> float:
    return _positive_float_up_to(text, 100, "a percentage above 0 and at most 100")


def parse_user_id(text: str) -> str:
    value = text.strip()
    if not _USER_ID.match(value):
        raise ValueError("expected 1-64 characters of letters, digits, _ . @ or -")
    return value


def parse_log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return value


def parse_provider(text: str) -> str:
    value = text.strip().lower()
    if value not in DATA_PROVIDERS:
        raise ValueError(f"expected one of {', '.join(DATA_PROVIDERS)}")
    return value


_URL_HINT = "sqlite:///data/orchestrator.db or postgresql+psycopg://user@host:5432/db"
#: the drivers whose connect arguments (timeouts) create_db_engine sets, by backend
_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def parse_database_url(text: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    value = text.strip()
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("a line break or control character in the URL; expected it on one line")
    try:
        url = make_url(value)
        backend = url.get_backend_name()
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError):
        raise ValueError(f"expected a SQLAlchemy URL such as {_URL_HINT}") from None
    if backend not in _DRIVERS:
        raise ValueError(f"{backend} is not supported; expected a URL such as {_URL_HINT}")
    if url.get_driver_name() != _DRIVERS[backend]:
        raise ValueError(f"the {url.get_driver_name()} driver is not supported; expected {_URL_HINT}")
    try:
        dialect.import_dbapi()
    except ImportError:
        raise ValueError(f"the {url.get_driver_name()} driver is not installed; expected {_URL_HINT}") from None
    if backend == "sqlite":
        from services.common.database import sqlite_file

        if not sqlite_file(url.database):
            raise ValueError("an in-memory SQLite database keeps nothing between commands; expected a file "
                             "such as sqlite:///data/orchestrator.db")
    return value


def parse_optional_database_url(text: str) -> str:
    """A database URL, or empty (the caller's default)."""
    return parse_database_url(text) if text.strip() else ""


_URL_PASSWORD = re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_QUERY_PASSWORD = re.compile(r"(?P<keep>[?&][^=&\s]*password[^=&\s]*=)[^&\s]*", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"(?P<keep>(?<![?&])\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)", re.IGNORECASE)


def redact_passwords(text: str) -> str:
    """``text`` with the password of every URL (``scheme://user:***@host``, ``?password=***``)
    and of every libpq conninfo (``password=***``) in it hidden."""
    text = _URL_PASSWORD.sub(r"\g<keep>***@", text)
    text = _QUERY_PASSWORD.sub(r"\g<keep>***", text)
    return _CONNINFO_PASSWORD.sub(r"\g<keep>***", text)


def parse_fee_percent(text: str) -> float:
    value = _parse_float(text, "a percentage from 0 up to 5")
    if not 0 <= value < 5:
        raise ValueError("expected a percentage from 0 up to 5")
    return value


def parse_optional_fee_percent(text: str) -> float | None:
    """A percentage from 0 up to 5, or None for '' (the dated default)."""
    return parse_fee_percent(text) if text.strip() else None


def parse_percent_or_off(text: str) -> float:
    value = _parse_float(text, "a percentage from 0 (off) to 100")
    if not 0 <= value <= 100:
        raise ValueError("expected a percentage from 0 (off) to 100")
    return value


class DatedRate(NamedTuple):
    """A rate in percent that applies from ``since`` until the next rate's date."""

    since: date
    percent: float


@dataclass(frozen=True)
class TaxSchedule:
    """The sell-side tax by trade date, sorted by date; ``str()`` is the canonical
    ``YYYY-MM-DD=percent,...`` text."""

    rates: tuple[DatedRate, ...]

    def __str__(self) -> str:
        return ",".join(f"{rate.since.isoformat()}={_number(rate.percent)}" for rate in self.rates)


def parse_tax_schedule(text: str) -> TaxSchedule:
    """'2025-01-01=0.15,2026-01-01=0.20' -> the rates sorted by date: each applies from
    its date until the next one ('': none given, the dated KRX rules apply)."""
    rates: dict[date, float] = {}
    accepted = "expected YYYY-MM-DD=percent pairs, e.g. 2025-01-01=0.15,2026-01-01=0.20"
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        day_text, _, number = part.partition("=")
        try:
            day = date.fromisoformat(day_text.strip())
        except ValueError:
            raise ValueError(f"{day_text.strip()!r} is not a date; {accepted}") from None
        if day in rates:
            raise ValueError(f"{day} is given twice; {accepted}")
        rate = _parse_float(number, accepted)
        if not 0 <= rate < 5:
            raise ValueError(f"rate {number.strip()} for {day}: expected a percentage from 0 up to 5")
        rates[day] = rate
    return TaxSchedule(tuple(DatedRate(day, rate) for day, rate in sorted(rates.items())))


#: What entry rules may test: the watchlist's factors and score, and indicators.
ENTRY_RULE_FIELDS = ("score", "rank", *WATCHLIST_FACTORS, "rsi_14", "macd_hist", "volume_ratio_20")
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]*)?)\s*$")


class Condition(NamedTuple):
    """``field op value``, e.g. ``rsi_14 < 70``."""

    field: str
    op: str
    value: float


@dataclass(frozen=True)
class EntryRules:
    """The conditions an entry needs (all of them); ``str()`` is the canonical
    ``trend>=0.75,rsi_14<70`` text."""

    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return ",".join(f"{c.field}{c.op}{_number(c.value)}" for c in self.conditions)


def parse_entry_rules(text: str) -> EntryRules:
    """'trend>=0.75,rsi_14<70' -> (trend >= 0.75, rsi_14 < 70.0) on ENTRY_RULE_FIELDS."""
    conditions = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        match = _CONDITION.match(part)
        if not match or match[1] not in ENTRY_RULE_FIELDS:
            raise ValueError(f"cannot read {part!r}; expected conditions such as trend>=0.75,rsi_14<70 "
                             f"on {', '.join(ENTRY_RULE_FIELDS)}")
        conditions.append(Condition(match[1], match[2], float(match[3])))
    if not conditions:
        raise ValueError("expected at least one condition, e.g. trend>=0.75")
    return EntryRules(tuple(conditions))


KIS_ENVIRONMENTS = ("paper", "live")
#: The open API calls the KIS adapter makes, each with its own tr_id.
KIS_CALLS = ("buy", "sell", "cancel", "balance", "fills", "quote")


#: where dry run's intraday prices come from on a real data provider (pykrx, stored)
PAPER_QUOTES = ("auto", "kis", "off")


def parse_paper_quotes(text: str) -> str:
    value = text.strip().lower()
    if value not in PAPER_QUOTES:
        raise ValueError("expected auto (KIS quotes when KIS_APP_KEY and KIS_APP_SECRET are set), kis or off")
    return value


def parse_kis_environment(text: str) -> str:
    value = text.strip().lower()
    if value not in KIS_ENVIRONMENTS:
        raise ValueError("expected paper (KIS 모의투자) or live (실전투자)")
    return value


#: an http(s) scheme, a host (a name, an IPv4 address or a bracketed IPv6 one) and an
#: optional port (1-65535), then ``(?P<rest>...)``
_HTTP_URL = r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:(?P<port>[0-9]{1,5}))?"


def _http_url(value: str, rest: str) -> bool:
    match = re.fullmatch(_HTTP_URL + rest, value)
    return match is not None and (match["port"] is None or 0 < int(match["port"]) <= 65535)


def parse_https_url(text: str) -> str:
    value = text.strip().rstrip("/")
    if not _http_url(value, ""):
        raise ValueError("expected a URL such as https://openapivts.koreainvestment.com:29443")
    if value.startswith("http://") and not _loopback(urllib.parse.urlsplit(value).hostname or ""):
        raise ValueError("expected https:// (http:// only on 127.0.0.1, localhost or [::1]), "
                         "e.g. https://openapivts.koreainvestment.com:29443")
    return value


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only: 127.0.0.0/8, ::1, localhost."""
    return _loopback(host.strip("[]"))


def parse_api_host(text: str) -> str:
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?", value):
        raise ValueError("expected a host name or IP address to listen on, e.g. 127.0.0.1 or 0.0.0.0")
    return value.strip("[]")


def parse_port(text: str) -> int:
    return _int_between(text, 0, 65535, "a TCP port from 1 to 65535, or 0 for any free port")


def parse_api_token(text: str) -> str:
    value = text.strip()
    if value and not re.fullmatch(r"[\x21-\x7e]{16,512}", value):
        raise ValueError("expected empty or a token of 16 to 512 printable characters without spaces")
    return value


def parse_webhook_url(text: str) -> str:
    value = text.strip()
    if value and not _http_url(value, r"(/[^\s]*)?"):
        raise ValueError("expected an http(s) URL such as https://hooks.slack.com/services/..., or empty")
    return value


def parse_db_connect_timeout(text: str) -> int:
    return _int_between(text, 2, 300, "a whole number of seconds from 2 to 300")  # libpq's floor is 2


def parse_db_statement_timeout(text: str) -> int:
    return _int_between(text, 0, 86400, "a whole number of seconds from 0 (no limit) to 86400")


def parse_timeout_seconds(text: str) -> float:
    return _positive_float_up_to(text, 60, "a number of seconds, more than 0 and at most 60")


def _positive_float_up_to(text: str, high: float, what: str) -> float:
    value = _parse_float(text, what)
    if not 0 < value <= high:
        raise ValueError(f"expected {what}")
    return value


@dataclass(frozen=True)
class TrIds:
    """The tr_id of each KIS call (KIS_CALLS); ``str()`` is the canonical ``call=TR_ID,...`` text."""

    buy: str
    sell: str
    cancel: str
    balance: str
    fills: str
    quote: str

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in KIS_CALLS}

    def __str__(self) -> str:
        return ",".join(f"{name}={tr_id}" for name, tr_id in self.as_dict().items())


def parse_tr_ids(text: str) -> TrIds:
    pairs: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, tr_id = (piece.strip() for piece in part.partition("="))
        if name not in KIS_CALLS or not re.fullmatch(r"[A-Z0-9]{6,16}", tr_id):
            raise ValueError(f"cannot read {part!r}; expected call=TR_ID pairs for {', '.join(KIS_CALLS)}")
        pairs[name] = tr_id
    missing = [name for name in KIS_CALLS if name not in pairs]
    if missing:
        raise ValueError(f"no tr_id for {', '.join(missing)}; expected call=TR_ID pairs for {', '.join(KIS_CALLS)}")
    return TrIds(**pairs)


def parse_kis_account(text: str) -> str:
    value = text.strip()
    if value and not re.fullmatch(r"[0-9]{8}-?[0-9]{2}", value):
        raise ValueError("expected the 10-digit account number as 12345678-01")
    return value


def parse_rate_per_second(text: str) -> float:
    return _positive_float_up_to(text, 1000, "a number of requests per second above 0 (at most 1000)")


def parse_text(text: str) -> str:
    return text.strip()


def parse_notify_urls(text: str) -> str:
    """Apprise URLs, each optionally led by ``info=``, ``warning=`` or ``error=``; kept
    as given once each is accepted (services.common.notifications.channels)."""
    from services.common.notifications.channels import parse_channels

    parse_channels(text)
    return " ".join(text.split())


def parse_language(text: str) -> str:
    value = text.strip().lower()
    if value not in ("ko", "en"):
        raise ValueError("expected ko or en")
    return value
