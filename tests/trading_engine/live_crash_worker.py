"""A live ``signal_generation`` against the fake KIS, in a process of its own, for the
crash test of live orders (test_live_orders.py): the test kills it at a random moment
and runs the job again.

    python -m tests.trading_engine.live_crash_worker DATABASE_URL KIS_URL TOKEN_DIR CALENDAR_DIR USER

It prints ``start`` just before the job runs. The market it trades, worked by hand:

Previous session 2026-03-04, trading date 2026-03-05 (Thu). The fake KIS account
holds 10 x 005930 (cost 700,000), 5 x 000660 (902,500) and 25 x 035720 (1,031,000)
with 3,438,566 KRW to spend (``prvs_rcdl_excc_amt``). Stored for 03-04:

    ticker  close    sma_60   on the user's watchlist
    005930  71,500   65,000   no    -> exit (dropped from the watchlist), sell 10 at market
    035720  40,850   38,000   no    -> exit (dropped from the watchlist), sell 25 at market
    035420  20,000   18,000   rank 1 (trend 1.0, momentum 0.8, rsi 60) -> entry
    000660  (no price stored: no exit signal)

Equity = 3,438,566 + 10 x 71,500 + 25 x 40,850 + 902,500 (000660 at cost) =
6,077,316; 5% = 303,865 per position. The entry's limit is 20,000 x 1.01 = 20,200;
15 shares cost 303,000 + 45 commission = 303,045; 16 would cost 323,248.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from services.common.clock import Clock, FixedClock
from services.common.job_api import JobContext
from services.common.market_calendar import MarketCalendar
from services.common.settings import Settings
from tests.conftest import make_settings

SEOUL = ZoneInfo("Asia/Seoul")
DAY, PREVIOUS = date(2026, 3, 5), date(2026, 3, 4)
START = datetime(2026, 3, 5, 8, 45, tzinfo=SEOUL)
APP_KEY = "PSkEyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU"
APP_SECRET = "SeCrEt" + "x9Y8z7W6v5U4t3S2r1Q0" * 8 + "pO1n2M3l4K5j6I7h8G9f0"
ACCOUNT = "12345678-01"
#: the orders one clean run places: (signal, ticker, side, type, quantity, limit price)
EXPECTED_ORDERS = [("exit", "005930", "sell", "market", 10, None),
                   ("exit", "035720", "sell", "market", 25, None),
                   ("entry", "035420", "buy", "limit", 15, 20_200)]


def live_settings(kis_url: str, token_dir: Path, **values: Any) -> Settings:
    """Live on the paper (모의투자) host of the fake, the token cached in ``token_dir``;
    requests spaced 50 ms apart unless ``values`` say otherwise."""
    return make_settings(**{"dry_run": "false", "kis_app_key": APP_KEY, "kis_app_secret": APP_SECRET,
                            "kis_account": ACCOUNT, "kis_paper_host": kis_url, "kis_requests_per_second": "20",
                            "cache_dir": str(token_dir), **values})


def live_context(session_factory: Any, calendar: MarketCalendar, settings: Settings, clock: Clock, user: str,
                 job: str = "signal_generation", when: datetime = START) -> JobContext:
    return JobContext(job_name=job, trading_date=DAY, scheduled_for=when,
                      settings=replace(settings, user_id=user, dry_run=False),
                      session_factory=session_factory, clock=clock, calendar=calendar)


def seed_market(session_factory: Any, users: list[str]) -> None:
    """The 03-04 prices and indicators, and each user's watchlist of that day."""
    from services.data_collector.models import DailyPrice
    from services.indicator_calculator.models import TechnicalIndicator
    from services.watchlist_manager.models import WatchlistEntry, WatchlistRun

    with session_factory.begin() as session:
        c = session.connection()
        for ticker, close, sma_60 in (("005930", 71_500, 65_000.0), ("035720", 40_850, 38_000.0),
                                      ("035420", 20_000, 18_000.0)):
            c.execute(insert(DailyPrice).values(date=PREVIOUS, ticker=ticker, open=close, high=close, low=close,
                                                close=close, volume=1_000_000, value=close * 1_000_000,
                                                change_pct=0.0, market_cap=close * 10**7, market="KOSPI",
                                                halted=False))
            c.execute(insert(TechnicalIndicator).values(date=PREVIOUS, ticker=ticker, sma_60=sma_60, rsi_14=60.0,
                                                        macd_hist=1.0, volume_ratio_20=1.0))
        for user in users:
            c.execute(insert(WatchlistEntry).values(
                user_id=user, date=PREVIOUS, ticker="035420", rank=1, score=0.9, trend=1.0, momentum=0.8,
                volatility=0.5, liquidity=0.5, value=0.5, close=20_000, entered_on=PREVIOUS, entry_close=20_000))
            c.execute(insert(WatchlistRun).values(user_id=user, date=PREVIOUS, size=1, eligible=3))


def main(url: str, kis_url: str, token_dir: str, calendar_dir: str, user: str) -> None:
    from services.common.database import create_db_engine, make_session_factory
    from services.common.market_calendar import load_calendar
    from services.trading_engine import engine

    db = create_db_engine(url)
    ctx = live_context(make_session_factory(db), load_calendar(Path(calendar_dir)),
                       live_settings(kis_url, Path(token_dir)), FixedClock(START), user)
    print("start", flush=True)
    engine.run(ctx)
    print("done", flush=True)
    db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
