"""Settings: defaults of the original README, precedence, and one-line errors."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from services.common.setting_values import Condition, DatedRate, TrIds, redact_passwords
from services.common.settings import (
    ENV_TO_FIELD,
    SETTING_FIELDS,
    SettingsError,
    env_example_lines,
    load_settings,
    unknown_variables,
)
from services.orchestrator.jobs import JOBS

NO_ENV_FILE = Path("/nonexistent/.env")
REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_the_documented_values(tmp_path: Path) -> None:
    settings = load_settings({}, environ={}, env_file=NO_ENV_FILE, cwd=tmp_path)
    assert settings.timezone == "Asia/Seoul"
    assert settings.user_id == "default_user"
    assert settings.dry_run is True
    assert settings.portfolio_value == 100_000_000
    assert settings.data_collection_time == time(16, 0)
    assert settings.indicator_calculation_time == time(17, 0)
    assert settings.watchlist_update_time == time(18, 0)
    assert settings.signal_generation_time == time(8, 45)
    assert settings.market_open_time == time(9, 0)
    assert settings.market_close_time == time(15, 30)
    assert settings.position_monitor_interval == 15
    assert settings.risk_check_interval == 30
    assert all(settings.job_enabled(job.name) for job in JOBS)
    assert settings.max_position_size_pct == 10.0
    assert settings.max_positions == 20
    assert settings.max_daily_loss_pct == 3.0
    assert settings.max_total_loss_pct == 15.0
    assert settings.bootstrap_sessions == 250
    assert settings.simulated_universe == 300
    assert settings.log_level == "INFO"
    assert settings.misfire_grace_seconds == 300
    assert settings.data_provider == "simulated"
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'orchestrator.db'}"
    assert settings.db_connect_timeout_seconds == 10
    assert settings.db_statement_timeout_seconds == 300


def test_cli_beats_environment_beats_env_file_beats_default(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "ORCHESTRATOR_USER_ID=from_file\nORCHESTRATOR_TIMEZONE=UTC\nORCHESTRATOR_MAX_POSITIONS=7\n"
    )
    environ = {"ORCHESTRATOR_USER_ID": "from_env", "ORCHESTRATOR_TIMEZONE": "Asia/Tokyo"}
    settings = load_settings({"user_id": "from_cli"}, environ=environ, env_file=env_file)
    assert settings.user_id == "from_cli"
    assert settings.timezone == "Asia/Tokyo"
    assert settings.max_positions == 7
    assert settings.portfolio_value == 100_000_000


def test_cli_options_not_given_fall_through_to_the_environment() -> None:
    settings = load_settings({"user_id": None, "dry_run": None},
                             environ={"ORCHESTRATOR_DRY_RUN": "no"}, env_file=NO_ENV_FILE)
    assert settings.dry_run is False
    assert settings.user_id == "default_user"


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("NO", False),
])
def test_booleans_accept_true_false_1_0_yes_no_in_any_case(text: str, expected: bool) -> None:
    settings = load_settings({}, environ={"ORCHESTRATOR_ENABLE_RISK_CHECKS": text}, env_file=NO_ENV_FILE)
    assert settings.enable_risk_checks is expected


BAD_ENVIRONMENT = [
    ("ORCHESTRATOR_DATA_COLLECTION_TIME", "25:00",
     "ORCHESTRATOR_DATA_COLLECTION_TIME='25:00': expected a time HH:MM between 00:00 and 23:59"),
    ("ORCHESTRATOR_SIGNAL_GENERATION_TIME", "8.45",
     "ORCHESTRATOR_SIGNAL_GENERATION_TIME='8.45': expected a time HH:MM between 00:00 and 23:59"),
    ("ORCHESTRATOR_TIMEZONE", "Asia/Seol",
     "ORCHESTRATOR_TIMEZONE='Asia/Seol': unknown timezone; expected an IANA name such as Asia/Seoul or UTC"),
    ("ORCHESTRATOR_PORTFOLIO_VALUE", "-5", "ORCHESTRATOR_PORTFOLIO_VALUE='-5': expected a whole number above 0"),
    ("ORCHESTRATOR_PORTFOLIO_VALUE", "lots", "ORCHESTRATOR_PORTFOLIO_VALUE='lots': expected a whole number above 0"),
    ("ORCHESTRATOR_DRY_RUN", "maybe", "ORCHESTRATOR_DRY_RUN='maybe': expected one of true/false/1/0/yes/no"),
    ("ORCHESTRATOR_ENABLE_RISK_CHECKS", "on",
     "ORCHESTRATOR_ENABLE_RISK_CHECKS='on': expected one of true/false/1/0/yes/no"),
    ("ORCHESTRATOR_POSITION_MONITOR_INTERVAL", "0",
     "ORCHESTRATOR_POSITION_MONITOR_INTERVAL='0': expected a whole number of minutes from 1 to 1440"),
    ("ORCHESTRATOR_RISK_CHECK_INTERVAL", "0",
     "ORCHESTRATOR_RISK_CHECK_INTERVAL='0': expected a whole number of minutes from 1 to 1440"),
    ("ORCHESTRATOR_RISK_CHECK_INTERVAL", "7",
     "ORCHESTRATOR_RISK_CHECK_INTERVAL='7': the interval must divide a day evenly"),
    ("ORCHESTRATOR_MAX_POSITION_SIZE_PCT", "150",
     "ORCHESTRATOR_MAX_POSITION_SIZE_PCT='150': expected a percentage above 0 and at most 100"),
    ("ORCHESTRATOR_MAX_POSITIONS", "0", "ORCHESTRATOR_MAX_POSITIONS='0': expected a whole number above 0"),
    ("ORCHESTRATOR_MISFIRE_GRACE_SECONDS", "-1",
     "ORCHESTRATOR_MISFIRE_GRACE_SECONDS='-1': expected a whole number of seconds from 0 to 604800"),
    ("ORCHESTRATOR_MISFIRE_GRACE_SECONDS", "999999999999",
     "ORCHESTRATOR_MISFIRE_GRACE_SECONDS='999999999999': expected a whole number of seconds from 0 to 604800"),
    ("ORCHESTRATOR_DATA_COLLECTION_TIME", "１６:００",
     "ORCHESTRATOR_DATA_COLLECTION_TIME='１６:００': expected a time HH:MM between 00:00 and 23:59"),
    ("ORCHESTRATOR_PORTFOLIO_VALUE", "١٠٠", "ORCHESTRATOR_PORTFOLIO_VALUE='١٠٠': expected a whole number above 0"),
    ("ORCHESTRATOR_PORTFOLIO_VALUE", "1e9", "ORCHESTRATOR_PORTFOLIO_VALUE='1e9': expected a whole number above 0"),
    ("ORCHESTRATOR_MAX_DAILY_LOSS_PCT", "nan",
     "ORCHESTRATOR_MAX_DAILY_LOSS_PCT='nan': expected a percentage above 0 and at most 100"),
    ("ORCHESTRATOR_SIMULATED_UNIVERSE", "9000",
     "ORCHESTRATOR_SIMULATED_UNIVERSE='9000': expected a whole number of tickers from 1 to 5000"),
    ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL='mysql://u@h/db': mysql is not supported"),
    ("DATABASE_URL", "postgresql+nodriver://x/y",
     "DATABASE_URL='postgresql+nodriver://x/y': expected a SQLAlchemy URL"),
    ("ORCHESTRATOR_DATA_PROVIDER", "yahoo", "ORCHESTRATOR_DATA_PROVIDER='yahoo': expected one of simulated, pykrx"),
    ("ORCHESTRATOR_USER_ID", "", "ORCHESTRATOR_USER_ID='': expected 1-64 characters"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("DATABASE_URL", "data/orchestrator.db", "DATABASE_URL='data/orchestrator.db': expected a SQLAlchemy URL"),
    ("ORCHESTRATOR_ALERT_WEBHOOK_URL", "hooks.slack.com/x",
     "ORCHESTRATOR_ALERT_WEBHOOK_URL=(hidden): expected an http(s) URL such as "
     "https://hooks.slack.com/services/..., or empty"),
    ("ORCHESTRATOR_ALERT_TIMEOUT_SECONDS", "0",
     "ORCHESTRATOR_ALERT_TIMEOUT_SECONDS='0': expected a number of seconds, more than 0 and at most 60"),
    ("ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS", "1",
     "ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS='1': expected a whole number of seconds from 2 to 300"),
    ("ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS", "2.5",
     "ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS='2.5': expected a whole number of seconds from 2 to 300"),
    ("ORCHESTRATOR_DB_STATEMENT_TIMEOUT_SECONDS", "-1",
     "ORCHESTRATOR_DB_STATEMENT_TIMEOUT_SECONDS='-1': expected a whole number of seconds from 0 (no limit) "
     "to 86400"),
    ("DATABASE_URL", "sqlite://",
     "DATABASE_URL='sqlite://': an in-memory SQLite database keeps nothing between commands; "
     "expected a file such as sqlite:///data/orchestrator.db"),
    ("DATABASE_URL", "sqlite:///:memory:",
     "DATABASE_URL='sqlite:///:memory:': an in-memory SQLite database keeps nothing between commands; "
     "expected a file such as sqlite:///data/orchestrator.db"),
    ("DATABASE_URL", "postgresql+psycopg://u@h/db\nx",
     "DATABASE_URL='postgresql+psycopg://u@h/db\\nx': a line break or control character in the URL; "
     "expected it on one line"),
    ("DATABASE_URL", "postgresql+asyncpg://u@h/db",
     "DATABASE_URL='postgresql+asyncpg://u@h/db': the asyncpg driver is not supported; "
     "expected sqlite:///data/orchestrator.db or postgresql+psycopg://user@host:5432/db"),
]


@pytest.mark.parametrize("name, value, message", BAD_ENVIRONMENT,
                         ids=[f"{n}={v}" for n, v, _ in BAD_ENVIRONMENT])
def test_a_bad_environment_value_is_one_line_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={name: value}, env_file=NO_ENV_FILE)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_bad_env_file_value_says_it_came_from_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ORCHESTRATOR_TIMEZONE=Nowhere/Land\n")
    with pytest.raises(SettingsError, match=r"^ORCHESTRATOR_TIMEZONE \(in \.env\)='Nowhere/Land': unknown timezone"):
        load_settings({}, environ={}, env_file=env_file)


@pytest.mark.parametrize("text, message", [
    ("# comment\nORCHESTRATOR_TIMEZONE\n", ".env line 2: 'ORCHESTRATOR_TIMEZONE' has no '='; expected NAME=value"),
    ('ORCHESTRATOR_TIMEZONE="UTC\n', ".env line 1: cannot parse 'ORCHESTRATOR_TIMEZONE=\"UTC'"),
    ("A=1\n= novalue\n", ".env line 2: cannot parse '= novalue'; expected NAME=value"),
])
def test_an_env_file_line_that_does_not_parse_is_rejected_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={}, env_file=env_file)
    assert str(error.value).startswith(message.replace('\\"', '"'))


def test_an_env_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"\xff\xfeX")
    with pytest.raises(SettingsError, match=r"^\.env: not UTF-8 text"):
        load_settings({}, environ={}, env_file=env_file)


def test_a_bad_cli_value_names_the_option() -> None:
    with pytest.raises(SettingsError, match=r"^--portfolio-value='0': expected a whole number above 0"):
        load_settings({"portfolio_value": "0"}, environ={}, env_file=NO_ENV_FILE)


def test_the_regular_session_must_open_before_it_closes() -> None:
    environ = {"ORCHESTRATOR_MARKET_OPEN_TIME": "15:30", "ORCHESTRATOR_MARKET_CLOSE_TIME": "09:00"}
    with pytest.raises(SettingsError, match="is not before ORCHESTRATOR_MARKET_CLOSE_TIME"):
        load_settings({}, environ=environ, env_file=NO_ENV_FILE)


def test_the_database_password_is_hidden_when_shown() -> None:
    settings = load_settings({}, environ={"DATABASE_URL": "postgresql+psycopg://bob:secret@db/x"},
                             env_file=NO_ENV_FILE)
    assert settings.redacted_database_url() == "postgresql+psycopg://bob:***@db/x"
    in_query = load_settings({}, environ={"DATABASE_URL": "postgresql+psycopg://db/x?password=hunter2"},
                             env_file=NO_ENV_FILE)
    assert "hunter2" not in in_query.redacted_database_url()


@pytest.mark.parametrize("url, shown", [
    ("mysql://bob:hunter2@db/x", "DATABASE_URL='mysql://bob:***@db/x': mysql is not supported"),
    ("postgresql+pg8000://bob:hunter2@db/x",
     "DATABASE_URL='postgresql+pg8000://bob:***@db/x': the pg8000 driver is not supported"),
    ("postgresql+psycopg://bob:hunter2@db/x\n", None),
    ("postgresql+psycopg://bob:hunter2@db/x\ny",
     "DATABASE_URL='postgresql+psycopg://bob:***@db/x\\ny': a line break"),
    ("postgresql+psycopg://db/x?password=hunter2&sslmode=x\n1",
     "DATABASE_URL='postgresql+psycopg://db/x?password=***&sslmode=x\\n1': a line break"),
])
def test_a_refused_database_url_is_shown_without_its_password(url: str, shown: str | None) -> None:
    if shown is None:  # a trailing line break is trimmed like other whitespace
        assert load_settings({}, environ={"DATABASE_URL": url}, env_file=NO_ENV_FILE).database_url == url.strip()
        return
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={"DATABASE_URL": url}, env_file=NO_ENV_FILE)
    assert str(error.value).startswith(shown)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("text, redacted", [
    ("postgresql+psycopg://bob:hunter2@db:5432/x", "postgresql+psycopg://bob:***@db:5432/x"),
    ("postgresql+psycopg://:hunter2@db/x?sslmode=require", "postgresql+psycopg://:***@db/x?sslmode=require"),
    ("postgresql+psycopg://bob@db/x?PASSWORD=hunter2&sslmode=require",
     "postgresql+psycopg://bob@db/x?PASSWORD=***&sslmode=require"),
    ("invalid dsn: host=db password=hunter2 user=bob", "invalid dsn: host=db password=*** user=bob"),
    ("invalid dsn: host=db password = 'hun ter2' user=bob", "invalid dsn: host=db password = *** user=bob"),
    ("connection to server at \"db\", port 5432 failed", "connection to server at \"db\", port 5432 failed"),
])
def test_passwords_in_urls_and_connection_strings_are_hidden(text: str, redacted: str) -> None:
    assert redact_passwords(text) == redacted


def test_the_settings_repr_hides_the_database_password() -> None:
    settings = load_settings({}, environ={"DATABASE_URL": "postgresql+psycopg://bob:hunter2@db/x"},
                             env_file=NO_ENV_FILE)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize("host", [
    "http://127.0.0.1:8080", "http://127.3.4.5:8080", "http://localhost:8080", "http://[::1]:8080",
    "https://openapivts.koreainvestment.com:29443", "https://[::1]:8443",
])
def test_a_kis_host_over_http_is_accepted_only_on_loopback(host: str) -> None:
    settings = load_settings({}, environ={"ORCHESTRATOR_KIS_PAPER_HOST": host}, env_file=NO_ENV_FILE)
    assert settings.kis_paper_host == host


@pytest.mark.parametrize("name, host", [
    ("ORCHESTRATOR_KIS_PAPER_HOST", "http://openapivts.koreainvestment.com:29443"),
    ("ORCHESTRATOR_KIS_LIVE_HOST", "http://openapi.koreainvestment.com:9443"),
    ("ORCHESTRATOR_KIS_LIVE_HOST", "http://127.0.0.1.example.com:9443"),
    ("ORCHESTRATOR_KIS_LIVE_HOST", "http://10.0.0.1:9443"),
    ("ORCHESTRATOR_KIS_LIVE_HOST", "http://[::2]:9443"),
    ("ORCHESTRATOR_KIS_LIVE_HOST", "http://localhost.example.com"),
])
def test_a_kis_host_over_http_elsewhere_is_refused(name: str, host: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={name: host}, env_file=NO_ENV_FILE)
    assert str(error.value) == (f"{name}={host!r}: expected https:// (http:// only on 127.0.0.1, localhost "
                                "or [::1]), e.g. https://openapivts.koreainvestment.com:29443")


def test_misspelt_orchestrator_variables_are_reported() -> None:
    environ = {"ORCHESTRATOR_DATA_COLECTION_TIME": "16:00", "ORCHESTRATOR_USER_ID": "a", "PATH": "/bin"}
    assert unknown_variables(environ, ENV_TO_FIELD) == ["ORCHESTRATOR_DATA_COLECTION_TIME"]


def test_every_registry_job_has_an_enable_switch() -> None:
    assert {job.enable_variable for job in JOBS} <= set(ENV_TO_FIELD)


def test_env_example_lists_every_variable_with_its_default() -> None:
    example = (REPO / ".env.example").read_text().splitlines()
    assert [line for line in example if line and not line.startswith("#")] == [
        line for line in env_example_lines() if not line.startswith("#")
    ]


def test_a_database_driver_that_is_not_installed_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on a machine without psycopg: importing it fails
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={"DATABASE_URL": "postgresql+psycopg://bob:hunter2@db/x"}, env_file=NO_ENV_FILE)
    assert str(error.value) == (
        "DATABASE_URL='postgresql+psycopg://bob:***@db/x': the psycopg driver is not installed; expected "
        "sqlite:///data/orchestrator.db or postgresql+psycopg://user@host:5432/db")


def test_structured_settings_are_parsed_once_into_typed_values() -> None:
    settings = load_settings({}, environ={}, env_file=NO_ENV_FILE)
    assert settings.watchlist_weights.as_dict() == {"trend": 0.3, "momentum": 0.25, "volatility": 0.15,
                                                    "liquidity": 0.15, "value": 0.15}
    assert settings.sell_tax_schedule.rates == ()  # none given: the dated KRX rules apply
    given = load_settings({}, environ={"ORCHESTRATOR_SELL_TAX_SCHEDULE": "2021-01-01=0.23,2019-06-03=0.25"},
                          env_file=NO_ENV_FILE)
    assert given.sell_tax_schedule.rates == (DatedRate(date(2019, 6, 3), 0.25), DatedRate(date(2021, 1, 1), 0.23))
    assert settings.entry_rules.conditions == (Condition("trend", ">=", 0.75), Condition("momentum", ">=", 0.5),
                                               Condition("rsi_14", "<", 70.0))
    assert settings.kis_paper_tr_ids == TrIds(buy="VTTC0012U", sell="VTTC0011U", cancel="VTTC0013U",
                                              balance="VTTC8434R", fills="VTTC0081R", quote="FHKST01010100")
    assert hash(settings) == hash(load_settings({}, environ={}, env_file=NO_ENV_FILE))  # usable as a cache key


@pytest.mark.parametrize("name, given, canonical", [
    ("watchlist_weights", " trend = 1 , value=.50,momentum=1e-1", "trend=1,value=0.5,momentum=0.1"),
    ("sell_tax_schedule", "2026-01-01=0.20, 2025-01-01=0.15", "2025-01-01=0.15,2026-01-01=0.2"),
    ("entry_rules", "trend >= 0.75, rsi_14<70.", "trend>=0.75,rsi_14<70"),
    ("kis_live_tr_ids", "quote=Q0000001,fills=F0000001,balance=B0000001,cancel=C0000001,sell=S0000001,"
                        "buy=B0000002", "buy=B0000002,sell=S0000001,cancel=C0000001,balance=B0000001,"
                                        "fills=F0000001,quote=Q0000001"),
])
def test_a_structured_setting_is_shown_as_canonical_text_that_reads_back(name: str, given: str,
                                                                         canonical: str) -> None:
    value = getattr(load_settings({name: given}, environ={}, env_file=NO_ENV_FILE), name)
    assert str(value) == canonical
    assert SETTING_FIELDS[name].metadata["parser"](canonical) == value
