"""The rows of KIS's order answers read into ours: the side, the order date (YYYYMMDD)
and time (HHMMSS, Seoul), the order number a cancel needs, and an inquire-daily-ccld
row as an :class:`Order`. Only the live adapter reads them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from services.common.market_calendar import KRX_TZ
from services.trading_engine.kis_api.errors import KisError
from services.trading_engine.kis_api.parsing import field, text, whole
from services.trading_engine.orders import Order, OrderStatus, OrderType, Side

SEOUL = KRX_TZ


def row_side(row: Mapping[str, Any]) -> Side:
    code = text(row, "sll_buy_dvsn_cd")
    if code == "01":
        return Side.SELL
    if code == "02":
        return Side.BUY
    raise KisError(f"KIS answered sll_buy_dvsn_cd={code!r}; expected 01 (sell) or 02 (buy)")


def row_date(row: Mapping[str, Any], name: str) -> date:
    value = text(row, name)
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise KisError(f"KIS answered {name}={value!r}; expected a date YYYYMMDD") from None


def row_moment(day: date, hhmmss: str) -> datetime | None:
    """``ord_tmd`` (HHMMSS, Seoul) on ``day``; None if KIS gave no such time."""
    try:
        return datetime.combine(day, datetime.strptime(hhmmss, "%H%M%S").time(), tzinfo=SEOUL)
    except ValueError:
        return None


def row_time(day: date, hhmmss: str) -> datetime:
    """``ord_tmd`` on ``day``, or the day's midnight in Seoul if KIS gave none."""
    return row_moment(day, hhmmss) or datetime.combine(day, datetime.min.time(), tzinfo=SEOUL)


def order_id(row: Mapping[str, Any]) -> str:
    """``{ord_gno_brno}-{odno}``: the branch and number a cancel needs."""
    return f"{text(row, 'ord_gno_brno')}-{text(row, 'odno')}"


def order_from_row(row: Mapping[str, Any], client_order_id: str = "") -> Order:
    """One row of inquire-daily-ccld ``output1`` as an order (quantities, status, type)."""
    quantity = whole(row, "ord_qty")
    filled = whole(row, "tot_ccld_qty")
    cancelled = whole(row, "cnc_cfrm_qty")
    refused = whole(row, "rjct_qty")
    if field(row, "rmn_qty") not in (None, ""):
        remaining = whole(row, "rmn_qty")
    else:
        remaining = max(quantity - filled - cancelled - refused, 0)
    if remaining > 0:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    elif quantity > 0 and filled >= quantity:
        status = OrderStatus.FILLED
    elif refused > 0 and filled == 0:
        status = OrderStatus.REJECTED
    else:
        status = OrderStatus.CANCELLED  # cancelled, or expired at the close
    price = whole(row, "ord_unpr")
    code = text(row, "ord_dvsn_cd")
    order_type = OrderType.MARKET if code == "01" or (code != "00" and price == 0) else OrderType.LIMIT
    return Order(order_id=order_id(row), client_order_id=client_order_id, trading_date=row_date(row, "ord_dt"),
                 ticker=text(row, "pdno"), side=row_side(row), order_type=order_type, quantity=quantity,
                 limit_price=price if order_type is OrderType.LIMIT else None, status=status,
                 filled_quantity=filled, reason="", dry_run=False)


def add_weekdays(day: date, count: int) -> date:
    """``day`` plus ``count`` weekdays: the approximate settlement date (holidays ignored)."""
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day
