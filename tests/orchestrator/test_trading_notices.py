"""Trading notices: the pre-open signal list, each monitoring run's fills and exits, the
daily report; written from plain values, and sent by a day replayed with --notify."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.notifications import Level
from services.orchestrator.trading_notices import Fill, Order, daily_report, fills_message, signal_list
from tests.common.test_notifications import Receiver
from tests.conftest import in_process_cli

KST = ZoneInfo("Asia/Seoul")
DAY = date(2026, 11, 18)
ENTRY = Order("089248", "모의코스닥0004", "buy", "limit", 26, 191000, "watchlist rank 6 (score 0.658)")
EXIT = Order("975595", "모의코스닥0012", "sell", "market", 77, None, "trend break: close 62800 vs cost 64810")
SOLD = Fill("975595", "모의코스닥0012", "sell", 77, 63000, 727, 9702)


def test_the_signal_list_gives_each_entry_and_exit_with_its_size() -> None:
    message = signal_list(DAY, [ENTRY, EXIT], "2026-11-17", True, "ko")
    assert (message.level, message.title) == (Level.INFO, "[KRX] 장전 매매 신호 2026-11-18 (모의투자)")
    assert message.body == (
        "진입 1건, 청산 1건 (관심종목 2026-11-17 기준)\n"
        "매수 089248 모의코스닥0004 26주 지정가 191,000원\n  └ watchlist rank 6 (score 0.658)\n"
        "매도 975595 모의코스닥0012 77주 시장가\n  └ trend break: close 62800 vs cost 64810")
    english = signal_list(DAY, [], None, False, "en")
    assert (english.title, english.body) == ("[KRX] Pre-open signals 2026-11-18 (LIVE)",
                                             "No entries and no exits today.")


def test_a_monitoring_run_says_its_fills_with_fees_and_tax_and_its_exits() -> None:
    at = datetime(2026, 11, 18, 2, 15, tzinfo=ZoneInfo("UTC"))  # 11:15 in Seoul
    message = fills_message(at, [SOLD], [EXIT], True, "ko", KST)
    assert message is not None
    assert message.title == "[KRX] 체결 1건 2026-11-18 11:15 (모의투자)"
    assert message.body == (
        "매도 975595 모의코스닥0012 77주 × 63,000원 = 4,851,000원 (수수료 727원, 세금 9,702원)\n"
        "손절·익절 주문 1건 (다음 점검 때 체결):\n"
        "매도 975595 모의코스닥0012 77주 시장가\n  └ trend break: close 62800 vs cost 64810")
    assert fills_message(at, [], [], True, "ko", KST) is None  # a quiet tick says nothing


def test_the_daily_report_gives_the_account_the_day_and_the_next_session() -> None:
    summary = {"equity": 98740192, "day_pnl": -710418, "day_return": -0.007143, "total_pnl": -1259808,
               "total_return": -0.012598, "cash": 54351522, "market_value": 44388670, "exposure": 0.44955}
    positions = [{"ticker": "089248", "name": "모의코스닥0004", "quantity": 26, "market_value": 4823000,
                  "unrealised_return": -0.028941}]
    exam_day = {"date": "2026-11-19", "open": "10:00", "close": "16:30", "status": "special"}
    message = daily_report(DAY, summary, positions, [SOLD], ["450377 모의코스닥0022"], [], exam_day, True, "ko")
    assert message.title == "[KRX] 일일 보고 2026-11-18 (모의투자)"
    assert message.body.splitlines() == [
        "평가금액 98,740,192원, 당일 -710,418원 (-0.71%), 누적 -1,259,808원 (-1.26%)",
        "현금 54,351,522원, 주식 44,388,670원 (비중 45.0%)",
        "보유 1종목:",
        "  089248 모의코스닥0004 26주 4,823,000원 (-2.89%)",
        "오늘 체결 1건, 수수료 727원, 세금 9,702원",
        "관심종목 편입: 450377 모의코스닥0022 / 편출: -",
        "다음 거래일 2026-11-19 (목) 10:00-16:30 (특별 세션)"]


# --- a day replayed with --notify -------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path, receiver: Receiver,
            *flags: str) -> Any:
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, datetime(2026, 11, 21, 10, 0, tzinfo=KST))
    env = {"ORCHESTRATOR_SIMULATED_UNIVERSE": "30", "ORCHESTRATOR_BOOTSTRAP_SESSIONS": "130",
           "ORCHESTRATOR_NOTIFY_URLS": f"json://{receiver.host}/hook"}
    result = cli("simulate", "--start", "2026-11-18", "--end", "2026-11-18", *flags, env=env)
    assert result.exit_code == 0, result.output
    return result


def test_a_day_replayed_with_notify_sends_exactly_the_days_messages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path, receiver: Receiver) -> None:
    _replay(tmp_path, monkeypatch, calendar_cache_dir, receiver, "--notify")
    database = sqlite3.connect(tmp_path / "data" / "simulation.db")
    [(fills,)] = database.execute("SELECT count(*) FROM fills WHERE trade_date = '2026-11-18'").fetchall()
    monitoring_with_fills = database.execute(
        "SELECT scheduled_for FROM job_runs WHERE job_name = 'position_monitoring' AND trading_date = '2026-11-18' "
        "AND summary LIKE '%\"fills\": %' AND summary NOT LIKE '%\"fills\": 0,%'").fetchall()
    [(orders,)] = database.execute("SELECT count(*) FROM orders WHERE trading_date = '2026-11-18'").fetchall()
    database.close()
    assert (fills, len(monitoring_with_fills), orders) == (7, 1, 8)  # 8 limit buys, 7 filled at the open
    titles = [body["title"] for body in receiver.json_bodies()]
    assert titles == ["[KRX] 장전 매매 신호 2026-11-18 (모의투자)", "[KRX] 체결 7건 2026-11-18 09:00 (모의투자)",
                      "[KRX] 일일 보고 2026-11-18 (모의투자)"]
    signals, filled, report = (body["message"] for body in receiver.json_bodies())
    assert signals.startswith("진입 8건, 청산 0건 (관심종목 2026-11-17 기준)")
    assert len(filled.splitlines()) == 7
    assert report.endswith("다음 거래일 2026-11-19 (목) 10:00-16:30 (특별 세션)")


def test_a_replay_sends_nothing_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            calendar_cache_dir: Path, receiver: Receiver) -> None:
    _replay(tmp_path, monkeypatch, calendar_cache_dir, receiver)
    assert receiver.posts == []


def test_a_scheduled_monitoring_run_on_a_running_clock_tells_its_fills(
        tmp_path: Path, calendar_cache_dir: Path, receiver: Receiver) -> None:
    """Live, a run starts a little after its fire while the paper broker dates its fills
    at the fire: the notice counts what the run added, not a time window."""
    from services.common import notifications
    from services.common.clock import FixedClock
    from services.common.notifications import Channel
    from services.orchestrator.replay import simulate
    from services.orchestrator.runtime import Runtime
    from tests.conftest import make_settings

    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'paper.db'}", cache_dir=str(calendar_cache_dir),
                             simulated_universe="30", bootstrap_sessions="130")
    simulate(settings, date(2026, 11, 17), date(2026, 11, 17)).runtime.close()  # history and a watchlist
    clock = FixedClock(datetime(2026, 11, 18, 8, 45, 20, tzinfo=KST))
    runtime = Runtime.create(settings, clock=clock)
    try:
        runner = runtime.runner()
        with notifications.install((Channel(f"json://{receiver.host}/hook"),), tz=KST):
            runner.run_fire("signal_generation", datetime(2026, 11, 18, 8, 45, tzinfo=KST))
            clock.set(datetime(2026, 11, 18, 9, 0, 40, tzinfo=KST))  # 40 s after the fire
            runner.run_fire("position_monitoring", datetime(2026, 11, 18, 9, 0, tzinfo=KST))
    finally:
        runtime.close()
    database = sqlite3.connect(tmp_path / "paper.db")
    [(fills,)] = database.execute("SELECT count(*) FROM fills WHERE trade_date = '2026-11-18'").fetchall()
    database.close()
    titles = [body["title"] for body in receiver.json_bodies()]
    assert fills > 0 and titles == ["[KRX] 장전 매매 신호 2026-11-18 (모의투자)",
                                    f"[KRX] 체결 {fills}건 2026-11-18 09:00 (모의투자)"]
