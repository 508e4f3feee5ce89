"""One side of the account race (tests/risk_manager/test_consistent_reads.py), in its
own process: ``fills`` trades 10 RACE shares in and out at their stored close, each
trade in one account transaction, until told to stop; ``checks`` runs the real
``risk_checks`` job ``N`` times and prints the equity and positions each one saw.

With no fees and fills at the valuation price, every committed state of the account
has the same equity, 10,000,000 KRW: a check that sees any other saw half a trade.

Usage: python -m tests.risk_manager.account_race_worker DATABASE_URL fills|checks N WORKDIR
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory
from services.common.job_api import JobContext
from services.common.market_calendar import load_calendar
from services.trading_engine import risk_check
from services.trading_engine.broker import open_account
from services.trading_engine.orders import OrderRequest, OrderType, Side
from services.trading_engine.paper import PaperBroker
from tests.conftest import make_settings

KST = ZoneInfo("Asia/Seoul")
SATURDAY = date(2026, 11, 21)  # the risk check values at the 11-20 close: no quotes move
MOMENT = datetime(2026, 11, 21, 20, 0, tzinfo=KST)
CLOSE, LOT = 10_000, 10
USER = "racer"
SETTINGS = {"user_id": USER, "portfolio_value": "10000000", "commission_pct": "0",
            "sell_tax_schedule": "2015-01-01=0"}


def context(database_url: str, workdir: Path, job: str) -> JobContext:
    factory = make_session_factory(create_db_engine(database_url))
    return JobContext(job_name=job, trading_date=SATURDAY, scheduled_for=MOMENT,
                      settings=make_settings(**SETTINGS, database_url=database_url),
                      session_factory=factory, clock=FixedClock(MOMENT), calendar=load_calendar(workdir / "cache"))


def trade(ctx: JobContext, number: int) -> None:
    """Buy (even ``number``) or sell (odd) one lot, filled at once at the close."""
    side = Side.BUY if number % 2 == 0 else Side.SELL
    trading = open_account(ctx)
    with trading.transaction() as connection:
        broker = trading.broker(connection, MOMENT)
        assert isinstance(broker, PaperBroker)
        broker.place_order(OrderRequest(f"race-{number}", SATURDAY, "RACE", side, LOT, OrderType.MARKET,
                                        reason="race"))
        [fill] = broker.match({"RACE": CLOSE}, MOMENT + timedelta(microseconds=1))
        assert fill.quantity == LOT


def fills(ctx: JobContext, workdir: Path, most: int) -> int:
    stop, started = workdir / "stop", time.monotonic()
    (workdir / "ready").touch()
    number = 0
    while not stop.exists() and number < most and time.monotonic() - started < 120:
        trade(ctx, number)
        number += 1
        (workdir / "traded.tmp").write_text(str(number))
        (workdir / "traded.tmp").replace(workdir / "traded")
    if number % 2:  # end flat
        trade(ctx, number)
        number += 1
    return number


def traded(workdir: Path) -> int:
    try:
        return int((workdir / "traded").read_text())
    except FileNotFoundError:
        return 0


def checks(ctx: JobContext, workdir: Path, count: int) -> list[tuple[int, int]]:
    """``count`` checks as fast as they run; every tenth waits for one more trade first,
    so trades are committed all through the checks whatever the machine's scheduling."""
    while not (workdir / "ready").exists():
        time.sleep(0.01)
    seen, last = [], -1
    for number in range(count):
        if number % 10 == 0:
            while traded(workdir) == last:
                time.sleep(0.001)
            last = traded(workdir)
        summary = risk_check.run(ctx).summary
        seen.append((summary["equity"], summary["positions"]))
    (workdir / "stop").touch()
    return seen


def main(database_url: str, role: str, count: str, workdir: str) -> None:
    directory = Path(workdir)
    if role == "fills":
        print(fills(context(database_url, directory, "position_monitoring"), directory, int(count) * 50))
    else:
        print(json.dumps(checks(context(database_url, directory, "risk_checks"), directory, int(count))))


if __name__ == "__main__":
    main(*sys.argv[1:])
