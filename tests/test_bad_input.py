"""The bad-input corpus (tests/data/bad_input.txt): every malformed argument,
environment value, .env line, calendar-overrides line and provider row gets its one
line, and no traceback."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.market_calendar import KRX_TZ, CalendarError, parse_overrides
from services.data_collector.validation import validate_snapshot
from tests.conftest import in_process_cli
from tests.data_collector.test_validation import good_prices, price, snapshot

CORPUS = Path(__file__).parent / "data" / "bad_input.txt"
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=KRX_TZ)


def cases(kind: str) -> list[Any]:
    found = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("#") or not line.strip():
            continue
        case_kind, given, expected = (part.strip() for part in line.split(" | "))
        if case_kind == kind:
            found.append(pytest.param(given, expected, id=f"line {number}: {given}"))
    return found


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    return in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)


def assert_one_line(result: Any, expected: str) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert (result.exit_code, result.stderr.count("\n")) == (2, 1), result.stderr
    assert result.stderr.startswith(expected), result.stderr


@pytest.mark.parametrize("given, expected", cases("cli"))
def test_a_bad_argument(cli: Any, given: str, expected: str) -> None:
    assert_one_line(cli(*[arg.replace("~", " ") for arg in given.split(" ")]), expected)


@pytest.mark.parametrize("given, expected", cases("env"))
def test_a_bad_environment_value(cli: Any, given: str, expected: str) -> None:
    name, _, value = given.partition("=")
    assert_one_line(cli("status", env={name: value}), expected)


@pytest.mark.parametrize("given, expected", cases("env-lines"))
def test_a_line_break_in_an_environment_value(cli: Any, given: str, expected: str) -> None:
    name, _, value = given.partition("=")
    assert_one_line(cli("status", env={name: value.replace("\\n", "\n")}), expected)


@pytest.mark.parametrize("given, expected", cases("dotenv"))
def test_a_bad_env_file_line(cli: Any, given: str, expected: str) -> None:
    Path(".env").write_text(given + "\n", encoding="utf-8")
    assert_one_line(cli("status"), expected)


@pytest.mark.parametrize("given, expected", cases("overrides"))
def test_a_bad_overrides_line(given: str, expected: str) -> None:
    text = "\n".join(["# test", "# valid_through: 2026-12-31", "date,kind,open,close,source", given]) + "\n"
    with pytest.raises(CalendarError) as error:
        parse_overrides(text, "x.csv")
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)


@pytest.mark.parametrize("given, expected", cases("price"))
def test_a_bad_provider_row(given: str, expected: str) -> None:
    changes: dict[str, Any] = {}
    for pair in given.split(","):
        name, _, value = pair.partition("=")
        changes[name] = value if name == "ticker" else (math.nan if value == "nan" else int(value))
    ticker = changes.pop("ticker", "035720")
    result = validate_snapshot(snapshot(good_prices() + [price(ticker, **changes)]))
    assert result.rejected == Counter({expected: 1})
