"""The KIS adapter against a local fake of the KIS open API (fake_kis_server.py).

Expected values are written by hand from the fixtures in tests/data/kis/ (the fees:
commission 0.015 % floored, the 2026 sell tax 0.20 % floored)."""

from __future__ import annotations

import functools
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.common.settings import ConfigurationError
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.kis import (
    KisAuthError,
    KisBroker,
    KisClient,
    KisConfig,
    KisError,
    KisRateLimited,
    KisRefused,
    KisTokenRateLimited,
    KisTransportError,
    check_live_config,
    make_kis_broker,
)
from services.trading_engine.kis_api import client as client_module
from services.trading_engine.orders import (
    Cash,
    Fill,
    Order,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from tests.conftest import make_settings
from tests.trading_engine.fake_kis_server import (
    BALANCE_PATH,
    CANCEL_PATH,
    DAILY_PATH,
    ORDER_PATH,
    PRICE_PATH,
    FakeKis,
    serve,
)

SEOUL = ZoneInfo("Asia/Seoul")
APP_KEY = "PSkEyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU"  # 36 characters, like a real app key
APP_SECRET = "SeCrEt" + "x9Y8z7W6v5U4t3S2r1Q0" * 8 + "pO1n2M3l4K5j6I7h8G9f0"  # 187 characters
ACCOUNT = "12345678-01"
TODAY = date(2026, 3, 5)  # a Thursday
LIVE_TR_IDS = "buy=TTTC0012U,sell=TTTC0011U,cancel=TTTC0013U,balance=TTTC8434R,fills=TTTC0081R,quote=FHKST01010100"
PAPER_TR_IDS = "buy=VTTC0012U,sell=VTTC0011U,cancel=VTTC0013U,balance=VTTC8434R,fills=VTTC0081R,quote=FHKST01010100"


class FakeTime:
    """Wall clock, monotonic clock and sleep in one: sleeping moves both clocks and is
    recorded, nothing really waits (safe to share between threads)."""

    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.mono = 5000.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.mono += seconds
            self.wall += timedelta(seconds=seconds)

    def epoch(self) -> float:
        return self.wall.timestamp()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(datetime(2026, 3, 5, 10, 0, tzinfo=SEOUL))


def _fake(clock: FakeTime, environment: str = "paper") -> FakeKis:
    return FakeKis(app_key=APP_KEY, app_secret=APP_SECRET, cano="12345678", acnt_prdt_cd="01",
                   clock=clock.epoch, environment=environment)


@pytest.fixture
def kis(clock: FakeTime) -> Iterator[FakeKis]:
    """A paper-host fake; every test ends with the fake having no complaint about a request."""
    with serve(_fake(clock)) as state:
        yield state
    assert state.problems == []


@pytest.fixture
def live_kis(clock: FakeTime) -> Iterator[FakeKis]:
    with serve(_fake(clock, "live")) as state:
        yield state
    assert state.problems == []


def _settings(kis: FakeKis, **values: Any) -> Any:
    base = {"kis_app_key": APP_KEY, "kis_app_secret": APP_SECRET, "kis_account": ACCOUNT,
            "kis_requests_per_second": "2"}
    if kis.environment == "paper":
        base["kis_paper_host"] = kis.url
    else:
        base.update(kis_environment="live", kis_live_host=kis.url)
    return make_settings(**{**base, **values})


@pytest.fixture
def make_client(tmp_path: Path, clock: FakeTime) -> Callable[..., KisClient]:
    def build(kis: FakeKis, *, cache_dir: Path | None = None, transport: httpx.BaseTransport | None = None,
              **values: Any) -> KisClient:
        config = KisConfig.from_settings(_settings(kis, **values))
        return KisClient(config, cache_dir=cache_dir or tmp_path / "cache", clock=clock,
                         monotonic=clock.monotonic, sleep=clock.sleep, transport=transport)
    return build


@pytest.fixture
def make_broker(make_client: Callable[..., KisClient], clock: FakeTime) -> Callable[..., KisBroker]:
    def build(kis: FakeKis, *, transport: httpx.BaseTransport | None = None, **values: Any) -> KisBroker:
        settings = _settings(kis, **values)
        return KisBroker(KisConfig.from_settings(settings), make_client(kis, transport=transport, **values),
                         FeeSchedule.from_settings(settings), clock=clock)
    return build


class RefusedConnections(httpx.BaseTransport):
    """Real HTTP, except that the first ``times`` requests to ``path`` find no
    connection (nothing is sent, as when the host refuses it)."""

    def __init__(self, path: str, times: int) -> None:
        self.path, self.left = path, times
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.left > 0:
            self.left -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _request(side: Side = Side.BUY, *, ticker: str = "005930", quantity: int = 3,
             order_type: OrderType = OrderType.MARKET, limit_price: int | None = None,
             client_order_id: str = "c-1") -> OrderRequest:
    return OrderRequest(client_order_id=client_order_id, trading_date=TODAY, ticker=ticker, side=side,
                        quantity=quantity, order_type=order_type, limit_price=limit_price, reason="entry")


# --- configuration ---------------------------------------------------------------------------


def test_config_from_settings_splits_the_account_and_picks_the_paper_host_and_tr_ids() -> None:
    config = KisConfig.from_settings(make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET,
                                                   kis_account=ACCOUNT, kis_requests_per_second="4"))
    assert config.environment == "paper"
    assert config.host == "https://openapivts.koreainvestment.com:29443"
    assert dict(config.tr_ids) == {"buy": "VTTC0012U", "sell": "VTTC0011U", "cancel": "VTTC0013U",
                                   "balance": "VTTC8434R", "fills": "VTTC0081R", "quote": "FHKST01010100"}
    assert (config.cano, config.acnt_prdt_cd) == ("12345678", "01")
    assert config.requests_per_second == 4.0


def test_config_from_settings_live_uses_the_live_host_and_an_account_without_dash() -> None:
    config = KisConfig.from_settings(make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET,
                                                   kis_account="8765432102", kis_environment="live"))
    assert config.host == "https://openapi.koreainvestment.com:9443"
    assert config.tr_ids["buy"] == "TTTC0012U"
    assert (config.cano, config.acnt_prdt_cd) == ("87654321", "02")


def test_config_repr_hides_key_secret_and_account() -> None:
    config = KisConfig.from_settings(make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET,
                                                   kis_account=ACCOUNT))
    for shown in (repr(config), str(config)):
        assert APP_KEY not in shown and APP_SECRET not in shown and "12345678" not in shown
        assert "********01" in shown and "openapivts" in shown


def test_check_live_config_names_every_missing_credential_in_one_line() -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_live_config(make_settings())
    message = str(raised.value)
    assert "KIS_APP_KEY, KIS_APP_SECRET, KIS_ACCOUNT" in message
    assert "\n" not in message


def test_check_live_config_names_only_the_missing_one_and_never_shows_values() -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_live_config(make_settings(kis_app_key=APP_KEY, kis_account=ACCOUNT))
    message = str(raised.value)
    assert "KIS_APP_SECRET" in message and "KIS_APP_KEY" not in message and "KIS_ACCOUNT" not in message
    assert APP_KEY not in message and "12345678" not in message


def test_check_live_config_refuses_paper_pointing_at_the_live_host() -> None:
    settings = make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET, kis_account=ACCOUNT,
                             kis_paper_host="https://openapi.koreainvestment.com:9443")
    with pytest.raises(ConfigurationError) as raised:
        check_live_config(settings)
    assert str(raised.value) == (
        "ORCHESTRATOR_KIS_ENVIRONMENT=paper: ORCHESTRATOR_KIS_PAPER_HOST=https://openapi.koreainvestment.com:9443 "
        "is the live host; expected the paper (모의투자) host such as https://openapivts.koreainvestment.com:29443")


def test_check_live_config_refuses_paper_with_live_tr_ids() -> None:
    settings = make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET, kis_account=ACCOUNT,
                             kis_paper_tr_ids=LIVE_TR_IDS)
    with pytest.raises(ConfigurationError) as raised:
        check_live_config(settings)
    message = str(raised.value)
    assert "ORCHESTRATOR_KIS_PAPER_TR_IDS has live tr_ids buy=TTTC0012U, sell=TTTC0011U, cancel=TTTC0013U, " \
           "balance=TTTC8434R, fills=TTTC0081R" in message
    assert "starting with V" in message


def test_check_live_config_refuses_live_with_paper_tr_ids() -> None:
    settings = make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET, kis_account=ACCOUNT,
                             kis_environment="live", kis_live_tr_ids=PAPER_TR_IDS)
    with pytest.raises(ConfigurationError) as raised:
        check_live_config(settings)
    message = str(raised.value)
    assert message.startswith("ORCHESTRATOR_KIS_ENVIRONMENT=live: ORCHESTRATOR_KIS_LIVE_TR_IDS has paper tr_ids "
                              "buy=VTTC0012U, sell=VTTC0011U")
    assert "\n" not in message


def test_check_live_config_refuses_live_pointing_at_the_paper_host() -> None:
    settings = make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET, kis_account=ACCOUNT,
                             kis_environment="live", kis_live_host="https://openapivts.koreainvestment.com:29443")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_KIS_LIVE_HOST=https://openapivts.koreainvestment"
                                                 r".com:29443 is the paper host"):
        check_live_config(settings)


@pytest.mark.parametrize("environment", ["paper", "live"])
def test_check_live_config_passes_a_consistent_configuration(environment: str) -> None:
    settings = make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET, kis_account=ACCOUNT,
                             kis_environment=environment)
    assert check_live_config(settings) is None


def test_config_from_settings_checks_the_configuration_first() -> None:
    with pytest.raises(ConfigurationError, match="KIS_APP_KEY"):
        KisConfig.from_settings(make_settings())


# --- orders ----------------------------------------------------------------------------------


def test_buy_and_sell_use_the_paper_tr_ids(kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(kis)
    broker.place_order(_request(Side.BUY, client_order_id="b"))
    broker.place_order(_request(Side.SELL, client_order_id="s"))
    assert [r.tr_id for r in kis.api_requests(ORDER_PATH)] == ["VTTC0012U", "VTTC0011U"]
    assert (broker.name, broker.dry_run) == ("kis-paper", False)


def test_buy_and_sell_use_the_live_tr_ids(live_kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(live_kis)
    broker.place_order(_request(Side.BUY, client_order_id="b"))
    broker.place_order(_request(Side.SELL, client_order_id="s"))
    assert [r.tr_id for r in live_kis.api_requests(ORDER_PATH)] == ["TTTC0012U", "TTTC0011U"]
    assert broker.name == "kis-live"


def test_market_order_body_has_ord_dvsn_01_and_price_0(kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    make_broker(kis).place_order(_request(quantity=3))
    assert kis.api_requests(ORDER_PATH)[0].body == {
        "CANO": "12345678", "ACNT_PRDT_CD": "01", "PDNO": "005930", "ORD_DVSN": "01", "ORD_QTY": "3",
        "ORD_UNPR": "0", "EXCG_ID_DVSN_CD": "KRX"}


def test_limit_order_body_has_ord_dvsn_00_and_the_price(kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    make_broker(kis).place_order(_request(Side.SELL, ticker="035720", quantity=12, order_type=OrderType.LIMIT,
                                          limit_price=41300))
    assert kis.api_requests(ORDER_PATH)[0].body == {
        "CANO": "12345678", "ACNT_PRDT_CD": "01", "PDNO": "035720", "ORD_DVSN": "00", "ORD_QTY": "12",
        "ORD_UNPR": "41300", "EXCG_ID_DVSN_CD": "KRX"}


def test_place_order_returns_new_with_orgno_and_odno_as_order_id(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    order = make_broker(kis).place_order(_request(order_type=OrderType.LIMIT, limit_price=70000))
    assert order == Order(order_id="91252-0000012345", client_order_id="c-1", trading_date=TODAY,
                          ticker="005930", side=Side.BUY, order_type=OrderType.LIMIT, quantity=3,
                          limit_price=70000, status=OrderStatus.NEW, filled_quantity=0, reason="entry",
                          dry_run=False)


def test_same_client_order_id_returns_the_first_order_without_sending_again(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(kis)
    first = broker.place_order(_request())
    assert broker.place_order(_request()) is first
    assert len(kis.api_requests(ORDER_PATH)) == 1


def test_cancel_round_trip_sends_the_orgno_and_odno_and_the_order_leaves_open_orders(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(kis)
    placed = broker.place_order(_request(order_type=OrderType.LIMIT, limit_price=70000))
    assert "91252-0000012345" in [o.order_id for o in broker.open_orders()]

    cancelled = broker.cancel(placed.order_id)

    assert kis.api_requests(CANCEL_PATH)[0].tr_id == "VTTC0013U"
    assert kis.api_requests(CANCEL_PATH)[0].body == {
        "CANO": "12345678", "ACNT_PRDT_CD": "01", "KRX_FWDG_ORD_ORGNO": "91252", "ORGN_ODNO": "0000012345",
        "ORD_DVSN": "00", "RVSE_CNCL_DVSN_CD": "02", "ORD_QTY": "0", "ORD_UNPR": "0", "QTY_ALL_ORD_YN": "Y",
        "EXCG_ID_DVSN_CD": "KRX"}
    assert cancelled.status is OrderStatus.CANCELLED
    assert (cancelled.order_id, cancelled.client_order_id, cancelled.quantity) == ("91252-0000012345", "c-1", 3)
    assert "91252-0000012345" not in [o.order_id for o in broker.open_orders()]


def test_cancel_of_an_order_with_nothing_left_returns_it_without_a_cancel_request(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    order = make_broker(kis).cancel("91252-0000004101")  # filled in full in the fixture
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, 9)
    assert kis.api_requests(CANCEL_PATH) == []


def test_cancel_of_an_unknown_order_id_says_what_an_order_id_looks_like(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(kis)
    with pytest.raises(KisError, match="expected a KIS order id such as 91252-0000012345"):
        broker.cancel("c-1")
    with pytest.raises(KisError, match="not among the orders of 2026-03-05"):
        broker.cancel("91252-0000099999")


def test_refused_cancel_raises_order_rejected_with_kis_message(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(kis)
    placed = broker.place_order(_request(order_type=OrderType.LIMIT, limit_price=70000))
    kis.script.append(("nothing_to_cancel", CANCEL_PATH))
    with pytest.raises(OrderRejected, match="정정/취소할 수량이 없습니다") as raised:
        broker.cancel(placed.order_id)
    assert isinstance(raised.value, KisError) and raised.value.msg_cd == "APBK1676"


def test_refused_order_comes_back_rejected_with_kis_message(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    kis.script.append("refuse")
    order = make_broker(kis).place_order(_request(quantity=1000))
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "주문가능금액을 초과 했습니다 (APBK0952)"
    assert (order.filled_quantity, order.dry_run) == (0, False)


def test_limit_order_without_price_is_rejected_before_sending(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    order = make_broker(kis).place_order(_request(order_type=OrderType.LIMIT, limit_price=None))
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "a limit order needs a limit price above 0"
    assert kis.api_requests() == []


def test_open_orders_are_todays_orders_with_shares_left(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    assert make_broker(kis).open_orders() == [
        Order(order_id="91252-0000004103", client_order_id="", trading_date=TODAY, ticker="000660",
              side=Side.BUY, order_type=OrderType.LIMIT, quantity=20, limit_price=181000,
              status=OrderStatus.PARTIALLY_FILLED, filled_quantity=5, reason="", dry_run=False),
        Order(order_id="91252-0000004104", client_order_id="", trading_date=TODAY, ticker="005380",
              side=Side.BUY, order_type=OrderType.LIMIT, quantity=3, limit_price=200000,
              status=OrderStatus.NEW, filled_quantity=0, reason="", dry_run=False),
    ]
    query = kis.api_requests(DAILY_PATH)[0].query
    assert (query["INQR_STRT_DT"], query["INQR_END_DT"], query["CCLD_DVSN"]) == ("20260305", "20260305", "02")


# --- account -------------------------------------------------------------------------------


def test_positions_follow_both_balance_pages_and_skip_zero_holdings(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    assert make_broker(kis).positions() == [
        Position(ticker="005930", quantity=10, cost=700000, opened_on=TODAY, high_water=71500),
        Position(ticker="000660", quantity=5, cost=902500, opened_on=TODAY, high_water=181000),
        Position(ticker="035720", quantity=25, cost=1031000, opened_on=TODAY, high_water=40850),
    ]
    first, second = kis.api_requests(BALANCE_PATH)
    assert (first.headers.get("tr_cont", ""), first.query["CTX_AREA_NK100"]) == ("", "")
    assert (second.headers["tr_cont"], second.query["CTX_AREA_NK100"]) == ("N", "12345678^01^000660")
    assert second.query["CTX_AREA_FK100"] == "12345678^01^N^N^02^01^N^N"
    assert first.tr_id == "VTTC8434R"


def test_cash_is_the_d2_deposit_with_the_d0_deposit_settled(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    assert make_broker(kis).cash() == Cash(available=3438566, settled=3000000)
    assert len(kis.api_requests(BALANCE_PATH)) == 1  # the summary is on the first page


def test_cash_settled_is_capped_at_available_after_a_buy(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    kis.cash_summary = {"dnca_tot_amt": "5000000", "nxdy_excc_amt": "5000000", "prvs_rcdl_excc_amt": "4100000"}
    assert make_broker(kis).cash() == Cash(available=4100000, settled=4100000)


def test_fills_have_fees_from_the_fee_schedule_and_settle_two_weekdays_later(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    # sell 9 x 70,150 = 631,350: commission 94.70 -> 94, tax 0.20 % = 1,262.70 -> 1,262
    # buy 7 x 41,250 = 288,750: commission 43.31 -> 43; buy 5 x 180,500 = 902,500: 135.375 -> 135
    # trade date Thursday 2026-03-05 -> settles Monday 2026-03-09
    assert make_broker(kis).fills(TODAY) == [
        Fill(order_id="91252-0000004101", ticker="005930", side=Side.SELL, quantity=9, price=70150,
             commission=94, tax=1262, trade_date=TODAY, settles_on=date(2026, 3, 9),
             filled_at=datetime(2026, 3, 5, 9, 30, 12, tzinfo=SEOUL), dry_run=False),
        Fill(order_id="91252-0000004102", ticker="035720", side=Side.BUY, quantity=7, price=41250,
             commission=43, tax=0, trade_date=TODAY, settles_on=date(2026, 3, 9),
             filled_at=datetime(2026, 3, 5, 9, 5, 1, tzinfo=SEOUL), dry_run=False),
        Fill(order_id="91252-0000004103", ticker="000660", side=Side.BUY, quantity=5, price=180500,
             commission=135, tax=0, trade_date=TODAY, settles_on=date(2026, 3, 9),
             filled_at=datetime(2026, 3, 5, 9, 15, 44, tzinfo=SEOUL), dry_run=False),
    ]
    request = kis.api_requests(DAILY_PATH)[0]
    assert (request.tr_id, request.query["CCLD_DVSN"], request.query["INQR_STRT_DT"]) == \
        ("VTTC0081R", "01", "20260305")


def test_fills_use_the_settlement_calendar_when_given(
        kis: FakeKis, make_client: Callable[..., KisClient], clock: FakeTime) -> None:
    settings = _settings(kis)
    broker = KisBroker(KisConfig.from_settings(settings), make_client(kis), FeeSchedule.from_settings(settings),
                       clock=clock, settlement_date=lambda day: date(2026, 3, 10))
    assert {fill.settles_on for fill in broker.fills(TODAY)} == {date(2026, 3, 10)}


def test_quotes_ask_inquire_price_once_per_ticker(kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    assert make_broker(kis).quotes(["005930", "035720"]) == {"005930": 71500, "035720": 40850}
    requests = kis.api_requests(PRICE_PATH)
    assert [r.query for r in requests] == [{"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
                                          {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "035720"}]
    assert {r.tr_id for r in requests} == {"FHKST01010100"}


def test_make_kis_broker_builds_the_broker_the_settings_describe(
        kis: FakeKis, clock: FakeTime, tmp_path: Path) -> None:
    broker = make_kis_broker(_settings(kis, kis_requests_per_second="1000"), cache_dir=tmp_path, clock=clock)
    assert (broker.name, broker.dry_run) == ("kis-paper", False)
    assert broker.quotes(["035720"]) == {"035720": 40850}


# --- token ---------------------------------------------------------------------------------


def test_token_is_issued_once_and_reused_across_calls(kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    broker = make_broker(kis)
    broker.quotes(["005930"])
    broker.cash()
    assert len(kis.token_requests()) == 1
    assert kis.token_requests()[0].body == {"grant_type": "client_credentials", "appkey": APP_KEY,
                                            "appsecret": APP_SECRET}
    assert {r.headers["authorization"] for r in kis.api_requests()} == {f"Bearer {kis.tokens[0]}"}


def test_token_is_shared_across_clients_through_a_0600_cache_file(
        kis: FakeKis, make_client: Callable[..., KisClient], tmp_path: Path) -> None:
    first = make_client(kis)
    first.get(PRICE_PATH, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})
    second = make_client(kis)
    second.get(PRICE_PATH, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})

    assert len(kis.token_requests()) == 1
    [cache_file] = (tmp_path / "cache").iterdir()
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    assert APP_KEY not in cache_file.name and APP_KEY not in cache_file.read_text()
    assert APP_SECRET not in cache_file.read_text()


def test_the_token_cache_directories_are_created_0700_whatever_the_umask(
        kis: FakeKis, make_client: Callable[..., KisClient], tmp_path: Path) -> None:
    cache = tmp_path / "home" / ".cache" / "krx"  # none of it exists yet
    previous = os.umask(0)
    try:
        make_client(kis, cache_dir=cache).get(PRICE_PATH, "FHKST01010100",
                                              {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})
    finally:
        os.umask(previous)
    [token_file] = cache.iterdir()
    assert [oct(stat.S_IMODE(path.stat().st_mode)) for path in
            (tmp_path / "home", tmp_path / "home" / ".cache", cache, token_file)] == ["0o700", "0o700", "0o700",
                                                                                      "0o600"]


def test_token_is_renewed_five_minutes_before_it_expires(
        kis: FakeKis, make_client: Callable[..., KisClient], clock: FakeTime) -> None:
    client = make_client(kis)
    quote = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    client.get(PRICE_PATH, "FHKST01010100", quote)  # the token expires 2026-03-06 10:00
    clock.advance(timedelta(hours=23, minutes=54).total_seconds())
    client.get(PRICE_PATH, "FHKST01010100", quote)
    assert len(kis.token_requests()) == 1
    clock.advance(timedelta(minutes=2).total_seconds())  # 09:56, within 5 minutes of expiry
    client.get(PRICE_PATH, "FHKST01010100", quote)
    assert len(kis.token_requests()) == 2


def test_expired_token_is_reissued_once_and_the_call_retried(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    broker = make_broker(kis)
    broker.quotes(["005930"])
    clock.advance(120)
    kis.script.append("expired_token")

    assert broker.quotes(["005930"]) == {"005930": 71500}

    assert len(kis.token_requests()) == 2
    assert [r.headers["authorization"] for r in kis.api_requests(PRICE_PATH)] == [
        f"Bearer {kis.tokens[0]}", f"Bearer {kis.tokens[0]}", f"Bearer {kis.tokens[1]}"]


def test_second_token_within_a_minute_raises_without_asking_kis_again(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    broker = make_broker(kis)
    broker.quotes(["005930"])
    clock.advance(20)
    kis.script.append("expired_token")
    with pytest.raises(KisTokenRateLimited) as raised:
        broker.quotes(["005930"])
    assert len(kis.token_requests()) == 1
    # token asked for at 10:00:00, the quote's rate-limit pause to 10:00:00.5, then 20 s
    assert raised.value.retry_after == 39.5


def test_kis_refusing_a_second_token_egw00133_raises_and_is_not_hammered(
        kis: FakeKis, make_client: Callable[..., KisClient], tmp_path: Path) -> None:
    quote = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    make_client(kis, cache_dir=tmp_path / "a").get(PRICE_PATH, "FHKST01010100", quote)
    other = make_client(kis, cache_dir=tmp_path / "b")  # no shared cache: it asks KIS for its own token
    with pytest.raises(KisTokenRateLimited, match="EGW00133"):
        other.get(PRICE_PATH, "FHKST01010100", quote)
    with pytest.raises(KisTokenRateLimited):
        other.get(PRICE_PATH, "FHKST01010100", quote)
    assert len(kis.token_requests()) == 2


def test_wrong_app_secret_is_an_auth_error(kis: FakeKis, make_client: Callable[..., KisClient]) -> None:
    client = make_client(kis, kis_app_secret="not-the-secret")
    with pytest.raises(KisAuthError, match="EGW00105"):
        client.get(PRICE_PATH, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})


# --- rate limits and transport ------------------------------------------------------------------


def test_requests_are_spaced_by_the_rate_limit(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    broker = make_broker(kis, kis_requests_per_second="4")
    broker.quotes(["005930", "035720", "005930"])
    # token request, then three quotes each a quarter second after the one before
    assert clock.sleeps == [0.25, 0.25, 0.25]
    clock.advance(1.0)
    broker.quotes(["005930"])
    assert clock.sleeps == [0.25, 0.25, 0.25]


def test_clients_of_one_host_and_app_key_share_one_pace_through_the_cache_dir(
        kis: FakeKis, clock: FakeTime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.trading_engine.kis_api.client.shared_pace",
                        functools.partial(client_module.shared_pace, clock=clock.monotonic, sleep=clock.sleep))
    config = KisConfig.from_settings(_settings(kis))  # 2 requests a second
    first, second = (KisClient(config, cache_dir=tmp_path, clock=clock) for _ in range(2))  # as two processes
    quote = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}
    first.get(PRICE_PATH, "FHKST01010100", quote)  # the token at once, the quote half a second later
    second.get(PRICE_PATH, "FHKST01010100", quote)  # the same token file, the same pace
    assert clock.sleeps == [0.5, 0.5]
    assert len(kis.token_requests()) == 1
    pace = [path for path in tmp_path.iterdir() if path.name.startswith("kis-pace-")]
    assert len(pace) == 1 and kis.app_key not in pace[0].name + pace[0].read_text()


def test_too_many_requests_egw00201_is_retried_after_a_pause(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    broker = make_broker(kis)  # 2 requests a second
    kis.script.append("rate_limited")
    assert broker.quotes(["005930"]) == {"005930": 71500}
    assert len(kis.api_requests(PRICE_PATH)) == 2
    assert clock.sleeps == [0.5, 1.0]  # the rate limit after the token request, then the pause


def test_too_many_requests_gives_up_after_three_retries(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    kis.script.extend(["rate_limited"] * 4)
    with pytest.raises(KisRateLimited, match="EGW00201"):
        make_broker(kis).quotes(["005930"])
    assert len(kis.api_requests(PRICE_PATH)) == 4


def test_http_500_is_a_transport_error_and_an_order_is_not_resent(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    kis.script.append("http500")
    with pytest.raises(KisTransportError, match="HTTP 500"):
        make_broker(kis).place_order(_request())
    assert len(kis.api_requests(ORDER_PATH)) == 1


def test_an_answer_that_is_not_json_is_a_transport_error(
        kis: FakeKis, make_broker: Callable[..., KisBroker]) -> None:
    kis.script.append("garbage")
    with pytest.raises(KisTransportError, match="not a JSON object"):
        make_broker(kis).cash()


def test_an_unreachable_host_is_a_transport_error(clock: FakeTime, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(kis_app_key=APP_KEY, kis_app_secret=APP_SECRET, kis_account=ACCOUNT,
                             kis_paper_host=f"http://127.0.0.1:{port}")
    client = KisClient(KisConfig.from_settings(settings), cache_dir=tmp_path, clock=clock,
                       monotonic=clock.monotonic, sleep=clock.sleep, timeout=2.0)
    with pytest.raises(KisTransportError, match="cannot reach"):
        client.get(PRICE_PATH, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})
    assert clock.sleeps == [1.0, 2.0, 4.0]  # the token request tried four times, the pause doubling


# --- retries with backoff ------------------------------------------------------------------------


def test_a_read_that_gets_http_500_is_asked_again_after_a_backoff_and_succeeds(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    kis.script.extend([("http500", PRICE_PATH)] * 2)
    assert make_broker(kis).quotes(["005930"]) == {"005930": 71500}
    assert len(kis.api_requests(PRICE_PATH)) == 3
    # the pace after the token request, then backoffs of 1 s and 2 s (each longer than the pace)
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_a_read_whose_connection_drops_is_asked_again(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    kis.script.append(("take_then_drop", BALANCE_PATH))
    assert make_broker(kis).cash() == Cash(available=3438566, settled=3000000)
    assert len(kis.api_requests(BALANCE_PATH)) == 2
    assert clock.sleeps == [0.5, 1.0]


def test_a_read_gives_up_after_three_retries_with_a_transport_error(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    kis.script.extend([("http500", PRICE_PATH)] * 4)
    with pytest.raises(KisTransportError, match="HTTP 500"):
        make_broker(kis).quotes(["005930"])
    assert len(kis.api_requests(PRICE_PATH)) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_an_order_that_found_no_connection_is_sent_once_connected(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    broker = make_broker(kis, transport=RefusedConnections(ORDER_PATH, 1))
    order = broker.place_order(_request())
    assert (order.status, order.order_id) == (OrderStatus.NEW, "91252-0000012345")
    assert len(kis.order_posts()) == 1  # the refused attempt never reached KIS
    assert clock.sleeps == [0.5, 1.0]  # the pace after the token request, then the backoff


def test_an_order_whose_connection_drops_is_not_sent_again(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    kis.script.append(("take_then_drop", ORDER_PATH))
    before = len(kis.orders)
    with pytest.raises(KisTransportError, match="no answer"):
        make_broker(kis).place_order(_request())
    assert len(kis.order_posts()) == 1 and len(kis.orders) == before + 1  # KIS has it, once
    assert clock.sleeps == [0.5]  # the pace after the token request; no backoff


def test_a_refused_order_is_not_retried(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    kis.script.append(("refuse", ORDER_PATH))
    assert make_broker(kis).place_order(_request()).status is OrderStatus.REJECTED
    assert len(kis.order_posts()) == 1
    assert clock.sleeps == [0.5]  # the pace after the token request; no backoff


def test_a_refused_read_is_not_retried(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime) -> None:
    with pytest.raises(KisRefused, match="FAKE0404"):
        make_broker(kis).quotes(["999999"])  # a ticker the fake does not know
    assert len(kis.api_requests(PRICE_PATH)) == 1
    assert clock.sleeps == [0.5]  # the pace after the token request only


def test_refused_credentials_are_not_retried(kis: FakeKis, make_client: Callable[..., KisClient],
                                             clock: FakeTime) -> None:
    with pytest.raises(KisAuthError, match="EGW00105"):
        make_client(kis, kis_app_secret="not-the-secret").get(
            PRICE_PATH, "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"})
    assert (len(kis.token_requests()), kis.api_requests(), clock.sleeps) == (1, [], [])


def test_a_plain_http_host_off_the_loopback_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    config = KisConfig(environment="paper", host="http://openapivts.koreainvestment.com:29443", tr_ids={},
                       app_key=APP_KEY, app_secret=APP_SECRET, cano="12345678", acnt_prdt_cd="01",
                       requests_per_second=2.0)
    with pytest.raises(ConfigurationError, match=r"expected https://"):
        KisClient(config, cache_dir=tmp_path)


# --- secrets stay out of logs --------------------------------------------------------------------


def test_logs_and_errors_never_show_the_secret_key_token_or_account(
        kis: FakeKis, make_broker: Callable[..., KisBroker], clock: FakeTime,
        caplog: pytest.LogCaptureFixture) -> None:
    for adapter in ("services.trading_engine.kis", "services.trading_engine.kis_api"):
        caplog.set_level(logging.DEBUG, logger=adapter)
    broker = make_broker(kis)
    broker.place_order(_request(client_order_id="a"))
    kis.script.append("refuse")
    broker.place_order(_request(client_order_id="b"))
    broker.positions()
    broker.fills(TODAY)
    clock.advance(120)
    kis.script.append("expired_token")
    broker.cash()
    kis.script.append("rate_limited")
    broker.quotes(["005930"])
    kis.script.append("expired_token")
    errors = []
    with pytest.raises(KisTokenRateLimited) as raised:
        broker.quotes(["005930"])
    errors.append(str(raised.value))

    text = caplog.text + "\n".join(errors)
    assert "EGW00123" in text and "VTTC0012U" in text and "********01" in text  # the logs do say something
    for secret in (APP_KEY, APP_SECRET, "12345678", *kis.tokens):
        assert secret not in text


def test_no_logger_shows_the_secret_key_token_or_account_even_at_debug(
        kis: FakeKis, make_broker: Callable[..., KisBroker], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's and httpcore's included
    broker = make_broker(kis)
    broker.place_order(_request())
    broker.cash()
    kis.script.append(("http500", PRICE_PATH))
    broker.quotes(["005930"])
    assert "retry 1 of 3" in caplog.text
    for secret in (APP_KEY, APP_SECRET, "12345678", *kis.tokens):
        assert secret not in caplog.text


# --- the risk gate in front of the live broker ---------------------------------------------------


def test_a_halted_account_sends_kis_no_buy_but_still_its_exits(
        kis: FakeKis, make_broker: Callable[..., KisBroker], session_factory: Any, krx_calendar: Any,
        clock: FakeTime) -> None:
    from services.common.clock import FixedClock
    from services.common.job_api import JobContext
    from services.risk_manager.halts import halt_trading
    from services.trading_engine.gate import RiskGate
    from services.trading_engine.live_broker import LiveBroker
    from services.trading_engine.live_orders import send_pending
    from services.trading_engine.order_book import submit

    broker, now = make_broker(kis), clock.now()
    ctx = JobContext(job_name="position_monitoring", trading_date=TODAY, scheduled_for=now,
                     settings=_settings(kis, user_id="u1", dry_run="false"), session_factory=session_factory,
                     clock=FixedClock(now), calendar=krx_calendar)
    with session_factory.begin() as session:
        connection = session.connection()
        halt_trading(connection, "u1", "broker maintenance", by="manual", at=now)
        live = LiveBroker(broker, connection, user_id="u1", clock=FixedClock(now))
        gate = RiskGate.open(ctx, connection, live, now, {"005930": 71_500})
        buy = submit(live, connection, _request(client_order_id="live:u1:buy"), now, gate)
        sell = submit(live, connection, _request(Side.SELL, quantity=10, client_order_id="live:u1:exit"), now, gate)
    assert buy.status is OrderStatus.REJECTED and buy.reason.startswith("risk: trading halted: broker maintenance")
    assert sell.status is OrderStatus.NEW
    assert kis.api_requests(ORDER_PATH) == []  # recorded; sent once the transaction has committed
    send_pending(broker, session_factory, "u1", clock)
    assert [r.tr_id for r in kis.api_requests(ORDER_PATH)] == ["VTTC0011U"]  # the sell only
