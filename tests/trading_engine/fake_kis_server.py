"""A local stand-in for the KIS open API, for the adapter's tests.

It answers the calls the adapter makes with the shapes of KIS's own samples
(github.com/koreainvestment/open-trading-api, ``examples_llm/domestic_stock/*``):
``/oauth2/tokenP``, order-cash, order-rvsecncl, inquire-balance (two pages, chained by
the ``tr_cont`` header and ``CTX_AREA_*``), inquire-daily-ccld and inquire-price. It
checks what KIS checks (the headers, UPPERCASE body and query keys, the tr_id of each
path and environment, the account) and notes every mismatch in ``problems`` instead of
guessing; it records every request; it issues one token a minute (``EGW00133``
otherwise). ``script`` queues special answers for the next API requests (an entry
``(what, path)`` waits for a request to that path):

- ``"rate_limited"``: HTTP 500, EGW00201 (too many requests per second)
- ``"expired_token"``: HTTP 500, EGW00123, and the presented token stops working
- ``"refuse"``: HTTP 200, rt_cd "1", 주문가능금액을 초과 했습니다 (an order refusal)
- ``"nothing_to_cancel"``: HTTP 200, rt_cd "1", 정정/취소할 수량이 없습니다 (a cancel refusal)
- ``"http500"``: HTTP 500 with an HTML page
- ``"garbage"``: HTTP 200 with a body that is not JSON
- ``"take_then_drop"``: the request is handled as usual (an order is taken), then the
  connection is closed without an answer (the client cannot know KIS has the order)

``order_pause`` (seconds) delays each order-cash answer after the order is taken, so
a process can be killed while KIS has its order and it has no answer. An order's
``ord_tmd`` is the time of ``clock`` in Seoul.

Recorded answers live in ``tests/data/kis/`` (invented values in KIS's shapes). The
EGW* gateway codes are KIS's; the APBK* business codes are illustrative.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DATA = Path(__file__).resolve().parents[1] / "data" / "kis"
SEOUL = ZoneInfo("Asia/Seoul")

ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
DAILY_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
PRICE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"
TOKEN_PATH = "/oauth2/tokenP"

#: tr_ids KIS accepts per path: (paper, live)
TR_IDS = {
    ORDER_PATH: ({"VTTC0012U", "VTTC0011U"}, {"TTTC0012U", "TTTC0011U"}),
    CANCEL_PATH: ({"VTTC0013U"}, {"TTTC0013U"}),
    BALANCE_PATH: ({"VTTC8434R"}, {"TTTC8434R"}),
    DAILY_PATH: ({"VTTC0081R"}, {"TTTC0081R"}),
    PRICE_PATH: ({"FHKST01010100"}, {"FHKST01010100"}),
}
ORDER_KEYS = {"CANO", "ACNT_PRDT_CD", "PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR", "EXCG_ID_DVSN_CD"}
CANCEL_KEYS = {"CANO", "ACNT_PRDT_CD", "KRX_FWDG_ORD_ORGNO", "ORGN_ODNO", "ORD_DVSN", "RVSE_CNCL_DVSN_CD",
               "ORD_QTY", "ORD_UNPR", "QTY_ALL_ORD_YN", "EXCG_ID_DVSN_CD"}
BALANCE_KEYS = {"CANO", "ACNT_PRDT_CD", "AFHR_FLPR_YN", "OFL_YN", "INQR_DVSN", "UNPR_DVSN",
                "FUND_STTL_ICLD_YN", "FNCG_AMT_AUTO_RDPT_YN", "PRCS_DVSN", "CTX_AREA_FK100", "CTX_AREA_NK100"}
DAILY_KEYS = {"CANO", "ACNT_PRDT_CD", "INQR_STRT_DT", "INQR_END_DT", "SLL_BUY_DVSN_CD", "INQR_DVSN", "PDNO",
              "CCLD_DVSN", "ORD_GNO_BRNO", "ODNO", "INQR_DVSN_3", "INQR_DVSN_1", "CTX_AREA_FK100",
              "CTX_AREA_NK100"}
ORGNO = "91252"  # the branch (KRX_FWDG_ORD_ORGNO / ord_gno_brno) of every order here


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    body: dict[str, Any] | None

    @property
    def tr_id(self) -> str:
        return self.headers.get("tr_id", "")


@dataclass
class FakeKis:
    """The fake's state: what it expects, what it holds, what it saw."""

    app_key: str
    app_secret: str
    cano: str
    acnt_prdt_cd: str
    clock: Callable[[], float]  # seconds (epoch): the one-token-a-minute rule and token expiry
    environment: str = "paper"
    today: str = "20260305"  # ord_dt of orders placed here
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    script: list[str | tuple[str, str]] = field(default_factory=list)  # what, or (what, only this path)
    tokens: list[str] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    last_token_at: float | None = None
    prices: dict[str, str] = field(default_factory=lambda: {"005930": "71500", "035720": "40850"})
    #: inquire-price fields given as they are, by ticker (a halt: temp_stop_yn Y; a malformed price)
    quote_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_request: Callable[[Recorded], None] | None = None  # called with each request, before its answer
    cash_summary: dict[str, str] | None = None  # replaces output2 of inquire-balance when set
    orders: list[dict[str, str]] = field(default_factory=list)
    next_odno: int = 12345
    order_pause: float = 0.0  # seconds between taking an order and answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.orders = list(load("inquire_daily_ccld_20260305.json")["output1"])

    def api_requests(self, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path != TOKEN_PATH and (path is None or r.path == path)]

    def token_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == TOKEN_PATH]

    def order_posts(self) -> list[Recorded]:
        """The order-cash requests, in the order they came."""
        return self.api_requests(ORDER_PATH)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    drop = False  # this request's answer is dropped (script "take_then_drop")

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        state = self.server.state
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        if method == "POST":
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.drop = False
        recorded = Recorded(method, split.path, headers, query, body)
        if state.on_request is not None:
            state.on_request(recorded)
        with state.lock:
            state.requests.append(recorded)
            status, answer, extra = self._answer(state, method, split.path, headers, query, body)
        if split.path == ORDER_PATH and state.order_pause:
            time.sleep(state.order_pause)
        if self.drop:  # taken, and no answer
            self.close_connection = True
            return
        if isinstance(answer, bytes):
            payload, content_type = answer, "text/html"
        else:
            payload, content_type = json.dumps(answer, ensure_ascii=False).encode("utf-8"), \
                "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    # routing

    def _answer(self, state: FakeKis, method: str, path: str, headers: dict[str, str],
                query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if path == TOKEN_PATH and method == "POST":
            return _token(state, body)
        if path not in TR_IDS:
            return _problem(state, f"unknown path {method} {path}", status=404)
        problem = _check_headers(state, path, headers)
        if problem:
            return _problem(state, problem)
        if state.script:
            entry = state.script[0]
            what, only = (entry, None) if isinstance(entry, str) else entry
            if only is None or only == path:
                state.script.pop(0)
                self.drop = what == "take_then_drop"
                scripted = None if self.drop else _scripted(state, what, headers)
                if scripted:
                    return scripted
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in state.valid_tokens:
            return 500, {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."}, {}
        extra = {"tr_id": headers["tr_id"], "tr_cont": "D", "gt_uid": "fake0000000000000000000000000001"}
        if method == "POST":
            if not isinstance(body, dict):
                return _problem(state, f"{path}: the body is not a JSON object")
            if path == ORDER_PATH:
                return (*_order(state, headers["tr_id"], body), extra)
            if path == CANCEL_PATH:
                return (*_cancel(state, body), extra)
        else:
            if path == BALANCE_PATH:
                return _balance(state, headers, query, extra)
            if path == DAILY_PATH:
                return (*_daily(state, query), extra)
            if path == PRICE_PATH:
                return (*_price(state, query), extra)
        return _problem(state, f"{method} is not how {path} is called", status=405)


def _problem(state: FakeKis, text: str, *, status: int = 400) -> tuple[int, Any, dict[str, str]]:
    state.problems.append(text)
    return status, {"rt_cd": "1", "msg_cd": "FAKE0400", "msg1": text}, {}


def _check_headers(state: FakeKis, path: str, headers: dict[str, str]) -> str:
    for name in ("content-type", "authorization", "appkey", "appsecret", "tr_id", "custtype"):
        if not headers.get(name):
            return f"{path}: header {name} missing"
    if not headers["content-type"].startswith("application/json"):
        return f"{path}: content-type {headers['content-type']!r}; expected application/json"
    if not headers["authorization"].startswith("Bearer "):
        return f"{path}: authorization is not 'Bearer <token>'"
    if headers["appkey"] != state.app_key or headers["appsecret"] != state.app_secret:
        return f"{path}: appkey/appsecret do not match"
    if headers["custtype"] != "P":
        return f"{path}: custtype {headers['custtype']!r}; expected P"
    paper, live = TR_IDS[path]
    allowed = paper if state.environment == "paper" else live
    if headers["tr_id"] not in allowed:
        return f"{path}: tr_id {headers['tr_id']} on the {state.environment} host; expected one of {sorted(allowed)}"
    return ""


def _scripted(state: FakeKis, what: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]] | None:
    if what == "rate_limited":
        return 500, {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}, {}
    if what == "expired_token":
        state.valid_tokens.discard(headers.get("authorization", "").removeprefix("Bearer "))
        return 500, {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}, {}
    if what == "refuse":
        return 200, {"rt_cd": "1", "msg_cd": "APBK0952", "msg1": "주문가능금액을 초과 했습니다"}, {}
    if what == "nothing_to_cancel":
        return 200, {"rt_cd": "1", "msg_cd": "APBK1676", "msg1": "정정/취소할 수량이 없습니다."}, {}
    if what == "http500":
        return 500, b"<html><body>Internal Server Error</body></html>", {}
    if what == "garbage":
        return 200, b"<html>maintenance</html>", {}
    state.problems.append(f"unknown script entry {what!r}")
    return None


def _token(state: FakeKis, body: Any) -> tuple[int, Any, dict[str, str]]:
    if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
        return _problem(state, "tokenP: expected grant_type client_credentials")
    if body.get("appkey") != state.app_key:
        return 403, {"error_description": "유효하지 않은 AppKey입니다.", "error_code": "EGW00103"}, {}
    if body.get("appsecret") != state.app_secret:
        return 403, {"error_description": "유효하지 않은 AppSecret입니다.", "error_code": "EGW00105"}, {}
    now = state.clock()
    if state.last_token_at is not None and now - state.last_token_at < 60:
        return 403, {"error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
                     "error_code": "EGW00133"}, {}
    state.last_token_at = now
    token = f"eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.fake-token-{len(state.tokens) + 1:03d}.c2lnbmF0dXJl"
    state.tokens.append(token)
    state.valid_tokens.add(token)
    expires = datetime.fromtimestamp(now, SEOUL) + timedelta(days=1)
    return 200, {"access_token": token, "access_token_token_expired": expires.strftime("%Y-%m-%d %H:%M:%S"),
                 "token_type": "Bearer", "expires_in": 86400}, {}


def _check_keys(state: FakeKis, where: str, data: dict[str, Any], required: set[str]) -> str:
    lower = [key for key in data if key != key.upper()]
    if lower:
        return f"{where}: keys must be UPPERCASE, got {lower}"
    missing = sorted(required - set(data))
    if missing:
        return f"{where}: missing {missing}"
    not_text = [key for key, value in data.items() if not isinstance(value, str)]
    if not_text:
        return f"{where}: values must be strings, got {not_text}"
    if data["CANO"] != state.cano or data["ACNT_PRDT_CD"] != state.acnt_prdt_cd:
        return f"{where}: not this account"
    return ""


def _order(state: FakeKis, tr_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    problem = _check_keys(state, "order-cash", body, ORDER_KEYS)
    if not problem and body["ORD_DVSN"] == "01" and body["ORD_UNPR"] != "0":
        problem = "order-cash: a market order (ORD_DVSN 01) has ORD_UNPR 0"
    if not problem and body["ORD_DVSN"] == "00" and not body["ORD_UNPR"].strip("0").isdigit():
        problem = "order-cash: a limit order (ORD_DVSN 00) needs ORD_UNPR"
    if problem:
        return _problem(state, problem)[:2]
    odno = f"{state.next_odno:010d}"
    state.next_odno += 1
    state.orders.append({
        "ord_dt": state.today, "ord_gno_brno": ORGNO, "odno": odno, "orgn_odno": "",
        "ord_dvsn_name": "시장가" if body["ORD_DVSN"] == "01" else "지정가",
        "sll_buy_dvsn_cd": "02" if tr_id.endswith("12U") else "01",
        "sll_buy_dvsn_cd_name": "현금매수" if tr_id.endswith("12U") else "현금매도",
        "pdno": body["PDNO"], "prdt_name": "", "ord_qty": body["ORD_QTY"], "ord_unpr": body["ORD_UNPR"],
        "ord_tmd": _hhmmss(state), "tot_ccld_qty": "0", "avg_prvs": "0", "cncl_yn": "", "tot_ccld_amt": "0",
        "loan_dt": "", "ord_dvsn_cd": body["ORD_DVSN"], "cnc_cfrm_qty": "0", "rmn_qty": body["ORD_QTY"],
        "rjct_qty": "0", "ccld_cndt_name": "없음", "excg_id_dvsn_cd": "KRX",
    })
    return 200, {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.",
                 "output": {"KRX_FWDG_ORD_ORGNO": ORGNO, "ODNO": odno, "ORD_TMD": _hhmmss(state)}}


def _hhmmss(state: FakeKis) -> str:
    return datetime.fromtimestamp(state.clock(), SEOUL).strftime("%H%M%S")


def _cancel(state: FakeKis, body: dict[str, Any]) -> tuple[int, Any]:
    problem = _check_keys(state, "order-rvsecncl", body, CANCEL_KEYS)
    if not problem and (body["RVSE_CNCL_DVSN_CD"] != "02" or body["QTY_ALL_ORD_YN"] != "Y"):
        problem = "order-rvsecncl: expected a cancel of all that is left (02, Y)"
    if problem:
        return _problem(state, problem)[:2]
    order = next((row for row in state.orders if row["ord_gno_brno"] == body["KRX_FWDG_ORD_ORGNO"]
                  and row["odno"] == body["ORGN_ODNO"]), None)
    if order is None or int(order["rmn_qty"]) == 0:
        return 200, {"rt_cd": "1", "msg_cd": "APBK1676", "msg1": "정정/취소할 수량이 없습니다."}
    order["cnc_cfrm_qty"], order["rmn_qty"] = order["rmn_qty"], "0"
    odno = f"{state.next_odno:010d}"
    state.next_odno += 1
    return 200, {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.",
                 "output": {"KRX_FWDG_ORD_ORGNO": ORGNO, "ODNO": odno, "ORD_TMD": "100100"}}


def _balance(state: FakeKis, headers: dict[str, str], query: dict[str, str],
             extra: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    problem = _check_keys(state, "inquire-balance", query, BALANCE_KEYS)
    if problem:
        return _problem(state, problem)
    first, second = load("inquire_balance_page1.json"), load("inquire_balance_page2.json")
    if query["CTX_AREA_NK100"] == "" and headers.get("tr_cont", "") == "":
        page, more = first, "M"
    elif (query["CTX_AREA_NK100"] == first["ctx_area_nk100"]
          and query["CTX_AREA_FK100"] == first["ctx_area_fk100"] and headers.get("tr_cont") == "N"):
        page, more = second, "D"
    else:
        return _problem(state, "inquire-balance: a next page needs tr_cont N and the CTX_AREA_* of the last page")
    if state.cash_summary is not None:
        page["output2"] = [state.cash_summary]
    return 200, page, {**extra, "tr_cont": more}


def _daily(state: FakeKis, query: dict[str, str]) -> tuple[int, Any]:
    problem = _check_keys(state, "inquire-daily-ccld", query, DAILY_KEYS)
    if problem:
        return _problem(state, problem)[:2]
    rows = [row for row in state.orders if query["INQR_STRT_DT"] <= row["ord_dt"] <= query["INQR_END_DT"]]
    if query["CCLD_DVSN"] == "01":
        rows = [row for row in rows if int(row["tot_ccld_qty"]) > 0]
    elif query["CCLD_DVSN"] == "02":
        rows = [row for row in rows if int(row["rmn_qty"]) > 0]
    template = load("inquire_daily_ccld_20260305.json")
    return 200, {**template, "output1": rows}


def _price(state: FakeKis, query: dict[str, str]) -> tuple[int, Any]:
    if set(query) != {"FID_COND_MRKT_DIV_CODE", "FID_INPUT_ISCD"} or query["FID_COND_MRKT_DIV_CODE"] != "J":
        return _problem(state, f"inquire-price: expected FID_COND_MRKT_DIV_CODE=J and FID_INPUT_ISCD, got {query}")[:2]
    price = state.prices.get(query["FID_INPUT_ISCD"])
    if price is None:
        return 200, {"rt_cd": "1", "msg_cd": "FAKE0404", "msg1": "no such ticker in the fake"}
    base = int(price)  # the day's limits +-30% around it (the tick grid does not matter here)
    output = {"iscd_stat_cls_code": "55", "temp_stop_yn": "N", "rprs_mrkt_kor_name": "KOSPI200", "stck_prpr": price,
              "prdy_vrss": "0", "prdy_vrss_sign": "3", "prdy_ctrt": "0.00", "acml_vol": "10523400",
              "stck_oprc": price, "stck_hgpr": price, "stck_lwpr": price, "stck_mxpr": str(base * 13 // 10),
              "stck_llam": str(base * 7 // 10), "stck_sdpr": price, "aspr_unit": "100",
              "stck_shrn_iscd": query["FID_INPUT_ISCD"]}
    output.update(state.quote_fields.get(query["FID_INPUT_ISCD"], {}))
    return 200, {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.", "output": output}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeKis) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client went away (killed) before its answer: nothing to report
        super().handle_error(request, client_address)


@contextmanager
def serve(state: FakeKis) -> Iterator[FakeKis]:
    """Run the fake on 127.0.0.1 (a free port) in a daemon thread; ``state.url`` is its host."""
    server = _Server(state)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-kis",
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
