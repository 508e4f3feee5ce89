"""Alerts: failed and missed runs and halts are logged at ERROR, a calendar running out
at WARNING, and each is POSTed to the configured webhook; a failing webhook never fails a job."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common import notifications
from services.common.alerts import Alert
from services.common.clock import FixedClock
from services.common.job_api import Outcome
from services.common.notifications import Channel, Level
from services.risk_manager.halts import halt_trading
from tests.orchestrator.test_runs import ledger_rows, make_runner

KST = ZoneInfo("Asia/Seoul")


class Webhook:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def sent(url: str, action: Any) -> None:
    """Run ``action`` with alerts going to the webhook ``url`` (their times in Seoul's
    zone; retries 10 ms apart); return once they are sent."""
    channel = Channel(url, Level.WARNING, webhook=True)
    with notifications.install((channel,), tz=KST, timeout=2.0, backoff=0.01):
        action()


def test_a_failed_run_is_posted_with_the_documented_body(session_factory, krx_calendar, webhook):
    clock = FixedClock(datetime(2026, 11, 20, 16, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="explode")
    sent(webhook.url, lambda: runner.run_fire("data_collection", datetime(2026, 11, 20, 16, 0, tzinfo=KST)))
    [body] = [b for b in webhook.bodies if b["event"] == "run_failed"]
    assert tuple(body) == ("text", "event", "severity", "summary", "host", "at", "details")  # as the README documents
    assert body["text"] == "[krx-orchestrator] data_collection 2026-11-20 failed: RuntimeError: provider answered 503"
    assert body["severity"] == "error"
    details = body["details"]
    assert (details["job"], details["trading_date"], details["scheduled_for"], details["error"]) == (
        "data_collection", "2026-11-20", "2026-11-20T16:00:00+09:00", "RuntimeError: provider answered 503")


def test_a_missed_fire_is_logged_at_error_and_posted(session_factory, krx_calendar, webhook, caplog):
    clock = FixedClock(datetime(2026, 11, 20, 9, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, signal_generation="succeed")
    with caplog.at_level(logging.ERROR):
        sent(webhook.url, lambda: runner.run_fire("signal_generation", datetime(2026, 11, 20, 8, 45, tzinfo=KST)))
    [body] = [b for b in webhook.bodies if b["event"] == "run_missed"]
    assert body["summary"] == ("signal_generation 2026-11-20: the fire at 2026-11-20T08:45:00+09:00 was missed: "
                               "too late: 1 s past the deadline 2026-11-20T09:00:00+09:00")
    assert any(r.levelno == logging.ERROR and r.getMessage() == body["summary"] for r in caplog.records)


def test_a_halt_is_posted(session_factory, webhook):
    at = datetime(2026, 11, 20, 10, 0, tzinfo=KST)

    def halt() -> None:
        with session_factory.begin() as session:
            halt_trading(session.connection(), "trader", "drawdown 19.3% >= 15%", by="risk_checks", at=at)

    sent(webhook.url, halt)
    [body] = webhook.bodies
    assert (body["event"], body["summary"]) == (
        "trading_halted", "TRADING HALTED for trader by risk_checks: drawdown 19.3% >= 15%")
    assert body["details"]["halted_at"] == "2026-11-20T10:00:00+09:00"


def test_a_halt_rolled_back_is_not_posted(session_factory, webhook):
    at = datetime(2026, 11, 20, 10, 0, tzinfo=KST)

    def halt_then_fail() -> None:
        try:
            with session_factory.begin() as session:
                halt_trading(session.connection(), "trader", "drawdown 19.3% >= 15%", by="risk_checks", at=at)
                raise RuntimeError("the job failed after the risk check")
        except RuntimeError:
            pass

    sent(webhook.url, halt_then_fail)
    assert webhook.bodies == []


def test_a_calendar_about_to_run_out_is_posted_once_a_day(session_factory, krx_calendar, webhook):
    # the reviewed data ends 2026-12-31: 30 days before, every day says so once
    clock = FixedClock(datetime(2026, 12, 14, 16, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")

    def two_runs() -> None:
        runner.run_fire("data_collection", datetime(2026, 12, 14, 16, 0, tzinfo=KST))
        runner.run_now("data_collection", datetime(2026, 12, 14).date())

    sent(webhook.url, two_runs)
    [body] = [b for b in webhook.bodies if b["event"] == "calendar_ending"]
    assert body["severity"] == "warning"
    assert body["details"] == {"valid_through": "2026-12-31", "today": "2026-12-14"}
    assert "update services/common/krx_calendar_overrides.csv" in body["text"]


def test_a_calendar_far_from_its_end_raises_nothing(session_factory, krx_calendar, webhook):
    clock = FixedClock(datetime(2026, 10, 20, 16, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")
    sent(webhook.url, lambda: runner.run_fire("data_collection", datetime(2026, 10, 20, 16, 0, tzinfo=KST)))
    assert webhook.bodies == []


@pytest.mark.parametrize("status", [500, 404])
def test_a_webhook_answering_an_error_fails_nothing(session_factory, krx_calendar, caplog, status):
    hook = Webhook(status)
    clock = FixedClock(datetime(2026, 10, 20, 16, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="explode",
                         indicator_calculation="succeed")
    try:
        with caplog.at_level(logging.WARNING):
            sent(hook.url, lambda: runner.run_fire("data_collection", datetime(2026, 10, 20, 16, 0, tzinfo=KST)))
        clock.set(datetime(2026, 10, 20, 17, 0, 1, tzinfo=KST))
        ok = runner.run_fire("indicator_calculation", datetime(2026, 10, 20, 17, 0, tzinfo=KST))
    finally:
        hook.close()
    assert [r.outcome for r in ledger_rows(session_factory)] == ["failed", "success"]
    assert ok is not None and ok.outcome is Outcome.SUCCESS
    [warning] = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert warning.startswith(f"notification to http://127.0.0.1:{hook.server.server_address[1]}/... not "
                              f"delivered after 3 attempts (HTTP {status}")
    assert "secret" not in warning  # the webhook's path is its credential
    assert len(hook.bodies) == 3  # tried three times


def test_an_unreachable_webhook_fails_nothing(session_factory, krx_calendar, caplog):
    hook = Webhook()
    url = hook.url
    hook.close()  # nothing listens there any more
    clock = FixedClock(datetime(2026, 10, 20, 16, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="explode")
    with caplog.at_level(logging.WARNING):
        sent(url, lambda: runner.run_fire("data_collection", datetime(2026, 10, 20, 16, 0, tzinfo=KST)))
    assert [r.outcome for r in ledger_rows(session_factory)] == ["failed"]
    [warning] = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    host = url.split("/hooks/")[0]  # the path, the webhook's credential, is never logged
    assert warning == (f"notification to {host}/... not delivered after 3 attempts (ConnectError: [Errno 111] "
                       "Connection refused): [KRX] 작업 실패 (모의투자)")
    assert "secret" not in " ".join(r.getMessage() for r in caplog.records)


def test_no_channel_installs_nothing() -> None:
    with notifications.install(()) as notifier:
        assert notifier is None and notifications.current() is None


def test_an_alert_names_a_known_event() -> None:
    with pytest.raises(ValueError, match="expected one of run_failed, run_missed, trading_halted, calendar_ending, "
                                         "trading_resumed, instance_started, instance_stopped"):
        Alert("disk_full", "nope")


def test_a_calendar_about_to_run_out_is_a_warning_not_an_error(session_factory, krx_calendar, caplog):
    clock = FixedClock(datetime(2026, 12, 14, 16, 0, 1, tzinfo=KST))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")
    with caplog.at_level(logging.WARNING):
        runner.run_fire("data_collection", datetime(2026, 12, 14, 16, 0, tzinfo=KST))
    [record] = [r for r in caplog.records if "reviewed only through 2026-12-31" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_an_alerts_times_are_in_the_zone_it_was_installed_with() -> None:
    halted_at = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    alert = Alert("trading_halted", "halted", {"halted_at": halted_at, "user_id": "u"})
    body = alert.body("host", datetime(2026, 11, 20, 1, 0, 5, tzinfo=UTC), ZoneInfo("America/New_York"))
    assert body["at"] == "2026-11-19T20:00:05-05:00"
    assert body["details"] == {"halted_at": "2026-11-19T20:00:00-05:00", "user_id": "u"}
