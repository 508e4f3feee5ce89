"""Dry run on a real data provider, its ticks priced from KIS's quotes (read only) and
each session no tick priced settled on its daily bar. The account, orders and figures
are test_engine's (worked by hand there): after signal generation on 2026-11-20 the
paper account holds a market sell of 100 HELD and a limit buy of 24 WIN at 20,200.

KIS is the local fake (tests/trading_engine/fake_kis_server.py), and the live order
adapter is made unimportable in every test here."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from services.common.clock import FixedClock
from services.common.job_api import JobContext, JobResult, Outcome
from services.common.settings import ConfigurationError
from services.data_collector.models import CollectedSession, DailyPrice
from services.orchestrator.ops.service import note_paper_quotes
from services.orchestrator.reports import settings_summary
from services.trading_engine import engine, monitor
from services.trading_engine.broker import paper_pricing, preflight
from services.trading_engine.kis_api.client import KisClient
from services.trading_engine.kis_api.errors import KisError
from services.trading_engine.kis_api.quotes import KisQuotes, QuoteConfig
from services.trading_engine.models import FillRow, OrderRow, PortfolioSnapshot
from services.trading_engine.paper import Pricing
from tests.conftest import make_settings
from tests.trading_engine.fake_kis_server import ORDER_PATH, PRICE_PATH, TOKEN_PATH, FakeKis, serve
from tests.trading_engine.live_crash_worker import APP_KEY, APP_SECRET
from tests.trading_engine.test_engine import D19, D20, USER, at, block_live_adapter, rows, seed_market

D23 = date(2026, 11, 23)  # the next session (Monday)


@pytest.fixture
def kis() -> Iterator[FakeKis]:
    with serve(FakeKis(app_key=APP_KEY, app_secret=APP_SECRET, cano="12345678", acnt_prdt_cd="01",
                       clock=time.time)) as state:
        yield state
    assert state.problems == []


@pytest.fixture(autouse=True)
def no_live_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    block_live_adapter(monkeypatch)


def paper_settings(kis: FakeKis, cache: Path, **values: str) -> dict[str, str]:
    """Dry run on pykrx's daily bars with KIS credentials (no account number) set."""
    return {"portfolio_value": "10000000", "user_id": USER, "data_provider": "pykrx", "kis_app_key": APP_KEY,
            "kis_app_secret": APP_SECRET, "kis_paper_host": kis.url, "kis_requests_per_second": "1000",
            "cache_dir": str(cache), **values}


def run(job: Any, session_factory: Any, calendar: Any, settings: dict[str, str], day: date, when: datetime,
        late: timedelta = timedelta(0)) -> JobResult:
    """``job`` for ``day``'s fire at ``when``, run ``late`` after it."""
    ctx = JobContext(job_name="position_monitoring" if job is monitor else "signal_generation", trading_date=day,
                     scheduled_for=when, settings=make_settings(**settings), session_factory=session_factory,
                     clock=FixedClock(when + late), calendar=calendar)
    return job.run(ctx)


def store_bar(session_factory: Any, day: date, bars: dict[str, tuple[int, int, int, int]]) -> None:
    """``day``'s daily bars, and the session marked collected (as data_collection does)."""
    with session_factory.begin() as session:
        for ticker, (open_, high, low, close) in bars.items():
            session.execute(insert(DailyPrice).values(
                date=day, ticker=ticker, open=open_, high=high, low=low, close=close, volume=1_000_000,
                value=close * 1_000_000, change_pct=0.0, market_cap=close * 10**7, market="KOSPI", halted=False))
        session.execute(insert(CollectedSession).values(
            date=day, provider="pykrx", stock_rows=len(bars), price_rows=len(bars), fundamental_rows=0,
            rejected_rows=0, collected_at=at(day, 16, 0), revision=1))


@pytest.fixture
def account(session_factory: Any) -> Any:
    """test_engine's account, its opening session 11-19 collected: each later session
    collected is settled on its bar, unless a tick priced it."""
    seed_market(session_factory)
    with session_factory.begin() as session:
        session.execute(insert(CollectedSession).values(
            date=D19, provider="pykrx", stock_rows=3, price_rows=3, fundamental_rows=0, rejected_rows=0,
            collected_at=at(D19, 16, 0), revision=1))
    return session_factory


def fills(session_factory: Any) -> dict[str, tuple[str, int, int]]:
    return {f.ticker: (f.side, f.quantity, f.price) for f in rows(session_factory, FillRow)}


def order_of(session_factory: Any, ticker: str) -> Any:
    return [o for o in rows(session_factory, OrderRow) if o.ticker == ticker][0]


def test_a_tick_at_its_moment_fills_the_paper_orders_at_kis_quotes_reading_only_prices(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "20100"}
    result = run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0), late=timedelta(seconds=20))
    assert result.status is Outcome.SUCCESS and result.summary["prices_observed"] is True
    # the figures of test_engine's first tick: HELD sold at 8,900, WIN's limit filled at 20,200
    assert fills(account) == {"HELD": ("sell", 100, 8_900), "WIN": ("buy", 24, 20_200)}
    assert all(o.dry_run for o in rows(account, OrderRow))
    snapshot = rows(account, PortfolioSnapshot, PortfolioSnapshot.trading_date == D20)[0]
    assert (snapshot.prices_observed, snapshot.market_value) == (True, 24 * 20_100)
    # KIS saw a token request and one inquire-price per ticker: nothing else
    assert [(r.method, r.path) for r in kis.requests] == [("POST", TOKEN_PATH), ("GET", PRICE_PATH),
                                                          ("GET", PRICE_PATH)]
    assert sorted(r.query["FID_INPUT_ISCD"] for r in kis.api_requests()) == ["HELD", "WIN"]
    assert "CANO" not in str(kis.requests)  # no account number is sent, or known


def test_a_tick_run_late_is_not_priced_from_kis(account: Any, krx_calendar: Any, kis: FakeKis,
                                                 tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "20100"}
    result = run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0), late=timedelta(minutes=10))
    assert (result.summary["prices_observed"], result.summary["fills"]) == (False, 0)
    assert kis.requests == []


def test_a_session_kis_priced_ends_its_limit_orders_at_its_close_and_is_never_settled_on_its_bar(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "21000"}  # above WIN's limit 20,200: no fill
    run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))
    kis.prices = {"WIN": "20500"}
    closing = run(monitor, account, krx_calendar, settings, D20, at(D20, 15, 30))
    assert (closing.summary["prices_observed"], closing.summary["expired"]) == (True, 1)
    assert order_of(account, "WIN").status == "cancelled"
    # the day's bar would have filled the limit (low 20,000): the session is not settled again
    store_bar(account, D20, {"WIN": (20_900, 21_100, 20_000, 20_500), "HELD": (8_900, 9_000, 8_800, 8_950)})
    monday = run(monitor, account, krx_calendar, settings, D23, at(D23, 9, 0))
    assert "bar_sessions_settled" not in monday.summary
    assert fills(account) == {"HELD": ("sell", 100, 8_900)}


def test_a_session_no_tick_priced_keeps_its_orders_for_its_bar(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900"}  # no quote for WIN: the tick takes none of KIS's prices
    opening = run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))
    assert (opening.summary["prices_observed"], opening.summary["fills"]) == (False, 0)
    assert "KIS quotes unavailable, this tick is not priced" in caplog.text
    closing = run(monitor, account, krx_calendar, settings, D20, at(D20, 15, 30))
    assert (closing.summary["prices_observed"], closing.summary["expired"]) == (False, 0)
    assert order_of(account, "WIN").status == "new"
    # the bar settles the session at the next run: both orders fill at the open
    store_bar(account, D20, {"WIN": (20_100, 20_400, 20_000, 20_300), "HELD": (8_800, 8_900, 8_700, 8_850)})
    monday = run(monitor, account, krx_calendar, settings, D23, at(D23, 9, 0))
    assert (monday.summary["bar_sessions_settled"], monday.summary["bar_fills"]) == (1, 2)
    assert fills(account) == {"HELD": ("sell", 100, 8_800), "WIN": ("buy", 24, 20_100)}


def test_a_priced_session_whose_closing_tick_never_ran_ends_its_limit_orders_at_the_next_run(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "21000"}
    run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))  # priced; its closing tick never runs
    kis.prices = {}  # KIS down all Monday: the order would otherwise wait for Monday's bar
    run(monitor, account, krx_calendar, settings, D23, at(D23, 9, 0))
    win = order_of(account, "WIN")
    assert (win.status, win.reserved_cash, win.reason.endswith("expired at the close")) == ("cancelled", 0, True)
    # Monday's bar (WIN's low 19,900 under its limit) is settled on Tuesday: WIN's order is over
    store_bar(account, D23, {"WIN": (20_000, 20_300, 19_900, 20_100), "HELD": (8_800, 8_900, 8_700, 8_850)})
    tuesday = run(monitor, account, krx_calendar, settings, D23 + timedelta(days=1), at(D23, 9, 0) + timedelta(days=1))
    assert tuesday.summary["bar_sessions_settled"] == 1
    assert fills(account) == {"HELD": ("sell", 100, 8_900)}


def test_the_first_priced_tick_of_a_session_ends_the_limit_orders_of_one_whose_bar_never_came(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900"}  # WIN unquoted: 11-20 is not priced, and its bar never comes
    run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))
    run(monitor, account, krx_calendar, settings, D20, at(D20, 15, 30))
    kis.prices = {"HELD": "8900", "WIN": "20000"}  # would trade through WIN's limit of 20,200
    monday = run(monitor, account, krx_calendar, settings, D23, at(D23, 9, 0))
    assert (monday.summary["prices_observed"], monday.summary["fills"]) == (True, 1)
    assert fills(account) == {"HELD": ("sell", 100, 8_900)}  # the market sell waits for a price; the limit ends
    win = order_of(account, "WIN")
    assert (win.status, win.reserved_cash, win.reason.endswith("expired at the close")) == ("cancelled", 0, True)


def test_a_session_priced_before_kis_failed_at_its_close_still_ends_its_limit_orders_there(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "21000"}
    run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))
    kis.prices = {}
    closing = run(monitor, account, krx_calendar, settings, D20, at(D20, 15, 30))  # a new run: what it reads
    assert (closing.summary["prices_observed"], closing.summary["expired"]) == (False, 1)


def test_a_priced_tick_run_again_late_keeps_its_observed_snapshot_and_its_session_off_the_bar(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "21000"}
    closing = run(monitor, account, krx_calendar, settings, D20, at(D20, 15, 30))
    again = run(monitor, account, krx_calendar, settings, D20, at(D20, 15, 30), late=timedelta(hours=2))
    assert (closing.summary["prices_observed"], again.summary["prices_observed"]) == (True, False)
    # HELD sold 100 x 8,900 (888,087 net, test_engine), WIN's order expired: cash 9,888,087, nothing held
    snapshot = rows(account, PortfolioSnapshot, PortfolioSnapshot.trading_date == D20)
    assert [(s.prices_observed, s.equity) for s in snapshot] == [(True, 9_888_087)]
    assert closing.summary["equity"] == 9_888_087
    store_bar(account, D20, {"WIN": (20_900, 21_100, 20_000, 20_500), "HELD": (8_900, 9_000, 8_800, 8_950)})
    monday = run(monitor, account, krx_calendar, settings, D23, at(D23, 9, 0))
    assert "bar_sessions_settled" not in monday.summary
    assert fills(account) == {"HELD": ("sell", 100, 8_900)}


def test_kis_is_asked_before_the_ticks_transaction_takes_the_databases_lock(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path) -> None:
    engine_ = account.kw["bind"]
    if engine_.dialect.name != "sqlite":
        pytest.skip("the whole database's write lock is SQLite's (PostgreSQL locks the account only)")
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    writable: list[bool] = []

    def try_to_write(request: Any) -> None:
        if request.path == PRICE_PATH:
            other = sqlite3.connect(engine_.url.database, timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                writable.append(True)
            except sqlite3.OperationalError:  # database is locked
                writable.append(False)
            finally:
                other.close()

    kis.on_request = try_to_write
    kis.prices = {"HELD": "8900", "WIN": "20100"}
    result = run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))
    assert result.summary["fills"] == 2 and writable == [True, True]


@pytest.mark.parametrize(("fields", "logged"), [
    ({"temp_stop_yn": "Y"}, "KIS reports WIN halted (거래정지)"),
    ({"iscd_stat_cls_code": "58"}, "KIS reports WIN halted (거래정지)"),
    ({"stck_prpr": "NaN"}, "unreadable answer"),
    ({"stck_prpr": "Infinity"}, "unreadable answer"),
    ({"stck_prpr": "1e400"}, "outside the day's limits"),
    ({"stck_prpr": "210000"}, "outside the day's limits 14000..26000"),
], ids=["temp_stop_yn", "거래정지", "NaN", "Infinity", "1e400", "10x"])
def test_a_halted_ticker_or_a_price_kis_cannot_mean_leaves_the_tick_unpriced(
        account: Any, krx_calendar: Any, kis: FakeKis, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        fields: dict[str, str], logged: str) -> None:
    settings = paper_settings(kis, tmp_path)
    run(engine, account, krx_calendar, settings, D20, at(D20, 8, 45))
    kis.prices = {"HELD": "8900", "WIN": "20000"}
    kis.quote_fields = {"WIN": fields}
    result = run(monitor, account, krx_calendar, settings, D20, at(D20, 9, 0))
    assert result.status is Outcome.SUCCESS
    assert (result.summary["prices_observed"], result.summary["fills"]) == (False, 0)
    assert logged in caplog.text


def test_a_quote_client_refuses_to_post_before_anything_leaves(kis: FakeKis, tmp_path: Path) -> None:
    config = QuoteConfig(host=kis.url, tr_id="FHKST01010100", app_key=APP_KEY, app_secret=APP_SECRET,
                         requests_per_second=1000)
    with KisClient(config, cache_dir=tmp_path, read_only=True) as client:
        with pytest.raises(KisError, match="refused, this client only reads"):
            client.post(ORDER_PATH, "VTTC0012U", {"PDNO": "005930"})
    assert kis.requests == []
    kis.prices = {"005930": "71500"}
    quotes = KisQuotes(config, cache_dir=tmp_path, clock=FixedClock(at(D20, 9, 0)))
    assert quotes.prices(["005930"]) == {"005930": 71_500}


def test_quote_failures_are_logged_without_the_keys(kis: FakeKis, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = QuoteConfig(host=kis.url, tr_id="FHKST01010100", app_key=APP_KEY, app_secret="wrong" * 10,
                         requests_per_second=1000)
    assert KisQuotes(config, cache_dir=tmp_path, clock=FixedClock(at(D20, 9, 0))).prices(["005930"]) == {}
    assert "check KIS_APP_KEY and KIS_APP_SECRET" in caplog.text
    for secret in (APP_KEY, "wrong" * 10):
        assert secret not in caplog.text and secret not in repr(config)


@pytest.mark.parametrize(("values", "message"), [
    ({"paper_quotes": "kis", "data_provider": "simulated"},
     "ORCHESTRATOR_PAPER_QUOTES=kis prices dry run from KIS, but ORCHESTRATOR_DATA_PROVIDER=simulated prices its "
     "own ticks; expected a real provider (pykrx, stored) or ORCHESTRATOR_PAPER_QUOTES=auto/off"),
    ({"paper_quotes": "kis", "data_provider": "pykrx", "kis_app_key": APP_KEY},
     "ORCHESTRATOR_PAPER_QUOTES=kis needs KIS_APP_SECRET, not set in the environment or .env; expected the KIS "
     "open API app key and secret (no account number: quotes only), or ORCHESTRATOR_PAPER_QUOTES=auto/off"),
])
def test_paper_quotes_from_kis_where_they_cannot_work_are_refused_with_one_line(values: dict[str, str],
                                                                              message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        preflight(make_settings(**values), None, None)
    assert str(refused.value) == message


def test_auto_and_off_need_nothing(tmp_path: Path) -> None:
    for values in ({"paper_quotes": "auto", "data_provider": "pykrx"}, {"paper_quotes": "off"},
                   {"paper_quotes": "auto", "data_provider": "simulated", "kis_app_key": APP_KEY}):
        preflight(make_settings(**values), None, None)


KEYS = {"kis_app_key": APP_KEY, "kis_app_secret": APP_SECRET}


@pytest.mark.parametrize(("values", "pricing"), [
    ({"data_provider": "simulated", **KEYS}, Pricing.INTRADAY),
    ({"data_provider": "pykrx"}, Pricing.DAILY_BARS),
    ({"data_provider": "pykrx", "kis_app_key": APP_KEY}, Pricing.DAILY_BARS),  # the secret too, or no quotes
    ({"data_provider": "pykrx", **KEYS}, Pricing.LIVE_QUOTES),
    ({"data_provider": "stored", **KEYS}, Pricing.LIVE_QUOTES),
    ({"data_provider": "pykrx", "paper_quotes": "off", **KEYS}, Pricing.DAILY_BARS),
    ({"data_provider": "pykrx", "paper_quotes": "kis", **KEYS}, Pricing.LIVE_QUOTES),
])
def test_a_paper_account_takes_kis_quotes_on_a_real_provider_when_the_keys_are_set(values: dict[str, str],
                                                                                   pricing: Pricing) -> None:
    assert paper_pricing(make_settings(**values)) is pricing


def test_status_says_where_dry_run_prices_come_from_and_nothing_of_it_when_live() -> None:
    assert settings_summary(make_settings(data_provider="pykrx", **KEYS))["paper_prices"] == (
        "KIS quotes (read only); a session no tick priced settles on its daily bar")
    assert settings_summary(make_settings(data_provider="pykrx"))["paper_prices"] == (
        "daily bars (each session settled once its bar is collected)")
    assert "paper_prices" not in settings_summary(make_settings(dry_run="false", **KEYS))


def test_start_says_when_dry_run_reads_kis_quotes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    note_paper_quotes(make_settings(data_provider="pykrx"))
    assert caplog.text == ""
    note_paper_quotes(make_settings(data_provider="pykrx", **KEYS))
    assert ("dry run prices its ticks from KIS quotes at https://openapivts.koreainvestment.com:29443 (read only; "
            "orders stay paper; ORCHESTRATOR_PAPER_QUOTES=off for daily bars only)") in caplog.text
