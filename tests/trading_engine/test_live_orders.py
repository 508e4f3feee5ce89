"""Live orders are crash safe (live_orders.py): recorded as intents in the job's
transaction, then claimed, sent and answered each in its own transaction; after a
crash, the next round finds the order in KIS's list of the day or sends it, never
twice. Against the local fake of KIS (fake_kis_server.py), on SQLite and PostgreSQL.

Expected values are written by hand: the fake numbers the orders it takes from
91252-0000012345 up; its ``ord_tmd`` is the time of the test's clock.
"""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory
from services.common.job_api import Outcome
from services.risk_manager.halts import halt_trading
from services.trading_engine import engine, live_orders, monitor, risk_check
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.kis import KisBroker, KisClient, KisConfig
from services.trading_engine.live_broker import LiveBroker
from services.trading_engine.live_orders import (
    ORDER_TIME_SLACK,
    RESEND_AFTER,
    Intent,
    SendReport,
    matching_order,
    send_pending,
)
from services.trading_engine.models import FillRow, OrderRow, SignalRow
from services.trading_engine.order_book import submit
from services.trading_engine.orders import Order, OrderRequest, OrderStatus, OrderType, Side
from tests.conftest import subprocess_env
from tests.trading_engine import live_crash_worker as worker
from tests.trading_engine.fake_kis_server import ORDER_PATH, FakeKis, serve
from tests.trading_engine.test_kis import FakeTime

SEOUL = worker.SEOUL
TODAY, YESTERDAY = worker.DAY, worker.PREVIOUS
START = worker.START  # 08:45 on 2026-03-05
USER = "u1"
ROOT = Path(__file__).resolve().parents[2]
SELL = OrderRequest("live:u1:2026-03-05:005930:exit", TODAY, "005930", Side.SELL, 10, OrderType.MARKET, None,
                    "dropped from the watchlist")
BUY = OrderRequest("live:u1:2026-03-05:035720:entry", TODAY, "035720", Side.BUY, 7, OrderType.LIMIT, 41_250,
                   "trend 1.00")
# the paper host's tr_ids: VTTC0011U sells, VTTC0012U buys
SELL_POST, BUY_POST = ("005930", "VTTC0011U"), ("035720", "VTTC0012U")


class Crash(BaseException):
    """The process dies here (nothing after it runs, no handler catches it)."""


def dies(*args: Any, **kwargs: Any) -> None:
    raise Crash


def fast_settings(kis: FakeKis, tmp_path: Path) -> Any:
    """Live settings for jobs run in this process (requests barely spaced)."""
    return worker.live_settings(kis.url, tmp_path / "kis", kis_requests_per_second="1000")


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(START)


def new_fake(clock: Any) -> FakeKis:
    """The fake KIS account, without the orders of its recorded day."""
    state = FakeKis(app_key=worker.APP_KEY, app_secret=worker.APP_SECRET, cano="12345678", acnt_prdt_cd="01",
                    clock=clock)
    state.orders = []
    return state


@pytest.fixture
def kis(clock: FakeTime) -> Iterator[FakeKis]:
    with serve(new_fake(clock.epoch)) as state:
        yield state
    assert state.problems == []


@pytest.fixture
def new_broker(kis: FakeKis, clock: FakeTime, tmp_path: Path) -> Any:
    """A KisBroker as a new process makes it (its memory of orders is its own); all
    share one token through the token file."""
    def build() -> KisBroker:
        settings = worker.live_settings(kis.url, tmp_path / "kis")
        config = KisConfig.from_settings(settings)
        client = KisClient(config, cache_dir=tmp_path / "kis", clock=clock, monotonic=clock.monotonic,
                           sleep=clock.sleep)
        return KisBroker(config, client, FeeSchedule.from_settings(settings), clock=clock)
    return build


class OpenGate:
    """A risk gate that lets everything through and notes what it was told."""

    def __init__(self) -> None:
        self.placed_orders: list[Order] = []

    def refusal(self, request: OrderRequest) -> str | None:
        return None

    def placed(self, order: Order) -> None:
        self.placed_orders.append(order)


class DiesAfterSending:
    """A broker whose process dies once KIS has taken the order, before the answer
    is recorded."""

    def __init__(self, broker: KisBroker) -> None:
        self.broker, self.name, self.dry_run = broker, broker.name, False

    def place_order(self, request: OrderRequest) -> Order:
        self.broker.place_order(request)
        raise Crash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.broker, name)


def record(session_factory: Any, broker: Any, *requests: OrderRequest, gate: Any = None) -> list[Order]:
    """The job's transaction: the orders submitted, then committed."""
    gate = gate or OpenGate()
    with session_factory.begin() as session:
        live = LiveBroker(broker, session.connection(), user_id=USER, clock=FixedClock(START))
        return [submit(live, session.connection(), request, START, gate) for request in requests]


def orders(session_factory: Any) -> dict[str, tuple[Any, ...]]:
    """client order id -> (status, broker order id, sent, reason)"""
    with session_factory() as session:
        rows = session.execute(select(OrderRow.client_order_id, OrderRow.status, OrderRow.broker_order_id,
                                      OrderRow.sent_at, OrderRow.reason)).all()
    return {row[0]: (row[1], row[2], row[3] is not None, row[4]) for row in rows}


def posts(kis: FakeKis) -> Counter[tuple[str, str]]:
    """Order POSTs KIS received whole, by (ticker, tr_id)."""
    return Counter((r.body["PDNO"], r.tr_id) for r in kis.order_posts() if isinstance(r.body, dict))


def kis_orders(kis: FakeKis) -> list[tuple[str, str, str, str]]:
    """The orders KIS holds: (ticker, sll_buy_dvsn_cd, quantity, price)."""
    return sorted((row["pdno"], row["sll_buy_dvsn_cd"], row["ord_qty"], row["ord_unpr"]) for row in kis.orders)


# --- recording and sending -------------------------------------------------------------------


def test_submit_records_a_live_order_as_an_intent_and_sends_nothing(
        kis: FakeKis, new_broker: Any, session_factory: Any) -> None:
    gate = OpenGate()
    sell, buy = record(session_factory, new_broker(), SELL, BUY, gate=gate)
    assert (sell.status, buy.status) == (OrderStatus.NEW, OrderStatus.NEW)
    assert [(o.ticker, o.status) for o in gate.placed_orders] == [("005930", OrderStatus.NEW),
                                                                   ("035720", OrderStatus.NEW)]
    assert orders(session_factory) == {SELL.client_order_id: ("new", None, False, "dropped from the watchlist"),
                                       BUY.client_order_id: ("new", None, False, "trend 1.00")}
    assert kis.order_posts() == []
    again = record(session_factory, new_broker(), SELL)  # a known client order id: the recorded order
    assert again == [sell] and len(orders(session_factory)) == 2


def test_send_pending_sends_each_intent_once_and_records_kis_order_number(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    broker = new_broker()
    record(session_factory, broker, SELL, BUY)
    assert send_pending(broker, session_factory, USER, clock) == SendReport(sent=2)
    assert orders(session_factory) == {
        SELL.client_order_id: ("new", "91252-0000012345", True, "dropped from the watchlist"),
        BUY.client_order_id: ("new", "91252-0000012346", True, "trend 1.00")}
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport()  # nothing left
    assert posts(kis) == {SELL_POST: 1, BUY_POST: 1}


def test_a_kis_refusal_is_recorded_rejected_with_its_reason(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    broker = new_broker()
    record(session_factory, broker, BUY)
    kis.script.append(("refuse", ORDER_PATH))
    assert send_pending(broker, session_factory, USER, clock) == SendReport(rejected=1)
    assert orders(session_factory)[BUY.client_order_id] == ("rejected", None, True,
                                                           "주문가능금액을 초과 했습니다 (APBK0952)")
    assert send_pending(broker, session_factory, USER, clock) == SendReport()
    assert kis.orders == []


def test_pending_buys_are_rejected_while_buys_are_refused_and_sells_still_go(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    broker = new_broker()
    record(session_factory, broker, SELL, BUY)
    report = send_pending(broker, session_factory, USER, clock, buys_refused="trading halted: by hand")
    assert report == SendReport(sent=1, rejected=1)
    assert orders(session_factory)[BUY.client_order_id] == ("rejected", None, False, "risk: trading halted: by hand")
    assert posts(kis) == {SELL_POST: 1}


# --- crashes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rerun_after", [timedelta(0), RESEND_AFTER + timedelta(minutes=1)],
                         ids=["at-once", "after-the-resend-margin"])
def test_a_crash_after_kis_took_an_order_is_linked_by_the_rerun_and_never_sent_twice(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime, rerun_after: timedelta) -> None:
    record(session_factory, new_broker(), SELL, BUY)
    with pytest.raises(Crash):
        send_pending(DiesAfterSending(new_broker()), session_factory, USER, clock)
    assert orders(session_factory)[SELL.client_order_id][:3] == ("new", None, True)  # in doubt
    clock.advance(rerun_after.total_seconds())
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport(sent=1, linked=1)
    assert {cid: row[:3] for cid, row in orders(session_factory).items()} == {
        SELL.client_order_id: ("new", "91252-0000012345", True),
        BUY.client_order_id: ("new", "91252-0000012346", True)}
    assert posts(kis) == {SELL_POST: 1, BUY_POST: 1}


def signal_run_killed_before_sending(kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A live signal_generation that dies once its intents are committed, before any
    is sent; returns its context, for the re-run."""
    worker.seed_market(session_factory, [USER])
    ctx = worker.live_context(session_factory, krx_calendar, fast_settings(kis, tmp_path), clock, USER)
    monkeypatch.setattr(live_orders, "send_pending", dies)
    with pytest.raises(Crash):
        engine.run(ctx)
    monkeypatch.undo()
    return ctx


def test_a_crash_after_the_intents_were_committed_but_before_sending_is_sent_once_by_the_rerun(
        kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = signal_run_killed_before_sending(kis, session_factory, clock, krx_calendar, tmp_path, monkeypatch)
    assert kis.order_posts() == [] and len(orders(session_factory)) == 3
    clock.advance(60)
    result = engine.run(ctx)  # the run ledger's attempt 2
    assert result.status is Outcome.SUCCESS and result.summary["already_generated"] == 1
    assert {key: result.summary[key] for key in ("sent", "linked", "send_rejected", "in_doubt", "unsent")} == {
        "sent": 3, "linked": 0, "send_rejected": 0, "in_doubt": 0, "unsent": 0}
    assert posts(kis) == {SELL_POST: 1, ("035720", "VTTC0011U"): 1, ("035420", "VTTC0012U"): 1}
    assert sorted(row[:3] for row in orders(session_factory).values()) == [
        ("new", "91252-0000012345", True), ("new", "91252-0000012346", True), ("new", "91252-0000012347", True)]


def test_a_rerun_while_halted_sends_the_exits_a_crashed_run_left_and_rejects_its_entry(
        kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = signal_run_killed_before_sending(kis, session_factory, clock, krx_calendar, tmp_path, monkeypatch)
    with session_factory.begin() as session:
        halt_trading(session.connection(), USER, "broker maintenance", by="manual", at=clock.now())
    result = engine.run(ctx)
    assert result.status is Outcome.SKIPPED and (result.reason or "").startswith("trading halted: broker maintenance")
    assert (result.summary["sent"], result.summary["send_rejected"]) == (2, 1)
    assert posts(kis) == {SELL_POST: 1, ("035720", "VTTC0011U"): 1}  # the exits only
    entry = orders(session_factory)["live:u1:2026-03-05:035420:entry"]
    assert entry[0] == "rejected" and entry[3].startswith("risk: trading halted: broker maintenance")


def test_the_next_monitoring_tick_sends_what_a_crashed_signal_run_left(
        kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kis.prices.update({"000660": "181000", "035420": "20100"})
    ctx = signal_run_killed_before_sending(kis, session_factory, clock, krx_calendar, tmp_path, monkeypatch)
    clock.advance(15 * 60)  # 09:00, the first tick
    tick = monitor.run(worker.live_context(session_factory, krx_calendar, ctx.settings, clock, USER,
                                           job="position_monitoring", when=clock.now()))
    assert tick.status is Outcome.SUCCESS and tick.summary["dry_run"] is False
    assert (tick.summary["sent"], tick.summary["in_doubt"], tick.summary["exits"]) == (3, 0, 0)
    assert posts(kis) == {SELL_POST: 1, ("035720", "VTTC0011U"): 1, ("035420", "VTTC0012U"): 1}


def test_every_live_run_closes_the_kis_connections_it_opened(
        kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[httpx.Client] = []
    real_init = httpx.Client.__init__

    def noting(client: httpx.Client, *args: Any, **kwargs: Any) -> None:
        real_init(client, *args, **kwargs)
        opened.append(client)

    monkeypatch.setattr(httpx.Client, "__init__", noting)
    kis.prices.update({"000660": "181000", "035420": "20100"})
    worker.seed_market(session_factory, [USER])
    settings = fast_settings(kis, tmp_path)
    signals = engine.run(worker.live_context(session_factory, krx_calendar, settings, clock, USER))
    clock.advance(15 * 60)  # 09:00, the first tick
    tick = monitor.run(worker.live_context(session_factory, krx_calendar, settings, clock, USER,
                                           job="position_monitoring", when=clock.now()))
    check = risk_check.run(worker.live_context(session_factory, krx_calendar, settings, clock, USER,
                                               job="risk_checks", when=clock.now()))
    assert [signals.status, tick.status, check.status] == [Outcome.SUCCESS] * 3
    assert signals.summary["sent"] == 3 and kis.api_requests()  # each run spoke to KIS
    assert len(opened) == 3 and all(client.is_closed for client in opened)


def test_after_the_daily_loss_limit_the_next_tick_sends_the_left_sells_and_cancels_the_left_buy(
        kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from services.risk_manager.models import RiskBreach

    kis.prices.update({"000660": "181000", "035420": "20100"})
    ctx = signal_run_killed_before_sending(kis, session_factory, clock, krx_calendar, tmp_path, monkeypatch)
    clock.advance(15 * 60)  # 09:00, the first tick; the loss limit was reached at 08:59
    with session_factory.begin() as session:
        session.execute(insert(RiskBreach).values(
            user_id=USER, dry_run=False, trading_date=TODAY, limit_name="max_daily_loss_pct", subject="", value=3.2,
            threshold=3.0, action="block_entries", checked_at=clock.now() - timedelta(minutes=1),
            checked_by="risk_checks", metrics={}))
    tick = monitor.run(worker.live_context(session_factory, krx_calendar, ctx.settings, clock, USER,
                                           job="position_monitoring", when=clock.now()))
    # the unsent buy is an open order of the account: the tick's gate cancels it before it goes out
    assert (tick.summary["sent"], tick.summary["cancelled"], tick.summary["exits"]) == (2, 1, 0)
    assert posts(kis) == {SELL_POST: 1, ("035720", "VTTC0011U"): 1}  # the two exits; the entry never went out
    [entry] = [row for cid, row in orders(session_factory).items() if cid.endswith(":entry")]
    assert entry[0] == "cancelled" and "cancelled: new entries blocked for the session" in entry[3]


def test_a_stop_loss_is_not_placed_for_a_holding_whose_exit_is_recorded_but_not_at_kis(
        kis: FakeKis, session_factory: Any, clock: FakeTime, krx_calendar: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = signal_run_killed_before_sending(kis, session_factory, clock, krx_calendar, tmp_path, monkeypatch)
    clock.advance(15 * 60)  # 09:00: KIS refuses the first send; 035720 (bought at 41,240) trades 8% lower
    kis.script.append(("http500", ORDER_PATH))
    kis.prices.update({"000660": "181000", "035420": "20100", "035720": "37950"})
    tick = monitor.run(worker.live_context(session_factory, krx_calendar, ctx.settings, clock, USER,
                                           job="position_monitoring", when=clock.now()))
    assert tick.summary["exits"] == 0  # its pre-open exit, in doubt or unsent, is selling it already
    assert not [cid for cid in orders(session_factory) if cid.endswith(":intraday-exit")]


def test_a_lost_answer_leaves_the_order_in_doubt_and_the_next_round_links_it(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime,
        caplog: pytest.LogCaptureFixture) -> None:
    broker = new_broker()
    record(session_factory, broker, SELL, BUY)
    kis.script.append(("take_then_drop", ORDER_PATH))
    with caplog.at_level(logging.ERROR, logger="services.trading_engine.live_orders"):
        assert send_pending(broker, session_factory, USER, clock) == SendReport(in_doubt=1, unsent=1)
    assert "order live:u1:2026-03-05:005930:exit sent, but its outcome is unknown" in caplog.text
    assert orders(session_factory)[SELL.client_order_id][:3] == ("new", None, True)
    assert orders(session_factory)[BUY.client_order_id][:3] == ("new", None, False)  # left for the next round
    clock.advance(60)
    assert send_pending(broker, session_factory, USER, clock) == SendReport(sent=1, linked=1)
    assert orders(session_factory)[SELL.client_order_id][:2] == ("new", "91252-0000012345")
    assert posts(kis) == {SELL_POST: 1, BUY_POST: 1}


def test_an_order_kis_never_took_is_sent_again_only_after_the_resend_margin(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    broker = new_broker()
    record(session_factory, broker, SELL)
    kis.script.append(("http500", ORDER_PATH))  # KIS answers 500 and takes nothing
    assert send_pending(broker, session_factory, USER, clock) == SendReport(in_doubt=1)
    clock.advance(RESEND_AFTER.total_seconds() - 5)
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport(in_doubt=1)
    assert posts(kis) == {SELL_POST: 1}
    clock.advance(10)
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport(sent=1)
    assert posts(kis) == {SELL_POST: 2}
    assert kis_orders(kis) == [("005930", "01", "10", "0")]  # one order at KIS
    assert orders(session_factory)[SELL.client_order_id][:2] == ("new", "91252-0000012345")


def test_a_claimed_intent_whose_process_died_before_sending_waits_for_the_margin_then_goes_once(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    class DiesBeforeSending(DiesAfterSending):
        def place_order(self, request: OrderRequest) -> Order:
            raise Crash

    record(session_factory, new_broker(), SELL)
    with pytest.raises(Crash):
        send_pending(DiesBeforeSending(new_broker()), session_factory, USER, clock)
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport(in_doubt=1)
    clock.advance(RESEND_AFTER.total_seconds() + 1)
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport(sent=1)
    assert posts(kis) == {SELL_POST: 1}


# --- two processes ----------------------------------------------------------------------------------


def test_a_process_that_stalls_mid_round_cannot_send_what_another_took_over(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    reports: list[SendReport] = []

    class Stalls(DiesAfterSending):
        """Process A: stalls on its first send while process B runs a whole round."""

        def place_order(self, request: OrderRequest) -> Order:
            if not reports:
                reports.append(send_pending(new_broker(), session_factory, USER, clock))
            return self.broker.place_order(request)

    record(session_factory, new_broker(), SELL, BUY)
    first = send_pending(Stalls(new_broker()), session_factory, USER, clock)
    # B found the sell claimed by A and not yet at KIS (in doubt), and sent the buy;
    # A then sent the sell, and its claim of the buy found it taken
    assert reports == [SendReport(sent=1, in_doubt=1)] and first == SendReport(sent=1)
    assert posts(kis) == {SELL_POST: 1, BUY_POST: 1}
    assert orders(session_factory)[SELL.client_order_id][:2] == ("new", "91252-0000012346")
    assert orders(session_factory)[BUY.client_order_id][:2] == ("new", "91252-0000012345")


def test_an_answer_that_comes_back_after_another_process_linked_its_order_is_no_second_order(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime,
        caplog: pytest.LogCaptureFixture) -> None:
    reports: list[SendReport] = []

    class SlowAnswer(DiesAfterSending):
        """Process A: KIS takes its order, and B links it before A has the answer."""

        def place_order(self, request: OrderRequest) -> Order:
            order = self.broker.place_order(request)
            reports.append(send_pending(new_broker(), session_factory, USER, clock))
            return order

    record(session_factory, new_broker(), SELL)
    with caplog.at_level(logging.ERROR, logger="services.trading_engine.live_orders"):
        assert send_pending(SlowAnswer(new_broker()), session_factory, USER, clock) == SendReport(sent=1)
    assert reports == [SendReport(linked=1)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # no "second order"
    assert orders(session_factory)[SELL.client_order_id][:2] == ("new", "91252-0000012345")
    assert posts(kis) == {SELL_POST: 1}


def test_senders_racing_in_threads_send_each_intent_once(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    third = OrderRequest("live:u1:2026-03-05:035420:entry", TODAY, "035420", Side.BUY, 15, OrderType.LIMIT, 20_200)
    record(session_factory, new_broker(), SELL, BUY, third)
    brokers = [new_broker() for _ in range(4)]
    brokers[0].cash()  # the token, issued once before the race
    start = threading.Barrier(len(brokers))
    reports: list[SendReport] = []

    def sender(broker: KisBroker) -> None:
        start.wait()
        reports.append(send_pending(broker, session_factory, USER, clock))

    threads = [threading.Thread(target=sender, args=(broker,)) for broker in brokers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(report.sent for report in reports) == 3 and len(reports) == 4
    assert posts(kis) == {SELL_POST: 1, BUY_POST: 1, ("035420", "VTTC0012U"): 1}
    assert all(row[0] == "new" and row[1] for row in orders(session_factory).values())
    assert sorted(row[1] for row in orders(session_factory).values()) == [
        "91252-0000012345", "91252-0000012346", "91252-0000012347"]


# --- past sessions and matching ---------------------------------------------------------------------


def kis_row(day: str, odno: str, ticker: str, side: str, quantity: int, price: int, hhmmss: str,
            filled: int = 0, average: int = 0) -> dict[str, str]:
    """One order in KIS's daily list (inquire-daily-ccld output1)."""
    return {"ord_dt": day, "ord_gno_brno": "91252", "odno": odno, "orgn_odno": "", "ord_dvsn_name": "",
            "sll_buy_dvsn_cd": side, "sll_buy_dvsn_cd_name": "", "pdno": ticker, "prdt_name": "",
            "ord_qty": str(quantity), "ord_unpr": str(price), "ord_tmd": hhmmss, "tot_ccld_qty": str(filled),
            "avg_prvs": str(average), "cncl_yn": "", "tot_ccld_amt": str(filled * average), "loan_dt": "",
            "ord_dvsn_cd": "01" if price == 0 else "00", "cnc_cfrm_qty": "0", "rmn_qty": str(quantity - filled),
            "rjct_qty": "0", "ccld_cndt_name": "없음", "excg_id_dvsn_cd": "KRX"}


def test_intents_of_a_past_session_are_linked_or_rejected_and_never_sent(
        kis: FakeKis, new_broker: Any, session_factory: Any, clock: FakeTime) -> None:
    claimed = datetime(2026, 3, 4, 9, 0, tzinfo=SEOUL)
    # KIS took the 03-04 sell at 09:00:01 and filled it at 70,900 (its answer was lost)
    kis.orders.append(kis_row("20260304", "0000007001", "005930", "01", 10, 0, "090001", filled=10, average=70_900))
    with session_factory.begin() as session:
        for ticker, side, sent_at in (("005930", "sell", claimed), ("035720", "sell", claimed),
                                      ("035420", "buy", None)):
            session.execute(insert(OrderRow).values(
                user_id=USER, client_order_id=f"live:u1:2026-03-04:{ticker}:x", broker="kis-paper",
                broker_order_id=None, trading_date=YESTERDAY, ticker=ticker, side=side, order_type="market",
                quantity=10, limit_price=None, status="new", filled_quantity=0, reserved_cash=0, reason="x",
                dry_run=False, created_at=claimed, updated_at=claimed, sent_at=sent_at))
    assert send_pending(new_broker(), session_factory, USER, clock) == SendReport(linked=1, rejected=2)
    assert {cid: row[:2] + row[3:] for cid, row in orders(session_factory).items()} == {
        "live:u1:2026-03-04:005930:x": ("filled", "91252-0000007001", "x"),
        "live:u1:2026-03-04:035720:x": ("rejected", None, "not sent: its session is over"),
        "live:u1:2026-03-04:035420:x": ("rejected", None, "not sent: its session is over")}
    assert kis.order_posts() == []
    with session_factory() as session:
        fill = session.execute(select(FillRow.ticker, FillRow.side, FillRow.quantity, FillRow.price,
                                      FillRow.trade_date)).one()
    assert tuple(fill) == ("005930", "sell", 10, 70_900, YESTERDAY)


class SlowBroker:
    """A broker whose sends take five minutes each; while the first one is on its way,
    the order ``landing`` (sent by a process that then died) arrives at the broker."""

    name, dry_run = "kis", False

    def __init__(self, clock: FixedClock, landing: tuple[Order, datetime]) -> None:
        self.clock, self.landing = clock, landing
        self.book: list[tuple[Order, datetime]] = []
        self.sent: list[str] = []

    def orders_placed_on(self, day: Any) -> list[tuple[Order, datetime]]:
        return list(self.book)

    def place_order(self, request: OrderRequest) -> Order:
        self.sent.append(request.client_order_id)
        self.clock.advance(timedelta(minutes=5))
        if self.landing not in self.book:
            self.book.append(self.landing)
        order = Order(f"91252-{100 + len(self.sent)}", request.client_order_id, TODAY, request.ticker, request.side,
                      request.order_type, request.quantity, request.limit_price, OrderStatus.NEW, 0, "", False)
        self.book.append((order, self.clock.now()))
        return order

    def fills(self, day: Any) -> list[Any]:
        return []


def test_an_order_in_doubt_is_sent_again_only_on_a_list_read_after_its_margin(session_factory: Any) -> None:
    clock = FixedClock(datetime(2026, 3, 5, 10, 0, tzinfo=SEOUL))
    claimed = clock.now() - timedelta(seconds=1)  # X: claimed by a process that died before recording
    landing = (Order("91252-1", "", TODAY, "000002", Side.SELL, OrderType.MARKET, 5, None, OrderStatus.NEW, 0, "",
                     False), claimed + timedelta(seconds=2))
    with session_factory.begin() as session:
        for cid, ticker, sent_at in (("W", "000001", clock.now() - timedelta(minutes=10)), ("X", "000002", claimed)):
            session.execute(insert(OrderRow).values(
                user_id=USER, client_order_id=cid, broker="kis", broker_order_id=None, trading_date=TODAY,
                ticker=ticker, side="sell", order_type="market", quantity=5, limit_price=None, status="new",
                filled_quantity=0, reserved_cash=0, reason="exit", dry_run=False, created_at=claimed,
                updated_at=claimed, sent_at=sent_at))
    broker = SlowBroker(clock, landing)
    # W, long in doubt, is sent again (5 minutes); by then X's list is old and X's margin has passed
    assert send_pending(broker, session_factory, USER, clock) == SendReport(sent=1, linked=1)
    assert broker.sent == ["W"]  # X was found in a new list, not sent a second time
    assert {cid: row[1] for cid, row in orders(session_factory).items()} == {"W": "91252-101", "X": "91252-1"}


def intent(sent_at: datetime | None, **terms: Any) -> Intent:
    values = {"ticker": "005930", "side": Side.BUY, "order_type": OrderType.LIMIT, "quantity": 10,
              "limit_price": 70_000, **terms}
    return Intent(1, OrderRequest("live:u1:2026-03-05:005930:entry", TODAY, values["ticker"], values["side"],
                                  values["quantity"], values["order_type"], values["limit_price"]), sent_at)


def listed(odno: str, at: datetime | None, **terms: Any) -> tuple[Order, datetime | None]:
    values = {"ticker": "005930", "side": Side.BUY, "order_type": OrderType.LIMIT, "quantity": 10,
              "limit_price": 70_000, **terms}
    return (Order(f"91252-{odno}", "", TODAY, values["ticker"], values["side"], values["order_type"],
                  values["quantity"], values["limit_price"], OrderStatus.NEW, 0, "", False), at)


def test_a_match_has_the_same_terms_a_time_from_the_claim_less_the_slack_and_is_not_ours_already() -> None:
    sent = datetime(2026, 3, 5, 9, 0, tzinfo=SEOUL)
    assert ORDER_TIME_SLACK == timedelta(seconds=60)
    mine = intent(sent)
    assert matching_order(mine, [listed("0000000001", sent - timedelta(seconds=59))], set()) is not None
    assert matching_order(mine, [listed("0000000001", sent - timedelta(seconds=59))], set()).order_id == (
        "91252-0000000001")
    assert matching_order(mine, [listed("0000000001", sent - timedelta(seconds=61))], set()) is None
    for other in ({"ticker": "000660"}, {"side": Side.SELL}, {"quantity": 9}, {"limit_price": 70_100},
                  {"order_type": OrderType.MARKET, "limit_price": None}):
        assert matching_order(mine, [listed("0000000001", sent, **other)], set()) is None, other
    # already another of our orders, however KIS pads the number
    assert matching_order(mine, [listed("0000000001", sent)], {("91252", "1")}) is None
    # the earliest of two; an order whose time KIS did not give is not ruled out
    found = matching_order(mine, [listed("0000000003", sent + timedelta(seconds=9)),
                                  listed("0000000002", sent + timedelta(seconds=2))], set())
    assert found is not None and found.order_id == "91252-0000000002"
    untimed = matching_order(mine, [listed("0000000004", None)], set())
    assert untimed is not None and untimed.order_id == "91252-0000000004"


# --- a real process killed at a random moment ----------------------------------------------------------


KILLS = 2  # killed runs per database: kill k at a seeded random moment of the k-th part of the run
ORDER_PAUSE = 0.15  # s between KIS taking an order and its answer leaving (most of the sending phase)


def clean_reference(database_url: str, calendar: Any, tmp_path: Path) -> float:
    """One clean live run for the user ``clean``; returns how long the job took."""
    fake_now = [START]
    with serve(new_fake(lambda: fake_now[0].timestamp())) as kis:
        kis.order_pause = ORDER_PAUSE
        db = create_db_engine(database_url)
        ctx = worker.live_context(make_session_factory(db), calendar,
                                  worker.live_settings(kis.url, tmp_path / "clean-token"), FixedClock(START), "clean")
        started = time.perf_counter()
        result = engine.run(ctx)
        took = time.perf_counter() - started
        db.dispose()
    assert result.status is Outcome.SUCCESS and result.summary["sent"] == 3
    return took


def final_orders(database_url: str, user: str) -> list[tuple[Any, ...]]:
    """The user's orders: (signal, ticker, side, type, quantity, limit, status, KIS order number)."""
    db = create_db_engine(database_url)
    with db.connect() as connection:
        rows = connection.execute(select(
            OrderRow.client_order_id, OrderRow.ticker, OrderRow.side, OrderRow.order_type, OrderRow.quantity,
            OrderRow.limit_price, OrderRow.status, OrderRow.broker_order_id).where(OrderRow.user_id == user)).all()
    db.dispose()
    return sorted((row[0].split(":")[-1], *row[1:]) for row in rows)


def final_signals(database_url: str, user: str) -> list[tuple[Any, ...]]:
    db = create_db_engine(database_url)
    with db.connect() as connection:
        rows = connection.execute(select(SignalRow.ticker, SignalRow.kind, SignalRow.quantity, SignalRow.reason,
                                         SignalRow.reference_price).where(SignalRow.user_id == user)).all()
    db.dispose()
    return sorted(tuple(row) for row in rows)


def test_signal_generation_killed_at_random_moments_sends_each_order_at_most_once(
        migrated_engine: Any, database_url: str, krx_calendar: Any, calendar_cache_dir: Path,
        tmp_path: Path) -> None:
    factory = make_session_factory(migrated_engine)
    users = [f"k{round_}" for round_ in range(KILLS)]
    worker.seed_market(factory, ["clean", *users])
    took = clean_reference(database_url, krx_calendar, tmp_path)
    reference = [(*order, "new", f"91252-{odno:010d}")
                 for order, odno in zip(worker.EXPECTED_ORDERS, (12345, 12346, 12347))]
    assert final_orders(database_url, "clean") == sorted(reference)
    for kill, user in enumerate(users):
        fake_now = [START]
        with serve(new_fake(lambda now=fake_now: now[0].timestamp())) as kis:
            kis.order_pause = ORDER_PAUSE
            token_dir = tmp_path / user / "kis"
            settings = worker.live_settings(kis.url, token_dir)
            KisClient(KisConfig.from_settings(settings), cache_dir=token_dir, clock=FixedClock(START)).get(
                "/uapi/domestic-stock/v1/quotations/inquire-price", "FHKST01010100",
                {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})  # the token, before the kill
            delay = took * (kill + random.Random(f"{database_url.split(':')[0]}-{user}").random()) / KILLS
            assert killed_worker(database_url, kis.url, token_dir, calendar_cache_dir, user, delay) in (
                -signal.SIGKILL, 0)  # 0: the run ended before the kill found it
            # the re-run (attempt 2 of the run ledger), once a claim left by the kill is past the margin
            fake_now[0] = START + RESEND_AFTER + timedelta(seconds=1)
            rerun = engine.run(worker.live_context(factory, krx_calendar, fast_settings(kis, token_dir.parent / user),
                                                   FixedClock(fake_now[0]), user))
            assert rerun.status is Outcome.SUCCESS
            assert set(posts(kis).values()) == {1} and len(posts(kis)) == 3  # each order reached KIS once
            assert posts(kis) == {SELL_POST: 1, ("035720", "VTTC0011U"): 1, ("035420", "VTTC0012U"): 1}
            assert kis_orders(kis) == [("005930", "01", "10", "0"), ("035420", "02", "15", "20200"),
                                       ("035720", "01", "25", "0")]
            assert all(problem.endswith("the body is not a JSON object") for problem in kis.problems)
            kis.problems.clear()  # a POST cut short by the kill: KIS takes nothing from it
        assert final_orders(database_url, user) == final_orders(database_url, "clean"), f"killed {user}"
        assert final_signals(database_url, user) == final_signals(database_url, "clean"), f"killed {user}"


def killed_worker(database_url: str, kis_url: str, token_dir: Path, calendar_dir: Path, user: str,
                  delay: float) -> int:
    """Run live_crash_worker, SIGKILL it ``delay`` s after its job starts; its exit status."""
    env = subprocess_env(LOG_LEVEL="CRITICAL")
    process = subprocess.Popen([sys.executable, "-m", "tests.trading_engine.live_crash_worker", database_url,
                                kis_url, str(token_dir), str(calendar_dir), user], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "start"
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    return process.returncode
