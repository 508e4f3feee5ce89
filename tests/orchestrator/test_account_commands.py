"""The account at a glance: ``positions``, ``orders``, ``fills`` and ``pnl``, and the
library they share (``ops.account``), on an account that really traded.

The paper account of ``default_user`` is built by replaying two weeks of the schedule
(2026-11-09 to 2026-11-20, the exam day included) on the simulated market: the real
signal_generation and position_monitoring jobs placed, filled and closed its trades
(about 30 fills, positions bought and sold). Each figure the commands show is checked
against what the fills themselves say, worked out here independently: a position's
quantity is its buys less its sells, its cost the buys' amounts and commissions (a
sale takes its share of it), a day's realised P&L its sales' proceeds less the cost
of the shares sold, the cash the opening balance plus every fill's cash change.

Beside it, by hand: a live account (``dry_run`` false) of the same user holding one of
the paper account's tickers (never shown for the paper account, and the other way
round), and a user with an order of each status (the filters).

SQLite always; PostgreSQL as well when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.cells import cell_len
from sqlalchemy import create_engine, insert, select

from services.common.clock import FixedClock
from services.data_collector.models import DailyPrice
from services.orchestrator.ops import account
from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.replay import simulate
from services.orchestrator.runtime import Runtime
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, PortfolioSnapshot, PositionRow
from tests.conftest import in_process_cli, make_settings, scratch_database

KST = ZoneInfo("Asia/Seoul")
START, END = date(2026, 11, 9), date(2026, 11, 20)
SESSIONS = [date(2026, 11, day) for day in (9, 10, 11, 12, 13, 16, 17, 18, 19, 20)]
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=KST)  # the Saturday after: the closes of 11-20 are in
OPENING = 100_000_000  # ORCHESTRATOR_PORTFOLIO_VALUE's default
EVER = date(2026, 1, 1)  # a start before everything the account did
USER = "default_user"
LIVE_CASH_1119 = 6_000_000  # the live account's equity at the close of 11-19: all cash
ORDERS_USER = "orders_user"  # a paper user with one order of each status, by hand
STATUSES = ["new", "partially_filled", "filled", "cancelled", "rejected"]  # created in this order


# --- the account: a replay, a live account and an order of each status -------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def traded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           calendar_cache_dir: Path) -> Iterator[dict[str, Any]]:
    """The database's URL, and what was written by hand (``live``: the live account)."""
    with scratch_database(request.param, tmp_path_factory.mktemp("account")) as url:
        settings = make_settings(database_url=url, cache_dir=str(calendar_cache_dir), simulated_universe="30",
                                 bootstrap_sessions="130", enable_risk_checks="false")
        simulation = simulate(settings, START, END)
        simulation.runtime.close()
        assert simulation.failed == 0
        engine = create_engine(url)
        try:
            live = _open_live_account(engine)
            _place_an_order_of_each_status(engine)
            yield {"url": url, "live": live, "engine": engine}
        finally:
            engine.dispose()


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=KST)


def _open_live_account(engine: Any) -> dict[str, Any]:
    """The live account of ``USER``: all cash at the close of 11-19, then on 11-20 it
    bought 10 shares of the paper account's first ticker at that day's open."""
    with engine.begin() as connection:
        ticker = connection.scalar(select(PositionRow.ticker).where(PositionRow.dry_run.is_(True))
                                   .order_by(PositionRow.ticker).limit(1))
        price, close = connection.execute(select(DailyPrice.open, DailyPrice.close).where(
            DailyPrice.ticker == ticker, DailyPrice.date == END)).one()
        amount = 10 * price
        commission = amount * 15 // 100_000  # 0.015%, floored
        cost = amount + commission
        order_id = connection.execute(insert(OrderRow).values(
            user_id=USER, client_order_id="live:1", broker="kis", broker_order_id="0000012345", trading_date=END,
            ticker=ticker, side="buy", order_type="market", quantity=10, limit_price=None, status="filled",
            filled_quantity=10, reserved_cash=0, reason="live test buy", dry_run=False, created_at=_at(END, 9),
            updated_at=_at(END, 9, 5), sent_at=_at(END, 9))).inserted_primary_key[0]
        fill_id = connection.execute(insert(FillRow).values(
            order_id=order_id, fill_key="0000012345:1", user_id=USER, ticker=ticker, side="buy", quantity=10,
            price=price, commission=commission, tax=0, trade_date=END, settles_on=date(2026, 11, 24),
            filled_at=_at(END, 9, 5), dry_run=False)).inserted_primary_key[0]
        connection.execute(insert(PositionRow).values(user_id=USER, dry_run=False, ticker=ticker, quantity=10,
                                                      cost=cost, opened_on=END, high_water=price))
        cash = LIVE_CASH_1119 - cost
        for day, day_cash, value in ((date(2026, 11, 19), LIVE_CASH_1119, 0), (END, cash, 10 * close)):
            connection.execute(insert(PortfolioSnapshot).values(
                user_id=USER, dry_run=False, taken_at=_at(day, 15, 30), trading_date=day, cash=day_cash,
                settled_cash=day_cash, market_value=value, equity=day_cash + value,
                exposure=value / (day_cash + value), unrealised_pnl=value - (cost if value else 0),
                positions=1 if value else 0, prices_observed=True))
    return {"ticker": ticker, "price": price, "close": close, "cost": cost, "cash": cash, "order_id": order_id,
            "fill_id": fill_id, "equity": cash + 10 * close}


def _place_an_order_of_each_status(engine: Any) -> None:
    with engine.begin() as connection:
        for minute, status in enumerate(STATUSES):
            connection.execute(insert(OrderRow).values(
                user_id=ORDERS_USER, client_order_id=f"test:{status}", broker="paper", broker_order_id=None,
                trading_date=END, ticker="005930", side="buy", order_type="limit", quantity=10, limit_price=70_000,
                status=status, filled_quantity={"partially_filled": 4, "filled": 10}.get(status, 0),
                reserved_cash=0, reason=f"an order {status}", dry_run=True, created_at=_at(END, 9, minute),
                updated_at=_at(END, 9, minute)))


def runtime_of(traded: dict[str, Any], calendar_cache_dir: Path, **values: str) -> Runtime:
    settings = make_settings(database_url=traded["url"], cache_dir=str(calendar_cache_dir), **values)
    return Runtime.create(settings, clock=FixedClock(NOW))


@pytest.fixture
def paper(traded: dict[str, Any], calendar_cache_dir: Path) -> Iterator[Runtime]:
    runtime = runtime_of(traded, calendar_cache_dir)
    yield runtime
    runtime.close()


@pytest.fixture
def live(traded: dict[str, Any], calendar_cache_dir: Path) -> Iterator[Runtime]:
    runtime = runtime_of(traded, calendar_cache_dir, dry_run="false")
    yield runtime
    runtime.close()


@pytest.fixture
def cli(traded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    """The CLI on the traded database, the clock at ``NOW``, 80 columns."""
    invoke = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    return lambda *args: invoke(*args, env={"DATABASE_URL": traded["url"], "COLUMNS": "80"})


# --- what the fills say, worked out here -----------------------------------------------------------


class Book:
    """The paper account replayed from its fills, oldest first: each ticker's quantity,
    cost (buys at amount plus commission; a sale takes its shares' share of the cost)
    and opening date; each day's realised P&L; the cash."""

    def __init__(self, fills: list[dict[str, Any]]) -> None:
        self.quantity: dict[str, int] = defaultdict(int)
        self.cost: dict[str, int] = defaultdict(int)
        self.opened_on: dict[str, str] = {}
        self.realised: dict[str, int] = defaultdict(int)
        self.cash = OPENING
        for fill in fills:
            ticker, quantity, amount = fill["ticker"], fill["quantity"], fill["quantity"] * fill["price"]
            if fill["side"] == "buy":
                if self.quantity[ticker] == 0:
                    self.opened_on[ticker] = fill["trade_date"]
                self.quantity[ticker] += quantity
                self.cost[ticker] += amount + fill["commission"]
                self.cash -= amount + fill["commission"]
            else:
                held = self.quantity[ticker]
                sold = self.cost[ticker] if quantity == held else self.cost[ticker] * quantity // held
                proceeds = amount - fill["commission"] - fill["tax"]
                self.realised[fill["trade_date"]] += proceeds - sold
                self.quantity[ticker] -= quantity
                self.cost[ticker] -= sold
                self.cash += proceeds

    def held(self) -> dict[str, int]:
        return {ticker: quantity for ticker, quantity in self.quantity.items() if quantity}


@pytest.fixture
def book(paper: Runtime) -> Book:
    return Book(account.fills(paper, EVER, END))


def closes(traded: dict[str, Any], day: date) -> dict[str, int]:
    with traded["engine"].connect() as connection:
        return dict(connection.execute(select(DailyPrice.ticker, DailyPrice.close).where(
            DailyPrice.date == day)).all())


# --- positions and the summary --------------------------------------------------------------------


def test_the_replay_traded_both_ways_and_still_holds_positions(book: Book) -> None:
    assert sum(book.realised.values()) != 0 and book.held()  # sales closed trades; positions are open


def test_each_position_is_its_buys_less_its_sales_at_its_buys_cost(paper: Runtime, book: Book,
                                                                    traded: dict[str, Any]) -> None:
    rows = account.positions(paper)
    assert {row["ticker"]: row["quantity"] for row in rows} == book.held()
    assert [row["ticker"] for row in rows] == sorted(book.held())
    last = closes(traded, END)
    for row in rows:
        ticker = row["ticker"]
        assert row["cost"] == book.cost[ticker]
        assert row["average_cost"] == round(book.cost[ticker] / book.quantity[ticker])
        assert row["opened_on"] == book.opened_on[ticker]
        assert row["days_held"] == (NOW.date() - date.fromisoformat(row["opened_on"])).days
        assert row["last_price"] == last[ticker] and row["priced"] is True
        assert row["market_value"] == row["quantity"] * last[ticker]
        assert row["unrealised_pnl"] == row["market_value"] - row["cost"]
        assert row["unrealised_return"] == round(row["unrealised_pnl"] / row["cost"], 6)
        assert row["name"].startswith("모의")  # the simulated stock master's names
        assert set(row) == set(account.POSITION_FIELDS)


def test_the_summary_adds_up_and_agrees_with_the_day_s_closing_snapshot(paper: Runtime, book: Book) -> None:
    view = account.overview(paper)
    summary, rows = view["summary"], view["positions"]
    days = account.pnl(paper, START, END)["days"]
    assert set(summary) == set(account.SUMMARY_FIELDS)
    assert (summary["user_id"], summary["mode"], summary["dry_run"]) == (USER, "paper", True)
    assert summary["as_of"] == "2026-11-21T10:00:00+09:00" and summary["valued_on"] == "2026-11-20"
    assert summary["cash"] == book.cash  # the opening balance and every fill's cash change
    assert summary["market_value"] == sum(row["market_value"] for row in rows)
    assert summary["equity"] == summary["cash"] + summary["market_value"]
    assert summary["equity"] == days[-1]["equity"]  # the close tick of 11-20 saw the closes stored for it
    assert summary["previous_equity"] == days[-2]["equity"]
    assert summary["day_pnl"] == summary["equity"] - days[-2]["equity"] == days[-1]["day_pnl"]
    assert summary["opening_balance"] == OPENING
    assert summary["total_pnl"] == summary["equity"] - OPENING
    assert summary["realised_pnl"] == sum(book.realised.values())
    assert summary["unrealised_pnl"] == summary["market_value"] - sum(row["cost"] for row in rows)
    assert summary["total_pnl"] == summary["realised_pnl"] + summary["unrealised_pnl"]  # a paper account's identity
    assert summary["exposure"] == pytest.approx(sum(row["weight"] for row in rows), abs=1e-5)
    assert summary["positions"] == len(rows)


def test_positions_table_shows_the_account_above_the_positions_within_80_columns(cli: Any, paper: Runtime) -> None:
    summary = account.summary(paper)
    result = cli("positions")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "default_user (paper) at 2026-11-21 10:00+09:00, at the closes of 2026-11-20"
    assert lines[1] == (f"equity {summary['equity']:,} = cash {summary['cash']:,} + positions "
                        f"{summary['market_value']:,} (exposure {summary['exposure']:.2%})")
    assert lines[2].startswith(f"P&L: day {summary['day_pnl']:+,} (") and f"on {OPENING:,}" in lines[2]
    assert f"Open positions ({summary['positions']})" in result.stdout
    assert max(cell_len(line) for line in lines) <= 80


def test_positions_csv_and_json_carry_every_field(cli: Any, paper: Runtime) -> None:
    rows = account.positions(paper)
    as_csv = cli("positions", "--format", "csv")
    assert as_csv.exit_code == 0
    assert as_csv.stdout.splitlines()[0] == ",".join(account.POSITION_FIELDS)
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(row["ticker"], int(row["quantity"]), int(row["cost"])) for row in parsed] == [
        (row["ticker"], row["quantity"], row["cost"]) for row in rows]
    as_json = cli("positions", "--format", "json")
    assert json.loads(as_json.stdout) == rows


# --- orders ----------------------------------------------------------------------------------------


def test_orders_are_newest_first_and_the_filled_ones_were_filled_in_full(paper: Runtime, book: Book) -> None:
    everything = account.orders(paper, "all", 1000)
    assert everything and set(everything[0]) == set(account.ORDER_FIELDS)
    assert [row["created_at"] for row in everything] == sorted((row["created_at"] for row in everything),
                                                              reverse=True)
    filled = account.orders(paper, "filled", 1000)
    assert filled and all(row["status"] == "filled" and row["filled_quantity"] == row["quantity"] for row in filled)
    fills = account.fills(paper, EVER, END)
    by_order: dict[int, int] = defaultdict(int)
    for fill in fills:
        by_order[fill["order_id"]] += fill["quantity"]
    assert {row["id"]: row["quantity"] for row in filled} == dict(by_order)  # every fill is of a filled order
    assert account.orders(paper, "all", 3) == everything[:3]
    assert everything[0]["created_at"].endswith("+09:00")


def test_orders_status_filters(traded: dict[str, Any], calendar_cache_dir: Path) -> None:
    runtime = runtime_of(traded, calendar_cache_dir, user_id=ORDERS_USER)
    try:
        def statuses(name: str) -> list[str]:
            return [row["status"] for row in account.orders(runtime, name)]

        assert statuses("all") == list(reversed(STATUSES))
        assert statuses("open") == ["partially_filled", "new"]
        for name in ("filled", "cancelled", "rejected"):
            assert statuses(name) == [name]
    finally:
        runtime.close()


def test_orders_table_and_the_limit_note(cli: Any) -> None:
    result = cli("orders", "--user-id", ORDERS_USER, "--status", "open")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Open orders of {ORDERS_USER} (paper), newest first"
    assert "partial" in lines[3] and "4/10" in lines[3] and "70,000" in lines[3]
    assert "new" in lines[4] and "0/10" in lines[4]
    limited = cli("orders", "--limit", "2")
    assert limited.stdout.splitlines()[-1] == "the latest 2; --limit N shows more"
    assert max(cell_len(line) for line in limited.stdout.splitlines()) <= 80


def test_orders_csv_has_every_field(cli: Any) -> None:
    result = cli("orders", "--user-id", ORDERS_USER, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.splitlines()[0] == ",".join(account.ORDER_FIELDS)
    assert [row["status"] for row in rows] == list(reversed(STATUSES))
    assert rows[0]["reason"] == "an order rejected" and rows[0]["limit_price"] == "70000"


# --- fills -----------------------------------------------------------------------------------------


def test_fills_amounts_fees_and_settlement(paper: Runtime, krx_calendar: Any) -> None:
    fills = account.fills(paper, EVER, END)
    assert fills and set(fills[0]) == set(account.FILL_FIELDS)
    assert [row["filled_at"] for row in fills] == sorted(row["filled_at"] for row in fills)
    for row in fills:
        assert row["amount"] == row["quantity"] * row["price"]
        assert row["commission"] == row["amount"] * 15 // 100_000  # 0.015%, floored
        assert row["tax"] == (row["amount"] * 20 // 10_000 if row["side"] == "sell" else 0)  # 0.20% in 2026
        assert row["cash_change"] == (row["amount"] - row["commission"] - row["tax"] if row["side"] == "sell"
                                      else -(row["amount"] + row["commission"]))
        trade_date = date.fromisoformat(row["trade_date"])
        second = krx_calendar.next_session(krx_calendar.next_session(trade_date).date).date
        assert row["settles_on"] == second.isoformat()  # T+2
        assert row["filled_at"].startswith(row["trade_date"]) and row["filled_at"].endswith("+09:00")


def test_fills_range_defaults_to_the_last_30_days_and_filters_by_trade_date(paper: Runtime) -> None:
    assert account.date_range(paper) == (NOW.date() - timedelta(days=29), NOW.date())
    assert account.fills(paper) == account.fills(paper, EVER, END)  # the replay is within the last 30 days
    some = account.fills(paper, date(2026, 11, 17), date(2026, 11, 18))
    assert some and {row["trade_date"] for row in some} <= {"2026-11-17", "2026-11-18"}
    assert some == [row for row in account.fills(paper, EVER, END)
                    if row["trade_date"] in ("2026-11-17", "2026-11-18")]
    assert account.fills(paper, date(2026, 11, 21), date(2026, 11, 22)) == []


def test_fills_table_csv_json_and_the_display_zone(cli: Any, paper: Runtime) -> None:
    fills = account.fills(paper, START, END)
    table = cli("fills", "--start", "2026-11-09", "--end", "2026-11-20")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "Fills of default_user (paper), 2026-11-09 to 2026-11-20 (times in Asia/Seoul)"
    assert len(lines) == 3 + len(fills) + 1
    bought = sum(row["amount"] for row in fills if row["side"] == "buy")
    assert lines[-1].startswith(f"{len(fills)} fills: bought {bought:,}, ")
    assert max(cell_len(line) for line in lines) <= 80
    as_csv = cli("fills", "--start", "2026-11-09", "--format", "csv")
    assert as_csv.stdout.splitlines()[0] == ",".join(account.FILL_FIELDS)
    assert len(as_csv.stdout.splitlines()) == 1 + len(fills)
    in_utc = json.loads(cli("fills", "--start", "2026-11-09", "--format", "json", "--timezone", "UTC").stdout)
    assert [datetime.fromisoformat(row["filled_at"]) for row in in_utc] == [
        datetime.fromisoformat(row["filled_at"]) for row in fills]
    assert all(row["filled_at"].endswith("+00:00") for row in in_utc)


# --- pnl -------------------------------------------------------------------------------------------


def test_each_day_s_pnl_is_its_equity_change_and_its_own_trades(paper: Runtime, book: Book,
                                                                krx_calendar: Any) -> None:
    report = account.pnl(paper, START, END)
    days = report["days"]
    assert [day["date"] for day in days] == [session.isoformat() for session in SESSIONS]
    assert set(days[0]) == set(account.PNL_DAY_FIELDS) and set(report["totals"]) == set(account.PNL_TOTAL_FIELDS)
    fills = account.fills(paper, EVER, END)
    previous, peak = OPENING, OPENING  # no snapshot before the replay: the first day is against the opening
    for day in days:
        assert day["snapshot_at"] == krx_calendar.session(date.fromisoformat(day["date"])).close.isoformat()
        assert day["day_pnl"] == day["equity"] - previous
        assert day["day_return"] == round((day["equity"] - previous) / previous, 6)
        assert day["cumulative_return"] == round(day["equity"] / OPENING - 1, 6)
        peak = max(peak, day["equity"])
        assert day["drawdown"] == round(day["equity"] / peak - 1, 6) <= 0
        assert day["equity"] == day["cash"] + day["market_value"]
        assert day["realised_pnl"] == book.realised.get(day["date"], 0)
        assert day["commission"] == sum(f["commission"] for f in fills if f["trade_date"] == day["date"])
        assert day["tax"] == sum(f["tax"] for f in fills if f["trade_date"] == day["date"])
        previous = day["equity"]
    assert days[-2]["snapshot_at"] == "2026-11-19T16:30:00+09:00"  # the exam day's late close
    totals = report["totals"]
    assert totals["days"] == len(SESSIONS)
    assert (totals["start_equity"], totals["end_equity"]) == (OPENING, days[-1]["equity"])
    assert totals["pnl"] == days[-1]["equity"] - OPENING == sum(day["day_pnl"] for day in days)
    assert totals["realised_pnl"] == sum(book.realised.values())
    assert totals["commission"] == sum(f["commission"] for f in fills)
    assert totals["max_drawdown"] == min(day["drawdown"] for day in days)
    assert (report["user_id"], report["mode"], report["opening_balance"]) == (USER, "paper", OPENING)


def test_a_later_window_starts_from_the_previous_close(paper: Runtime) -> None:
    everything = account.pnl(paper, START, END)["days"]
    window = account.pnl(paper, date(2026, 11, 16), date(2026, 11, 18))
    assert [day["date"] for day in window["days"]] == ["2026-11-16", "2026-11-17", "2026-11-18"]
    assert window["days"] == everything[5:8]  # the same figures: drawdown from the peak before the window too
    assert window["totals"]["start_equity"] == everything[4]["equity"]
    assert window["totals"]["pnl"] == everything[7]["equity"] - everything[4]["equity"]


def test_pnl_table_has_a_totals_line_and_csv_json_their_fields(cli: Any, paper: Runtime) -> None:
    report = account.pnl(paper, START, END)
    table = cli("pnl", "--start", "2026-11-01", "--end", "2026-11-30")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "Daily P&L of default_user (paper), 2026-11-01 to 2026-11-30"
    assert lines[-1].startswith(f"total      {report['totals']['end_equity']:,} {report['totals']['pnl']:+,} ")
    assert len([line for line in lines if line.startswith("2026-11-")]) == len(SESSIONS)
    assert max(cell_len(line) for line in lines) <= 80
    as_csv = cli("pnl", "--start", "2026-11-01", "--end", "2026-11-30", "--format", "csv")
    assert as_csv.stdout.splitlines()[0] == ",".join(account.PNL_DAY_FIELDS)
    assert len(as_csv.stdout.splitlines()) == 1 + len(SESSIONS)
    as_json = json.loads(cli("pnl", "--start", "2026-11-09", "--end", "2026-11-20", "--format", "json").stdout)
    assert set(as_json) == {"user_id", "mode", "start", "end", "opening_balance", "days", "totals"}
    assert as_json == report


# --- paper and live -------------------------------------------------------------------------------


def test_the_live_account_is_never_shown_for_the_paper_account(paper: Runtime, traded: dict[str, Any],
                                                               book: Book) -> None:
    live = traded["live"]
    paper_positions = {row["ticker"]: row for row in account.positions(paper)}
    assert paper_positions[live["ticker"]]["quantity"] == book.quantity[live["ticker"]]  # its own shares only
    assert live["order_id"] not in {row["id"] for row in account.orders(paper, "all", 1000)}
    assert live["fill_id"] not in {row["id"] for row in account.fills(paper, EVER, END)}
    assert account.summary(paper)["cash"] == book.cash


def test_no_dry_run_shows_the_live_account_only(live: Runtime, traded: dict[str, Any]) -> None:
    expected = traded["live"]
    view = account.overview(live)
    [position] = view["positions"]
    assert (position["ticker"], position["quantity"], position["cost"], position["last_price"]) == (
        expected["ticker"], 10, expected["cost"], expected["close"])
    summary = view["summary"]
    assert (summary["mode"], summary["dry_run"]) == ("live", False)
    assert summary["cash"] == expected["cash"]  # as of its latest snapshot
    assert summary["cash_at"] == "2026-11-20T15:30:00+09:00"
    assert summary["equity"] == expected["equity"]
    assert summary["opening_balance"] == LIVE_CASH_1119  # a live account's first snapshotted equity
    assert summary["day_pnl"] == expected["equity"] - LIVE_CASH_1119 == summary["total_pnl"]
    assert [row["id"] for row in account.orders(live)] == [expected["order_id"]]
    [fill] = account.fills(live, EVER, END)
    assert (fill["id"], fill["amount"], fill["cash_change"]) == (expected["fill_id"], 10 * expected["price"],
                                                                 -expected["cost"])
    days = account.pnl(live, START, END)["days"]
    assert [(day["date"], day["equity"], day["day_pnl"]) for day in days] == [
        ("2026-11-19", LIVE_CASH_1119, 0), ("2026-11-20", expected["equity"], expected["equity"] - LIVE_CASH_1119)]


def test_the_cli_picks_the_account_with_dry_run(cli: Any, traded: dict[str, Any]) -> None:
    live = traded["live"]
    result = cli("positions", "--no-dry-run", "--format", "json")
    assert [row["ticker"] for row in json.loads(result.stdout)] == [live["ticker"]]
    table = cli("positions", "--no-dry-run")
    assert table.stdout.splitlines()[0] == "default_user (LIVE) at 2026-11-21 10:00+09:00, at the closes of 2026-11-20"
    assert "cash" in table.stdout and "(at 2026-11-20 15:30+09:00)" in table.stdout
    orders = json.loads(cli("orders", "--no-dry-run", "--format", "json").stdout)
    assert [row["broker_order_id"] for row in orders] == ["0000012345"]
    paper_fills = json.loads(cli("fills", "--dry-run", "--format", "json").stdout)
    assert live["fill_id"] not in {row["id"] for row in paper_fills}


# --- an empty account and bad input ---------------------------------------------------------------


def test_an_empty_account_says_so_in_one_line(cli: Any) -> None:
    expected = {
        ("positions",): "no open positions for nobody (paper)\n",
        ("orders",): "no orders for nobody (paper)\n",
        ("orders", "--status", "open"): "no open orders for nobody (paper)\n",
        ("fills",): "no fills for nobody (paper) from 2026-10-23 to 2026-11-21\n",
        ("pnl", "--start", "2026-11-01"): "no portfolio snapshots for nobody (paper) from 2026-11-01 to 2026-11-21\n",
        ("positions", "--no-dry-run"): "no open positions for nobody (LIVE)\n",
    }
    for args, line in expected.items():
        result = cli(*args, "--user-id", "nobody")
        assert (result.exit_code, result.stdout, result.stderr) == (0, line, ""), args
    for command in ("positions", "orders", "fills"):
        assert json.loads(cli(command, "--user-id", "nobody", "--format", "json").stdout) == []
    assert cli("fills", "--user-id", "nobody", "--format", "csv").stdout == ",".join(account.FILL_FIELDS) + "\n"
    report = json.loads(cli("pnl", "--user-id", "nobody", "--format", "json").stdout)
    assert report["days"] == [] and report["totals"]["days"] == 0 and report["totals"]["pnl"] is None


def test_an_account_that_sold_everything_shows_its_cash_and_no_positions(
        traded: dict[str, Any], cli: Any) -> None:
    with traded["engine"].begin() as connection:
        connection.execute(insert(PaperAccount).values(user_id="flat", initial_cash=1_000_000, cash=1_000_500,
                                                       opened_at=_at(START, 8)))
    result = cli("positions", "--user-id", "flat")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == "equity 1,000,500 = cash 1,000,500 + positions 0 (exposure 0.00%)"
    assert result.stdout.splitlines()[-1] == "no open positions for flat (paper)"


BAD_INPUT = [
    (["fills", "--start", "2026-13-01"],
     "Error: Invalid value for '--start': '2026-13-01' is not a date; expected YYYY-MM-DD\n"),
    (["pnl", "--end", "2026/11/20"],
     "Error: Invalid value for '--end': '2026/11/20' is not a date; expected YYYY-MM-DD\n"),
    (["orders", "--status", "bogus"],
     "Error: Invalid value for '--status': 'bogus' is not an order status; expected one of open, filled, "
     "cancelled, rejected, all\n"),
    (["fills", "--start", "2026-11-20", "--end", "2026-11-09"],
     "Error: Invalid value for '--start': --start 2026-11-20 is after --end 2026-11-09; expected start <= end\n"),
    (["pnl", "--start", "2026-12-01"],  # after today, the default end
     "Error: Invalid value for '--start': --start 2026-12-01 is after --end 2026-11-21; expected start <= end\n"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(args) for args, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(cli: Any, args: list[str], message: str) -> None:
    result = cli(*args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, message, "")


def test_a_limit_below_one_is_refused(cli: Any, paper: Runtime) -> None:
    result = cli("orders", "--limit", "0")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--limit" in result.stderr
    with pytest.raises(InvalidArgument, match="expected 1 or more"):
        account.orders(paper, "all", 0)
