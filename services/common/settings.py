"""Settings: every ``ORCHESTRATOR_*`` variable, validated, with its source.

Precedence: CLI option > environment > ``.env`` file > default. A bad value raises
:class:`SettingsError` whose message is one line naming the variable (or option),
the value received and what is accepted.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dotenv.parser import parse_stream

from services.common.setting_values import (
    EntryRules,
    FactorWeights,
    TaxSchedule,
    TrIds,
    parse_api_host,
    parse_api_token,
    parse_bool,
    parse_clock_time,
    parse_database_url,
    parse_day_divisor_minutes,
    parse_db_connect_timeout,
    parse_db_statement_timeout,
    parse_entry_rules,
    parse_grace_seconds,
    parse_https_url,
    parse_interval_minutes,
    parse_kis_account,
    parse_kis_environment,
    parse_language,
    parse_lease_seconds,
    parse_log_level,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_notify_urls,
    parse_optional_database_url,
    parse_optional_fee_percent,
    parse_optional_timezone,
    parse_paper_quotes,
    parse_percent,
    parse_percent_or_off,
    parse_port,
    parse_positive_int,
    parse_provider,
    parse_rate_per_second,
    parse_tax_schedule,
    parse_text,
    parse_timeout_seconds,
    parse_timezone,
    parse_tr_ids,
    parse_universe_size,
    parse_user_id,
    parse_watchlist_weights,
    parse_webhook_url,
    redact_passwords,
)

ENV_PREFIX = "ORCHESTRATOR_"
class ConfigurationError(ValueError):
    """Bad configuration or usage: the CLI prints the message and exits 2."""


class SettingsError(ConfigurationError):
    """A setting has a value that is not accepted."""


# --- the settings ---------------------------------------------------------------------


def _setting(env: str, parser: Callable[[str], Any], default: str, doc: str, *, secret: bool = False,
             shown: Callable[[str], str] | None = None) -> Any:
    """A setting; ``secret`` ones are never shown, ``shown`` ones only through it (in errors)."""
    return field(repr=not secret and shown is None,
                 metadata={"env": env, "parser": parser, "default": default, "doc": doc, "secret": secret,
                           "shown": shown})


#: the command-line option of a setting, where it is not ``--<field-name>``
CLI_FLAGS = {"display_timezone": "--timezone", "api_host": "--host", "api_port": "--port"}


@dataclass(frozen=True)
class Settings:
    """Settings in force; build with :func:`load_settings`."""

    timezone: str = _setting("ORCHESTRATOR_TIMEZONE", parse_timezone, "Asia/Seoul",
                             "IANA timezone of the schedule (risk checks keep its wall clock) and, unless "
                             "ORCHESTRATOR_DISPLAY_TIMEZONE says otherwise, of every time shown")
    display_timezone: str = _setting("ORCHESTRATOR_DISPLAY_TIMEZONE", parse_optional_timezone, "",
                                     "IANA timezone every time is shown, logged and exported in (--timezone "
                                     "of the commands that show times); empty: ORCHESTRATOR_TIMEZONE")
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
                                  "market data source: simulated (offline), pykrx (KRX daily bars), or stored "
                                  "(the history ORCHESTRATOR_HISTORY_DATABASE_URL holds, e.g. from backfill)")
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
    commission_pct: float | None = _setting("ORCHESTRATOR_COMMISSION_PCT", parse_optional_fee_percent, "",
                                            "broker commission per side, percent of the trade (floored to KRW); "
                                            "empty: the dated KRX rules' default (0.015)")
    sell_tax_schedule: TaxSchedule = _setting(
        "ORCHESTRATOR_SELL_TAX_SCHEDULE", parse_tax_schedule, "",
        "sell-side tax by trade date (securities transaction tax and rural special tax): date=percent, each "
        "from its date on; empty: the dated KRX rules (services/common/krx_market_rules.csv, from 2000)")
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
    paper_quotes: str = _setting(
        "ORCHESTRATOR_PAPER_QUOTES", parse_paper_quotes, "auto",
        "intraday prices of dry run on a real data provider: auto (KIS quotes, read only, when KIS_APP_KEY and "
        "KIS_APP_SECRET are set), kis (required) or off; a session no tick priced settles on its daily bar")
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
    kis_app_key: str = _setting("KIS_APP_KEY", parse_text, "",
                                "KIS open API app key (--no-dry-run; with the secret, dry run's quotes)",
                                secret=True)
    kis_app_secret: str = _setting("KIS_APP_SECRET", parse_text, "",
                                   "KIS open API app secret (--no-dry-run; with the key, dry run's quotes)",
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
    history_database_url: str = _setting("ORCHESTRATOR_HISTORY_DATABASE_URL", parse_optional_database_url, "",
                                         "where the stored provider reads market history (collected there, e.g. "
                                         "by backfill with pykrx); empty: DATABASE_URL (a replay reads the live "
                                         "database's history and writes its own)", shown=redact_passwords)
    db_connect_timeout_seconds: int = _setting(
        "ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS", parse_db_connect_timeout, "10",
        "how long connecting to PostgreSQL may take before the command fails")
    db_statement_timeout_seconds: int = _setting(
        "ORCHESTRATOR_DB_STATEMENT_TIMEOUT_SECONDS", parse_db_statement_timeout, "300",
        "longest one PostgreSQL statement may run (0: no limit; migrations have none); "
        "SQLite waits up to 30 s for a lock instead")
    cache_dir: str = _setting("ORCHESTRATOR_CACHE_DIR", parse_text, "",
                              "where the calendar cache, the KIS token and KIS's request pacing live "
                              "(default ~/.cache/krx-orchestrator): instances on one machine sharing it share KIS's "
                              "per-second limit")
    log_level: str = _setting("LOG_LEVEL", parse_log_level, "INFO", "logging level")
    alert_webhook_url: str = _setting("ORCHESTRATOR_ALERT_WEBHOOK_URL", parse_webhook_url, "",
                                      "where alerts are POSTed as JSON (failed or missed runs, halts, the "
                                      "calendar running out); empty: alerts are only logged", secret=True)
    alert_timeout_seconds: float = _setting("ORCHESTRATOR_ALERT_TIMEOUT_SECONDS", parse_timeout_seconds, "5",
                                            "how long one alert POST may take")
    notify_urls: str = _setting("ORCHESTRATOR_NOTIFY_URLS", parse_notify_urls, "",
                                "apprise URLs notifications go to (tgram://, discord://, slack://, mailto://, "
                                "ntfys://, json:// ...), separated by spaces, each optionally led by its lowest "
                                "level: info=, warning= or error=; empty: none", secret=True)
    notify_language: str = _setting("ORCHESTRATOR_NOTIFY_LANGUAGE", parse_language, "ko",
                                    "language of the notifications: ko or en")
    api: bool = _setting("ORCHESTRATOR_API", parse_bool, "true",
                         "`start` serves the console (REST API) too (--api/--no-api)")
    api_host: str = _setting("ORCHESTRATOR_API_HOST", parse_api_host, "127.0.0.1",
                             "address the console (REST API) listens on (`serve --host`); one other than "
                             "127.0.0.1, ::1 or localhost needs ORCHESTRATOR_API_TOKEN")
    api_port: int = _setting("ORCHESTRATOR_API_PORT", parse_port, "8080",
                             "port the console (REST API) listens on (`serve --port`); 0: any free port")
    api_token: str = _setting("ORCHESTRATOR_API_TOKEN", parse_api_token, "",
                              "bearer token of the console's changes, and required to listen beyond this "
                              "machine; empty: loopback only", secret=True)
    api_cache_seconds: float = _setting("ORCHESTRATOR_API_CACHE_SECONDS", parse_non_negative_float, "1",
                                        "how long the console shares one answer of a read (GET) among the "
                                        "clients asking; a change made through the console clears it; 0: "
                                        "every read is computed afresh")

    @property
    def tz(self) -> ZoneInfo:
        """The schedule's zone."""
        return ZoneInfo(self.timezone)

    @property
    def kis_host(self) -> str:
        """The KIS host of ``ORCHESTRATOR_KIS_ENVIRONMENT`` (paper or live)."""
        return self.kis_live_host if self.kis_environment == "live" else self.kis_paper_host

    @property
    def kis_tr_ids(self) -> TrIds:
        """The KIS tr_ids of ``ORCHESTRATOR_KIS_ENVIRONMENT`` (paper or live)."""
        return self.kis_live_tr_ids if self.kis_environment == "live" else self.kis_paper_tr_ids

    @property
    def display_zone(self) -> str:
        """The name of the zone every time is shown in."""
        return self.display_timezone or self.timezone

    @property
    def display_tz(self) -> ZoneInfo:
        """The zone every time is shown, logged and exported in."""
        return ZoneInfo(self.display_zone)

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
            values[name] = _parse_field(name, cli[name], CLI_FLAGS.get(name, f"--{name.replace('_', '-')}"))
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
