"""Stored and configured text is inert (issue 15): shown literally, never as rich markup,
and without control characters, wherever it is displayed; log lines carry their UTC offset.

A halt reason is the stored text that reaches every display: ``halt`` echoes it, ``status``
shows it above and below the job table, ``history`` in the reason of the run it skipped,
``start`` in its banner. Control characters are shown as Python escapes (ESC as ``\\x1b``).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.logging_setup import configure_logging
from services.common.text import printable
from services.orchestrator.jobs import JOBS
from services.orchestrator.output import to_csv, to_json
from tests.conftest import in_process_cli, subprocess_env
from tests.orchestrator.test_scheduler import _read_until

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=ZoneInfo("Asia/Seoul"))  # a Friday evening

# the reason as typed, and as every display must show it (written by hand)
REASONS = [
    ("[bold red]x[/]", "[bold red]x[/]"),
    ("[/oops]", "[/oops]"),
    ("clear\x1b[2J\x1b]0;pwned\x07 now", "clear\\x1b[2J\\x1b]0;pwned\\x07 now"),
]
RAW = ("\x1b", "\x07", "\x7f", "\x9b")


def _assert_no_control(output: str) -> None:
    for char in RAW:
        assert char not in output, f"{char!r} in {output!r}"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path, database_url: str) -> Any:
    """The CLI on each kind of database, wide enough that a table cell is not wrapped."""
    invoke = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    return lambda *args: invoke(*args, env={"DATABASE_URL": database_url, "COLUMNS": "300"})


@pytest.mark.parametrize("reason,shown", REASONS, ids=["markup", "closing tag", "escapes"])
def test_a_halt_reason_is_shown_literally_by_halt_status_and_history(cli: Any, reason: str, shown: str) -> None:
    halted = cli("halt", "--reason", reason)
    assert halted.exit_code == 0, halted.output
    assert halted.stdout == f"trading halted for default_user since 2026-11-20 20:00+09:00: {shown}\n"

    status = cli("status")
    assert status.exit_code == 0, status.output
    banner = f"TRADING HALTED for default_user since 2026-11-20 20:00+09:00 (by manual): {shown}"
    assert status.stdout.splitlines().count(banner) == 2  # above and below the table
    _assert_no_control(status.stdout)

    document = cli("status", "--format", "json")
    assert document.exit_code == 0, document.output
    assert json.loads(document.stdout)["halt"]["reason"] == reason  # the data itself, unchanged
    _assert_no_control(document.stdout)

    skipped = cli("run-job", "signal_generation", "--date", "2026-11-20")
    assert skipped.exit_code == 1
    halted_by = "(halted by manual at 2026-11-20T20:00:00+09:00)"
    assert skipped.stdout == f"signal_generation 2026-11-20: skipped: trading halted: {shown} {halted_by}\n"

    history = cli("history")
    assert history.exit_code == 0, history.output
    assert f"trading halted: {shown} {halted_by}" in history.stdout
    _assert_no_control(history.stdout)
    rows = cli("history", "--format", "json")
    assert json.loads(rows.stdout)[0]["reason"] == f"trading halted: {reason} {halted_by}"
    _assert_no_control(rows.stdout)

    resumed = cli("resume")
    assert resumed.stdout == f"trading resumed for default_user (halted since 2026-11-20 20:00+09:00: {shown})\n"


def test_start_shows_its_banner_while_halted_for_a_reason_in_brackets_and_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path, database_url: str
) -> None:
    invoke = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    reason = "[/oops] [bold red]x[/] \x1b[2J\x1b]0;pwned\x07"
    assert invoke("halt", "--reason", reason, env={"DATABASE_URL": database_url}).exit_code == 0
    env = subprocess_env(PYTHONPATH=str(REPO), ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir),
                         DATABASE_URL=database_url, TZ="Asia/Seoul", COLUMNS="300")
    disable = [job.disable_flag for job in JOBS]  # nothing runs: only the banner is under test
    process = subprocess.Popen([sys.executable, "-m", "services.orchestrator.main", "start", *disable],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = _read_until(process, "protective exits still run", timeout=60)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    output = banner + rest
    assert process.returncode == 0, output
    assert "(by manual): [/oops] [bold red]x[/] \\x1b[2J\\x1b]0;pwned\\x07\n" in output
    _assert_no_control(output)
    # the process-wide TZ is Asia/Seoul: every log line carries +09:00
    stopped = [line for line in output.splitlines() if line.endswith("scheduler stopped")]
    assert len(stopped) == 1
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+09:00 INFO    "
                        r"services\.orchestrator\.scheduler: scheduler stopped", stopped[0]), stopped[0]


# --- the pieces -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,shown", [
    ("plain [b]text[/b] ü 한국", "plain [b]text[/b] ü 한국"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("a\tb\nc\rd\x00e", "a\\tb\\nc\\rd\\x00e"),
    ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
])
def test_printable_shows_each_control_character_as_its_escape(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_csv_and_json_carry_no_raw_control_characters() -> None:
    rows = [{"name": "a\x1bb\x7fc\x9bd\ne"}]
    assert to_csv(rows, ["name"]) == "name\na\\x1bb\\x7fc\\x9bd\\ne\n"
    document = to_json(rows)
    assert document == '[\n  {\n    "name": "a\\u001bb\\u007fc\\u009bd\\ne"\n  }\n]'
    assert json.loads(document) == rows


def test_a_log_line_carries_the_utc_offset_and_no_raw_escape(
    root_logging: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Seoul")
    time.tzset()
    try:
        configure_logging("INFO")
        log = logging.getLogger("services.test")
        log.warning("halted: %s", "\x1b[2Jgone\x07")
        try:
            raise ValueError("bad \x1b]0;title\x07")
        except ValueError:
            log.exception("failed\nsecond line")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    lines = capsys.readouterr().err.splitlines()
    stamp = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+09:00"
    assert re.fullmatch(stamp + r" WARNING services\.test: halted: \\x1b\[2Jgone\\x07", lines[0]), lines[0]
    assert re.fullmatch(stamp + r" ERROR   services\.test: failed\\nsecond line", lines[1]), lines[1]
    assert lines[2] == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert lines[-1] == "ValueError: bad \\x1b]0;title\\x07"
