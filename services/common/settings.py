"""Settings: every ``ORCHESTRATOR_*`` variable, validated, with its source.

Precedence: CLI option > environment > ``.env`` file > default. A bad value raises
:class:`SettingsError` whose message is one line naming the variable (or option),
the value received and what is accepted.
"""

from __future__ import annotations

import io
import ipaddress
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv.parser import parse_stream

ENV_PREFIX = "ORCHESTRATOR_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATA_PROVIDERS = ("simulated", "pykrx")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_MINUTES_PER_DAY = 24 * 60
_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class ConfigurationError(ValueError):
    """Bad configuration or usage: the CLI prints the message and exits 2."""


class SettingsError(ConfigurationError):
    """A setting has a value that is not accepted."""


# --- parsers: raw text -> value, or ValueError("what is accepted") -------------------


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
    its date until the next one."""
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
    if not rates:
        raise ValueError(accepted)
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


def tr_id_table(tr_ids: TrIds) -> dict[str, str]:
    """``tr_ids`` as a dict of call -> tr_id (``TrIds.as_dict``)."""
    return tr_ids.as_dict()


def parse_kis_account(text: str) -> str:
    value = text.strip()
    if value and not re.fullmatch(r"[0-9]{8}-?[0-9]{2}", value):
        raise ValueError("expected the 10-digit account number as 12345678-01")
    return value


def parse_rate_per_second(text: str) -> float:
    return _positive_float_up_to(text, 1000, "a number of requests per second above 0 (at most 1000)")


def parse_text(text: str) -> str:
    return text.strip()


# --- the settings ---------------------------------------------------------------------


def _setting(env: str, parser: Callable[[str], Any], default: str, doc: str, *, secret: bool = False,
             shown: Callable[[str], str] | None = None) -> Any:
    """A setting; ``secret`` ones are never shown, ``shown`` ones only through it (in errors)."""
    return field(repr=not secret and shown is None,
                 metadata={"env": env, "parser": parser, "default": default, "doc": doc, "secret": secret,
                           "shown": shown})


@dataclass(frozen=True)
class Settings:
    """Settings in force; build with :func:`load_settings`."""

    timezone: str = _setting("ORCHESTRATOR_TIMEZONE", parse_timezone, "Asia/Seoul",
                             "IANA timezone of the schedule and of displayed times")
    user_id: str = _setting("ORCHESTRATOR_USER_ID", parse_user_id, "default_user",
                            "account the jobs work for")
    dry_run: bool = _setting("ORCHESTRATOR_DRY_RUN", parse_bool, "true",
                             "paper trading (true) or live orders (false)")
    portfolio_value: int = _setting("ORCHESTRATOR_PORTFOLIO_VALUE", parse_positive_int,
                                    "100000000", "initial cash of a new paper account, KRW")
    data_collection_time: time = _setting("ORCHESTRATOR_DATA_COLLECTION_TIME", parse_clock_time,
                                          "16:00", "data collection, read against the regular close")
    indicator_calculation_time: time = _setting(
        "ORCHESTRATOR_INDICATOR_CALCULATION_TIME", parse_clock_time, "17:00",
        "indicator calculation, read against the regular close")
    watchlist_update_time: time = _setting("ORCHESTRATOR_WATCHLIST_UPDATE_TIME", parse_clock_time,
                                           "18:00", "watchlist update, read against the regular close")
    signal_generation_time: time = _setting("ORCHESTRATOR_SIGNAL_GENERATION_TIME", parse_clock_time,
                                            "08:45", "pre-open signals, read against the regular open")
    market_open_time: time = _setting("ORCHESTRATOR_MARKET_OPEN_TIME", parse_clock_time, "09:00",
                                      "regular session open the job times are read against")
    market_close_time: time = _setting("ORCHESTRATOR_MARKET_CLOSE_TIME", parse_clock_time, "15:30",
                                       "regular session close the job times are read against")
    position_monitor_interval: int = _setting(
        "ORCHESTRATOR_POSITION_MONITOR_INTERVAL", parse_interval_minutes, "15",
        "minutes between position checks, from the actual open to the actual close")
    risk_check_interval: int = _setting("ORCHESTRATOR_RISK_CHECK_INTERVAL", parse_day_divisor_minutes,
                                        "30", "minutes between risk checks, clock-aligned, every day")
    enable_data_collection: bool = _setting("ORCHESTRATOR_ENABLE_DATA_COLLECTION", parse_bool, "true",
                                            "schedule the data_collection job")
    enable_indicator_calculation: bool = _setting(
        "ORCHESTRATOR_ENABLE_INDICATOR_CALCULATION", parse_bool, "true",
        "schedule the indicator_calculation job")
    enable_watchlist_update: bool = _setting("ORCHESTRATOR_ENABLE_WATCHLIST_UPDATE", parse_bool, "true",
                                             "schedule the watchlist_update job")
    enable_signal_generation: bool = _setting("ORCHESTRATOR_ENABLE_SIGNAL_GENERATION", parse_bool,
                                              "true", "schedule the signal_generation job")
    enable_position_monitoring: bool = _setting("ORCHESTRATOR_ENABLE_POSITION_MONITORING", parse_bool,
                                                "true", "schedule the position_monitoring job")
    enable_risk_checks: bool = _setting("ORCHESTRATOR_ENABLE_RISK_CHECKS", parse_bool, "true",
                                        "schedule the risk_checks job")
    max_position_size_pct: float = _setting("ORCHESTRATOR_MAX_POSITION_SIZE_PCT", parse_percent,
                                            "10.0", "largest position, percent of equity")
    max_positions: int = _setting("ORCHESTRATOR_MAX_POSITIONS", parse_positive_int, "20",
                                  "most open positions at once")
    max_daily_loss_pct: float = _setting("ORCHESTRATOR_MAX_DAILY_LOSS_PCT", parse_percent, "3.0",
                                         "daily loss that blocks new entries for the session, percent")
    max_total_loss_pct: float = _setting("ORCHESTRATOR_MAX_TOTAL_LOSS_PCT", parse_percent, "15.0",
                                         "drawdown from the peak, or loss from the initial value, that halts "
                                         "trading until resumed, percent")
    misfire_grace_seconds: int = _setting("ORCHESTRATOR_MISFIRE_GRACE_SECONDS", parse_grace_seconds,
                                          "300", "how late a fire of a job without a market bound may run")
    run_lease_seconds: int = _setting("ORCHESTRATOR_RUN_LEASE_SECONDS", parse_lease_seconds, "60",
                                      "a running job renews its claim this often x3; an instance whose claim "
                                      "lapses is taken for dead, and its run recorded failed and run again")
    data_provider: str = _setting("ORCHESTRATOR_DATA_PROVIDER", parse_provider, "simulated",
                                  "market data source: simulated (offline) or pykrx")
    bootstrap_sessions: int = _setting("ORCHESTRATOR_BOOTSTRAP_SESSIONS", parse_positive_int, "250",
                                       "sessions of history kept complete (caught up on start)")
    simulated_universe: int = _setting("ORCHESTRATOR_SIMULATED_UNIVERSE", parse_universe_size, "300",
                                       "tickers in the simulated market (1-5000)")
    simulated_seed: int = _setting("ORCHESTRATOR_SIMULATED_SEED", parse_non_negative_int, "42",
                                   "seed of the simulated market: same seed, same data")
    watchlist_size: int = _setting("ORCHESTRATOR_WATCHLIST_SIZE", parse_positive_int, "20",
                                   "tickers kept on each user's watchlist")
    watchlist_min_value: int = _setting("ORCHESTRATOR_WATCHLIST_MIN_VALUE", parse_non_negative_int,
                                        "1000000000", "minimum traded value of the session, KRW")
    watchlist_min_price: int = _setting("ORCHESTRATOR_WATCHLIST_MIN_PRICE", parse_non_negative_int,
                                        "1000", "minimum close, KRW")
    watchlist_weights: FactorWeights = _setting(
        "ORCHESTRATOR_WATCHLIST_WEIGHTS", parse_watchlist_weights,
        "trend=0.3,momentum=0.25,volatility=0.15,liquidity=0.15,value=0.15",
        "factor weights of the watchlist score")
    pykrx_min_interval_seconds: float = _setting(
        "ORCHESTRATOR_PYKRX_MIN_INTERVAL", parse_non_negative_float, "1.0",
        "seconds between two requests to KRX (pykrx provider)")
    commission_pct: float = _setting("ORCHESTRATOR_COMMISSION_PCT", parse_fee_percent, "0.015",
                                     "broker commission per side, percent of the trade (floored to KRW)")
    sell_tax_schedule: TaxSchedule = _setting(
        "ORCHESTRATOR_SELL_TAX_SCHEDULE", parse_tax_schedule,
        "2019-06-03=0.25,2021-01-01=0.23,2023-01-01=0.20,2024-01-01=0.18,2025-01-01=0.15,2026-01-01=0.20",
        "sell-side transaction tax by trade date: date=percent, each from its date on")
    entry_rules: EntryRules = _setting("ORCHESTRATOR_ENTRY_RULES", parse_entry_rules,
                                "trend>=0.75,momentum>=0.5,rsi_14<70",
                                "conditions a watchlist ticker must meet for an entry signal (all of them)")
    entry_limit_pct: float = _setting("ORCHESTRATOR_ENTRY_LIMIT_PCT", parse_percent_or_off, "1.0",
                                      "entry buy limit above the previous close, percent (0: market order)")
    stop_loss_pct: float = _setting("ORCHESTRATOR_STOP_LOSS_PCT", parse_percent_or_off, "5.0",
                                    "exit when the price falls this far below the average cost (0: off)")
    take_profit_pct: float = _setting("ORCHESTRATOR_TAKE_PROFIT_PCT", parse_percent_or_off, "15.0",
                                      "exit when the price rises this far above the average cost (0: off)")
    trailing_stop_pct: float = _setting("ORCHESTRATOR_TRAILING_STOP_PCT", parse_percent_or_off, "8.0",
                                        "exit when the price falls this far below its high since entry (0: off)")
    exit_on_trend_break: bool = _setting("ORCHESTRATOR_EXIT_ON_TREND_BREAK", parse_bool, "true",
                                         "exit when the close falls below its 60-session average")
    exit_on_watchlist_drop: bool = _setting("ORCHESTRATOR_EXIT_ON_WATCHLIST_DROP", parse_bool, "true",
                                            "exit when a held ticker leaves the watchlist")
    position_fraction_pct: float = _setting("ORCHESTRATOR_POSITION_FRACTION_PCT", parse_percent, "5.0",
                                            "fixed-fraction size of a new position, percent of equity")
    kelly_min_trades: int = _setting("ORCHESTRATOR_KELLY_MIN_TRADES", parse_non_negative_int, "30",
                                     "closed trades needed before sizing by half-Kelly (0: never)")
    kis_environment: str = _setting("ORCHESTRATOR_KIS_ENVIRONMENT", parse_kis_environment, "paper",
                                    "KIS account used with --no-dry-run: paper (모의투자) or live")
    kis_paper_host: str = _setting("ORCHESTRATOR_KIS_PAPER_HOST", parse_https_url,
                                   "https://openapivts.koreainvestment.com:29443", "KIS paper-trading host")
    kis_live_host: str = _setting("ORCHESTRATOR_KIS_LIVE_HOST", parse_https_url,
                                  "https://openapi.koreainvestment.com:9443", "KIS live-trading host")
    kis_paper_tr_ids: TrIds = _setting(
        "ORCHESTRATOR_KIS_PAPER_TR_IDS", parse_tr_ids,
        "buy=VTTC0012U,sell=VTTC0011U,cancel=VTTC0013U,balance=VTTC8434R,fills=VTTC0081R,quote=FHKST01010100",
        "KIS tr_ids on the paper host (they changed in 2025; keep them here)")
    kis_live_tr_ids: TrIds = _setting(
        "ORCHESTRATOR_KIS_LIVE_TR_IDS", parse_tr_ids,
        "buy=TTTC0012U,sell=TTTC0011U,cancel=TTTC0013U,balance=TTTC8434R,fills=TTTC0081R,quote=FHKST01010100",
        "KIS tr_ids on the live host")
    kis_requests_per_second: float = _setting("ORCHESTRATOR_KIS_REQUESTS_PER_SECOND", parse_rate_per_second,
                                              "2", "most KIS API requests per second (paper accounts allow few)")
    kis_app_key: str = _setting("KIS_APP_KEY", parse_text, "", "KIS open API app key (--no-dry-run)",
                                secret=True)
    kis_app_secret: str = _setting("KIS_APP_SECRET", parse_text, "", "KIS open API app secret (--no-dry-run)",
                                   secret=True)
    kis_account: str = _setting("KIS_ACCOUNT", parse_kis_account, "",
                                "KIS account number 12345678-01 (--no-dry-run)", secret=True)
    database_url: str = _setting("DATABASE_URL", parse_database_url, "sqlite:///data/orchestrator.db",
                                 "SQLAlchemy URL; a relative SQLite path is under the working directory",
                                 shown=redact_passwords)
    simulation_database_url: str = _setting("ORCHESTRATOR_SIMULATION_DATABASE_URL", parse_database_url,
                                            "sqlite:///data/simulation.db",
                                            "where `simulate` replays go by default, apart from the live account",
                                            shown=redact_passwords)
    db_connect_timeout_seconds: int = _setting(
        "ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS", parse_db_connect_timeout, "10",
        "how long connecting to PostgreSQL may take before the command fails")
    db_statement_timeout_seconds: int = _setting(
        "ORCHESTRATOR_DB_STATEMENT_TIMEOUT_SECONDS", parse_db_statement_timeout, "300",
        "longest one PostgreSQL statement may run (0: no limit; migrations have none); "
        "SQLite waits up to 30 s for a lock instead")
    cache_dir: str = _setting("ORCHESTRATOR_CACHE_DIR", parse_text, "",
                              "where the calendar cache lives (default ~/.cache/krx-orchestrator)")
    log_level: str = _setting("LOG_LEVEL", parse_log_level, "INFO", "logging level")
    alert_webhook_url: str = _setting("ORCHESTRATOR_ALERT_WEBHOOK_URL", parse_webhook_url, "",
                                      "where alerts are POSTed as JSON (failed or missed runs, halts, the "
                                      "calendar running out); empty: alerts are only logged", secret=True)
    alert_timeout_seconds: float = _setting("ORCHESTRATOR_ALERT_TIMEOUT_SECONDS", parse_timeout_seconds, "5",
                                            "how long one alert POST may take")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def job_enabled(self, job_name: str) -> bool:
        """Whether ``ORCHESTRATOR_ENABLE_<JOB>`` (or a ``--disable-<job>`` flag) left it on."""
        return bool(getattr(self, f"enable_{job_name}"))

    def redacted_database_url(self, url_text: str | None = None) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(url_text or self.database_url)
        query = {key: ("***" if "password" in key.lower() else value) for key, value in url.query.items()}
        return url.set(query=query).render_as_string(hide_password=True)


SETTING_FIELDS = {f.name: f for f in fields(Settings)}
ENV_TO_FIELD = {f.metadata["env"]: f.name for f in fields(Settings)}


def _describe(value: str) -> str:
    return repr(value) if len(value) <= 60 else repr(value[:57] + "...")


def _parse_field(name: str, raw: Any, source: str) -> Any:
    meta = SETTING_FIELDS[name].metadata
    if not isinstance(raw, str):
        return raw  # already typed (a CLI option parsed by typer)
    try:
        return meta["parser"](raw)
    except ValueError as exc:
        shown = "(hidden)" if meta["secret"] else _describe(meta["shown"](raw) if meta["shown"] else raw)
        raise SettingsError(f"{source}={shown}: {exc}") from None


def _sqlite_default_url(cwd: Path, default: str) -> str:
    """A default ``sqlite:///data/<file>`` URL made absolute under ``cwd``."""
    return f"sqlite:///{cwd / default.removeprefix('sqlite:///')}"


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge CLI > environment > ``.env`` > defaults, validating every value.

    ``cli`` maps field names to values given on the command line (``None`` = not given).
    """
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    env_file = env_file if env_file is not None else cwd / ".env"
    dotenv = read_env_file(env_file)
    values: dict[str, Any] = {}
    for name, spec in SETTING_FIELDS.items():
        env_name = spec.metadata["env"]
        if cli and cli.get(name) is not None:
            values[name] = _parse_field(name, cli[name], f"--{name.replace('_', '-')}")
        elif env_name in environ:
            values[name] = _parse_field(name, environ[env_name], env_name)
        elif env_name in dotenv:
            values[name] = _parse_field(name, dotenv[env_name], f"{env_name} (in {env_file.name})")
        elif name in ("database_url", "simulation_database_url"):
            values[name] = _sqlite_default_url(cwd, spec.metadata["default"])
        else:
            values[name] = _parse_field(name, spec.metadata["default"], f"default {env_name}")
    settings = Settings(**values)
    _check_regular_session(settings)
    return settings


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` pairs of a ``.env`` file; a line that does not parse is an error."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"{path.name}: not UTF-8 text; expected NAME=value lines") from None
    except OSError as exc:
        raise SettingsError(f"{path.name}: cannot be read ({exc.strerror})") from None
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise SettingsError(f"{path.name} line {line}: cannot parse {binding.original.string.strip()!r}; "
                                "expected NAME=value")
        if binding.key is None:
            continue  # a blank or comment line
        if binding.value is None:
            raise SettingsError(f"{path.name} line {line}: {binding.key!r} has no '='; expected NAME=value")
        values[binding.key] = binding.value
    return values


def _check_regular_session(settings: Settings) -> None:
    if settings.market_open_time >= settings.market_close_time:
        raise SettingsError(
            f"ORCHESTRATOR_MARKET_OPEN_TIME {settings.market_open_time:%H:%M} is not before "
            f"ORCHESTRATOR_MARKET_CLOSE_TIME {settings.market_close_time:%H:%M}; "
            "expected the regular session, e.g. 09:00 and 15:30"
        )


def unknown_variables(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """``ORCHESTRATOR_*`` names in ``environ`` that no setting reads (likely typos)."""
    known_set = set(known)
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known_set)


def env_example_lines() -> list[str]:
    """The lines of ``.env.example``: every variable with its default and meaning."""
    lines = []
    for spec in SETTING_FIELDS.values():
        meta = spec.metadata
        lines.append(f"# {meta['doc']}")
        lines.append(f"{meta['env']}={meta['default']}")
    return lines
