"""The live broker: the Korea Investment & Securities (KIS, 한국투자증권) open API.

One module per concept, each testable alone:

- :mod:`.config`: :class:`KisConfig` and :func:`check_live_config`: which host,
  tr_ids, credentials and account, checked before anything is sent.
- :mod:`.broker`: :class:`KisBroker`, the
  :class:`~services.trading_engine.orders.Broker` protocol on top of the client.
- :mod:`.order_rows`: the rows of KIS's order answers (inquire-daily-ccld) as orders.

The HTTP, token and pacing layer beneath it is :mod:`services.trading_engine.kis_api`
(which never imports this package, so dry run may use it for quotes).

Request and answer shapes follow KIS's own samples (github.com/koreainvestment/
open-trading-api, ``examples_llm/domestic_stock/*`` and ``examples_llm/kis_auth.py``).
Limits, stated plainly:

- Idempotency of :meth:`KisBroker.place_order` by ``client_order_id`` holds within one
  broker object: KIS has no client order id. Across processes the order book makes
  it hold (``services.trading_engine.live_orders``): every order is recorded and
  claimed before it is sent, and one whose answer was lost is matched in
  :meth:`KisBroker.orders_placed_on`.
- An order POST whose answer is lost (timeout, dropped connection, HTTP 5xx) is *not*
  retried: KIS may have taken it. :class:`KisTransportError` tells the caller to
  reconcile. Only one that never left (no connection) is sent again.
- :meth:`KisBroker.fills` gives one fill per order (KIS's daily list totals each
  order), with estimated fees; see its docstring.
"""

from services.trading_engine.kis.broker import (
    BALANCE_PATH,
    CANCEL_PATH,
    DAILY_ORDERS_PATH,
    ORDER_PATH,
    KisBroker,
    make_kis_broker,
)
from services.trading_engine.kis.config import KisConfig, check_live_config, mask_account
from services.trading_engine.kis.order_rows import add_weekdays
from services.trading_engine.kis_api.auth import TOKEN_PATH
from services.trading_engine.kis_api.client import KisClient, KisResponse
from services.trading_engine.kis_api.errors import (
    KisAuthError,
    KisError,
    KisOrderRejected,
    KisRateLimited,
    KisRefused,
    KisTokenRateLimited,
    KisTransportError,
)
from services.trading_engine.kis_api.quotes import QUOTE_PATH

__all__ = [
    "BALANCE_PATH",
    "CANCEL_PATH",
    "DAILY_ORDERS_PATH",
    "ORDER_PATH",
    "QUOTE_PATH",
    "TOKEN_PATH",
    "KisAuthError",
    "KisBroker",
    "KisClient",
    "KisConfig",
    "KisError",
    "KisOrderRejected",
    "KisRateLimited",
    "KisRefused",
    "KisResponse",
    "KisTokenRateLimited",
    "KisTransportError",
    "add_weekdays",
    "check_live_config",
    "make_kis_broker",
    "mask_account",
]
