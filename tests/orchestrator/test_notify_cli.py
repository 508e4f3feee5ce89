"""``notify-test``: one message to each channel, and per channel delivered or why not;
and the incidents of the commands reach the channels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.common.test_notifications import BOT_TOKEN, Receiver
from tests.conftest import in_process_cli

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("Asia/Seoul"))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    return in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_notify_test_delivers_one_message_to_a_local_json_channel(cli: Any, receiver: Receiver) -> None:
    result = cli("notify-test", env={"ORCHESTRATOR_NOTIFY_URLS": f"json://{receiver.host}/hook/{BOT_TOKEN}"})
    assert result.exit_code == 0, result.output
    assert result.stdout == f"json://{receiver.host}/... (info and above): delivered\n"
    [body] = receiver.json_bodies()
    assert body["title"] == "[KRX] 알림 시험" and "시험 알림입니다" in body["message"]
    assert BOT_TOKEN not in result.output


def test_notify_test_says_why_a_channel_failed_and_exits_1(cli: Any, receiver: Receiver) -> None:
    urls = f"json://{receiver.host}/ok form://127.0.0.1:1/{BOT_TOKEN}"
    result = cli("notify-test", env={"ORCHESTRATOR_NOTIFY_URLS": urls, "ORCHESTRATOR_NOTIFY_LANGUAGE": "en"})
    assert result.exit_code == 1, result.output
    delivered, failed = result.stdout.splitlines()
    assert delivered == f"json://{receiver.host}/... (info and above): delivered"
    assert failed.startswith("form://127.0.0.1:1/... (info and above): A Connection error occurred")
    assert BOT_TOKEN not in result.output
    assert json.loads(receiver.posts[0][2])["title"] == "[KRX] Test notification"


def test_notify_test_without_a_channel_is_exit_2_in_one_line(cli: Any) -> None:
    result = cli("notify-test")
    assert result.exit_code == 2
    assert result.output.startswith("Error: no notification channel is configured; set ORCHESTRATOR_NOTIFY_URLS")
    assert len(result.output.splitlines()) == 1


@pytest.mark.parametrize("value, shown", [
    ("tgramm://x/y", "ORCHESTRATOR_NOTIFY_URLS=(hidden): tgramm://... is not a URL apprise can send to"),
    ("loud=json://h/x", "ORCHESTRATOR_NOTIFY_URLS=(hidden): 'loud' (before json://h/...) is not a level"),
])
def test_a_channel_not_accepted_is_exit_2_in_one_line(cli: Any, value: str, shown: str) -> None:
    result = cli("status", env={"ORCHESTRATOR_NOTIFY_URLS": value})
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {shown}"), result.output
    assert len(result.output.splitlines()) == 1


def test_a_halt_and_a_resume_by_command_are_sent(cli: Any, receiver: Receiver) -> None:
    env = {"ORCHESTRATOR_NOTIFY_URLS": f"json://{receiver.host}/hook"}
    assert cli("halt", "--reason", "broker maintenance", env=env).exit_code == 0
    assert cli("resume", env=env).exit_code == 0
    assert [(body["title"], body["type"]) for body in receiver.json_bodies()] == [
        ("[KRX] 매매 중단", "failure"), ("[KRX] 매매 재개", "info")]


def test_start_says_it_started_and_stopped(tmp_path: Path, calendar_cache_dir: Path, receiver: Receiver) -> None:
    from services.orchestrator.jobs import JOBS
    from tests.orchestrator.test_api import _read_until, _start, _stop

    disable = [job.disable_flag for job in JOBS]
    process = _start(["start", "--no-api", *disable], tmp_path, calendar_cache_dir,
                     ORCHESTRATOR_NOTIFY_URLS=f"json://{receiver.host}/hook", ORCHESTRATOR_NOTIFY_LANGUAGE="en")
    output = ""
    try:
        output = _read_until(process, "ready:")
    finally:
        output += _stop(process)
    assert process.returncode == 0, output
    # (on the real clock, the calendar's data may also be running out: said too)
    started, stopped = [body for body in receiver.json_bodies() if "Orchestrator" in body["title"]]
    assert (started["title"], started["type"]) == ("[KRX] Orchestrator started (paper)", "info")
    assert started["message"].startswith("The scheduler of default_user started on ")
    assert stopped["title"] == "[KRX] Orchestrator stopped (paper)" and stopped["message"].endswith("(SIGTERM).")
