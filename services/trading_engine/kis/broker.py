"""The :class:`~services.trading_engine.orders.Broker` protocol on the KIS open API:
order-cash, order-rvsecncl, inquire-balance, inquire-daily-ccld, inquire-price."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.common.clock import Clock
from services.common.settings import Settings
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.kis.config import KisConfig
from services.trading_engine.kis.order_rows import (
    SEOUL,
    add_weekdays,
    order_from_row,
    order_id,
    row_date,
    row_moment,
    row_side,
    row_time,
)
from services.trading_engine.kis_api.client import KisClient
from services.trading_engine.kis_api.errors import KisError, KisOrderRejected, KisRefused
from services.trading_engine.kis_api.parsing import rows, text, whole
from services.trading_engine.kis_api.quotes import current_quote
from services.trading_engine.orders import (
    Cash,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    order_number_key,
)

logger = logging.getLogger(__name__)

ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
DAILY_ORDERS_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"


class KisBroker:
    """The Broker protocol on the KIS open API (paper or live host per the config).

    ``clock`` gives "today" in Asia/Seoul (open orders, cancels, positions' ``opened_on``).
    ``settlement_date`` maps a trade date to its settlement date; without it the
    settlement date is trade date + 2 weekdays, which ignores holidays (pass one built
    on the market calendar to get T+2 sessions).
    """

    dry_run = False

    def __init__(
        self,
        config: KisConfig,
        client: KisClient,
        fees: FeeSchedule,
        *,
        clock: Clock,
        settlement_date: Callable[[date], date] | None = None,
    ) -> None:
        self.name = config.broker_name
        self._config = config
        self._client = client
        self._fees = fees
        self._clock = clock
        self._settlement_date = settlement_date or _two_weekdays_later
        self._placed: dict[str, Order] = {}  # client_order_id -> order
        self._client_ids: dict[str, str] = {}  # order_id -> client_order_id
        logger.info("KIS broker %s on %s, account %s", self.name, config.host, config.masked_account)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _today(self) -> date:
        return self._clock.now().astimezone(SEOUL).date()

    # orders

    def place_order(self, request: OrderRequest) -> Order:
        """Send a cash order. Market: ORD_DVSN "01", ORD_UNPR "0"; limit: "00" at the
        limit price. The order id is ``{KRX_FWDG_ORD_ORGNO}-{ODNO}`` (a cancel needs
        both). A refusal by KIS comes back ``rejected`` with KIS's message."""
        if request.client_order_id in self._placed:
            return self._placed[request.client_order_id]
        problem = _request_problem(request)
        order = _rejected(request, problem) if problem else self._send_order(request)
        self._placed[request.client_order_id] = order
        self._client_ids[order.order_id] = request.client_order_id
        return order

    def _send_order(self, request: OrderRequest) -> Order:
        market = request.order_type is OrderType.MARKET
        body = {
            **self._config.account(),
            "PDNO": request.ticker,
            "ORD_DVSN": "01" if market else "00",
            "ORD_QTY": str(request.quantity),
            "ORD_UNPR": "0" if market else str(request.limit_price),
            "EXCG_ID_DVSN_CD": "KRX",
        }
        tr_id = self._config.tr_ids["buy" if request.side is Side.BUY else "sell"]
        try:
            answer = self._client.post(ORDER_PATH, tr_id, body)
        except KisRefused as exc:
            logger.warning("KIS refused %s %s x%d (%s): %s", request.side.value, request.ticker,
                           request.quantity, request.client_order_id, exc.reason)
            return _rejected(request, exc.reason)
        output = rows(answer.body.get("output"))
        orgno = text(output[0], "KRX_FWDG_ORD_ORGNO") if output else ""
        odno = text(output[0], "ODNO") if output else ""
        if not (orgno and odno):
            raise KisError(f"KIS took order {request.client_order_id} but returned no KRX_FWDG_ORD_ORGNO/ODNO; "
                           "check open_orders() before sending it again")
        placed_id = f"{orgno}-{odno}"
        logger.info("KIS order %s: %s %s x%d %s (%s)", placed_id, request.side.value, request.ticker,
                    request.quantity, request.order_type.value, request.client_order_id)
        return Order(order_id=placed_id, client_order_id=request.client_order_id,
                     trading_date=request.trading_date, ticker=request.ticker, side=request.side,
                     order_type=request.order_type, quantity=request.quantity,
                     limit_price=None if market else request.limit_price, status=OrderStatus.NEW,
                     filled_quantity=0, reason=request.reason, dry_run=False)

    def cancel(self, order_id: str) -> Order:
        """Cancel what is left of one of today's orders (order-rvsecncl, RVSE_CNCL_DVSN_CD
        "02", QTY_ALL_ORD_YN "Y"). The order is looked up in today's list first; one with
        nothing left comes back as it is. ``cancelled`` means KIS accepted the cancel."""
        orgno, _, odno = order_id.partition("-")
        if not (orgno.isdigit() and odno.isdigit()):
            raise KisError(f"cannot cancel {order_id!r}: expected a KIS order id such as 91252-0000012345 "
                           "(KRX_FWDG_ORD_ORGNO-ODNO)")
        today = self._today()
        current = next((order for order in self._orders_of(today, filled="00")
                        if order_number_key(order.order_id) == order_number_key(order_id)), None)
        if current is None:
            raise KisError(f"cannot cancel {order_id}: not among the orders of {today}; KIS cancels only "
                           "today's open orders")
        if not current.is_open:
            return current
        body = {
            **self._config.account(),
            "KRX_FWDG_ORD_ORGNO": orgno,
            "ORGN_ODNO": odno,
            "ORD_DVSN": "01" if current.order_type is OrderType.MARKET else "00",
            "RVSE_CNCL_DVSN_CD": "02",
            "ORD_QTY": "0",
            "ORD_UNPR": "0",
            "QTY_ALL_ORD_YN": "Y",
            "EXCG_ID_DVSN_CD": "KRX",
        }
        try:
            self._client.post(CANCEL_PATH, self._config.tr_ids["cancel"], body)
        except KisRefused as exc:
            raise KisOrderRejected(f"KIS refused to cancel {order_id}: {exc.reason}",
                                   msg_cd=exc.msg_cd, msg1=exc.msg1) from None
        logger.info("KIS order %s: cancel accepted (%d of %d filled)", order_id, current.filled_quantity,
                    current.quantity)
        return replace(current, status=OrderStatus.CANCELLED)

    def open_orders(self) -> list[Order]:
        """Today's orders with shares left (inquire-daily-ccld, CCLD_DVSN "02" 미체결)."""
        return [order for order in self._orders_of(self._today(), filled="02") if order.is_open]

    def orders_placed_on(self, day: date) -> list[tuple[Order, datetime | None]]:
        """The orders placed on ``day`` with their order time (``ord_tmd``, Seoul; None
        if KIS gave none): the original orders only, not the correction and cancel
        orders KIS lists beside them (those carry ``orgn_odno``). What reconciles an
        order whose answer was lost (see ``live_orders``)."""
        return [(self._order_from_row(row), row_moment(day, text(row, "ord_tmd")))
                for row in self._daily_rows(day, "00") if not text(row, "orgn_odno")]

    def _orders_of(self, day: date, *, filled: str) -> list[Order]:
        """The day's orders; ``filled``: CCLD_DVSN "00" all, "01" filled, "02" not filled."""
        return [self._order_from_row(row) for row in self._daily_rows(day, filled)]

    def _order_from_row(self, row: dict[str, Any]) -> Order:
        return order_from_row(row, self._client_ids.get(order_id(row), ""))

    def _daily_rows(self, day: date, filled: str) -> list[dict[str, Any]]:
        yyyymmdd = day.strftime("%Y%m%d")
        params = {**self._config.account(), "INQR_STRT_DT": yyyymmdd, "INQR_END_DT": yyyymmdd,
                  "SLL_BUY_DVSN_CD": "00", "INQR_DVSN": "00", "PDNO": "", "CCLD_DVSN": filled, "ORD_GNO_BRNO": "",
                  "ODNO": "", "INQR_DVSN_3": "00", "INQR_DVSN_1": "", "CTX_AREA_FK100": "", "CTX_AREA_NK100": "",
                  "EXCG_ID_DVSN_CD": "KRX"}
        pages = self._client.get_pages(DAILY_ORDERS_PATH, self._config.tr_ids["fills"], params)
        return [row for page in pages for row in rows(page.get("output1"))]

    # account

    def positions(self) -> list[Position]:
        """Holdings with ``hldg_qty`` > 0 from inquire-balance ``output1``, all pages.

        ``cost`` is ``pchs_amt`` (매입금액); KIS's purchase amount does not include the
        buy commission, so cost is understated by about 0.015 %. ``high_water`` is the
        current price ``prpr`` (KIS keeps no high since entry: keep the larger of this
        and your own record) and ``opened_on`` is today (KIS gives no entry date).
        """
        pages = self._client.get_pages(BALANCE_PATH, self._config.tr_ids["balance"], self._balance_params())
        today = self._today()
        positions: dict[str, Position] = {}
        for row in (row for page in pages for row in rows(page.get("output1"))):
            quantity = whole(row, "hldg_qty")
            if quantity <= 0:
                continue  # sold today: KIS lists it with 0 shares until D+2
            ticker = text(row, "pdno")
            cost, price = whole(row, "pchs_amt"), whole(row, "prpr")
            if ticker in positions:  # one ticker on two rows (e.g. by loan date)
                held = positions[ticker]
                quantity, cost, price = held.quantity + quantity, held.cost + cost, max(held.high_water, price)
            positions[ticker] = Position(ticker=ticker, quantity=quantity, cost=cost, opened_on=today,
                                         high_water=price)
        return list(positions.values())

    def cash(self) -> Cash:
        """From inquire-balance ``output2`` (first page).

        ``available`` is ``prvs_rcdl_excc_amt`` (가수도정산금액, the D+2 deposit): cash
        after every trade so far settles, so today's sale proceeds count and today's
        buys are paid; that is what funds new buys. ``settled`` is ``dnca_tot_amt``
        (예수금총금액, the deposit today, D+0) capped at ``available``: after a buy the
        D+0 deposit still holds money that is owed at settlement. (``nxdy_excc_amt``
        is the D+1 deposit, unused.)
        """
        answer = self._client.get(BALANCE_PATH, self._config.tr_ids["balance"], self._balance_params())
        summary = rows(answer.body.get("output2"))
        if not summary:
            raise KisError("KIS inquire-balance answered without output2; expected the cash summary")
        available = whole(summary[0], "prvs_rcdl_excc_amt")
        deposit = whole(summary[0], "dnca_tot_amt")
        return Cash(available=available, settled=min(deposit, available))

    def _balance_params(self) -> dict[str, str]:
        return {**self._config.account(), "AFHR_FLPR_YN": "N", "OFL_YN": "", "INQR_DVSN": "02",
                "UNPR_DVSN": "01", "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00",
                "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""}

    def fills(self, day: date) -> list[Fill]:
        """Filled orders of ``day`` (inquire-daily-ccld, CCLD_DVSN "01"; within KIS's
        three-month window).

        One fill per order, as KIS's daily list totals each order: quantity
        ``tot_ccld_qty``, price ``avg_prvs`` (the average fill price, rounded to KRW),
        ``filled_at`` the order's time ``ord_tmd`` (the list has no fill time). KIS's
        list gives no per-fill fees, so commission and tax are estimated with the
        FeeSchedule on ``tot_ccld_amt``. ``settles_on`` comes from ``settlement_date``
        (default: 2 weekdays later, holidays ignored, so approximate).
        """
        fills = []
        for row in self._daily_rows(day, "01"):
            quantity = whole(row, "tot_ccld_qty")
            if quantity <= 0:
                continue
            price = whole(row, "avg_prvs")
            amount = whole(row, "tot_ccld_amt") or quantity * price
            side = row_side(row)
            trade_date = row_date(row, "ord_dt") if text(row, "ord_dt") else day
            fills.append(Fill(
                order_id=order_id(row), ticker=text(row, "pdno"), side=side, quantity=quantity, price=price,
                commission=self._fees.commission(amount),
                tax=self._fees.sell_tax(amount, trade_date) if side is Side.SELL else 0,
                trade_date=trade_date, settles_on=self._settlement_date(trade_date),
                filled_at=row_time(trade_date, text(row, "ord_tmd")), dry_run=False))
        return fills

    # quotes

    def quotes(self, tickers: list[str]) -> dict[str, int]:
        """Current prices (inquire-price ``stck_prpr``), one paced request per ticker."""
        return {ticker: current_quote(self._client, self._config.tr_ids["quote"], ticker).price for ticker in tickers}


def _two_weekdays_later(day: date) -> date:
    return add_weekdays(day, 2)


def _request_problem(request: OrderRequest) -> str:
    """Why an order cannot be sent as it is, or "" if it can."""
    if request.quantity <= 0:
        return f"quantity {request.quantity}: expected whole shares above 0"
    if request.order_type is OrderType.LIMIT and (request.limit_price is None or request.limit_price <= 0):
        return "a limit order needs a limit price above 0"
    if request.order_type is OrderType.MARKET and request.limit_price is not None:
        return f"a market order takes no limit price (got {request.limit_price}); use a limit order"
    return ""


def _rejected(request: OrderRequest, reason: str) -> Order:
    return Order(order_id=f"rejected:{request.client_order_id}", client_order_id=request.client_order_id,
                 trading_date=request.trading_date, ticker=request.ticker, side=request.side,
                 order_type=request.order_type, quantity=request.quantity, limit_price=request.limit_price,
                 status=OrderStatus.REJECTED, filled_quantity=0, reason=reason, dry_run=False)


def make_kis_broker(settings: Settings, *, cache_dir: Path, clock: Clock,
                    settlement_date: Callable[[date], date] | None = None) -> KisBroker:
    """The KIS broker the settings describe (checked by :func:`~.config.check_live_config`)."""
    config = KisConfig.from_settings(settings)
    client = KisClient(config, cache_dir=cache_dir, clock=clock)
    return KisBroker(config, client, FeeSchedule.from_settings(settings), clock=clock,
                     settlement_date=settlement_date)
