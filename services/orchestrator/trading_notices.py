"""What a trader hears of the trading day, on the installed notification channels
(``services.common.notifications``): the pre-open signal list (after
``signal_generation``), each monitoring run's fills and protective exits (one message
per ``position_monitoring`` run that had any), and the daily report (after
``watchlist_update``, the day's last job). Only runs of the current trading date are
told: a start-up's catch-up of past days is old news.

:class:`TradingNotices` listens to a runner's finished runs; with no channel installed
it reads nothing. The texts are built from plain values (``signal_list``, ``fills_message``,
``daily_report``), in Korean or English.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common import notifications
from services.common.job_api import Account, JobContext, Outcome
from services.common.market_calendar import KRX_TZ
from services.common.notifications import Level, Message
from services.orchestrator.jobs import get_job
from services.orchestrator.ledger import RunRecord

if TYPE_CHECKING:
    from services.orchestrator.runtime import Runtime

#: the jobs that have a notice: each must be in the registry (checked when this loads)
SIGNALS, MONITORING, REPORT_AFTER = (get_job(name).name for name in (
    "signal_generation", "position_monitoring", "watchlist_update"))
_WEEKDAYS = {"ko": "월화수목금토일", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


@dataclass(frozen=True)
class Order:
    ticker: str
    name: str
    side: str  # buy | sell
    order_type: str  # market | limit
    quantity: int
    limit_price: int | None
    reason: str


@dataclass(frozen=True)
class Fill:
    ticker: str
    name: str
    side: str
    quantity: int
    price: int
    commission: int
    tax: int


# --- the texts ---------------------------------------------------------------------------------------


def won(amount: float | int, language: str) -> str:
    """KRW with separators: '1,234원' (ko), 'KRW 1,234' (en)."""
    return f"{round(amount):,}원" if language == "ko" else f"KRW {round(amount):,}"


def signed_won(amount: float | int, language: str) -> str:
    return ("+" if amount > 0 else "") + won(amount, language)


def _mode(dry_run: bool, language: str) -> str:
    if language == "ko":
        return "모의투자" if dry_run else "실전투자"
    return "paper" if dry_run else "LIVE"


def _side(side: str, language: str) -> str:
    return {"buy": "매수", "sell": "매도"}[side] if language == "ko" else side.upper()


def _order_line(order: Order, language: str) -> str:
    ko = language == "ko"
    if order.order_type == "limit" and order.limit_price is not None:
        price = f"지정가 {won(order.limit_price, language)}" if ko else f"limit {won(order.limit_price, language)}"
    else:
        price = "시장가" if ko else "market"
    shares = f"{order.quantity:,}주" if ko else f"{order.quantity:,} sh"
    return f"{_side(order.side, language)} {order.ticker} {order.name} {shares} {price}\n  └ {order.reason}"


def signal_list(day: date, orders: Sequence[Order], watchlist_date: str | None, dry_run: bool,
                language: str) -> Message:
    """The pre-open signal list of ``day``: entries and exits with their sizes."""
    ko = language == "ko"
    entries = sum(order.side == "buy" for order in orders)
    exits = len(orders) - entries
    title = f"[KRX] {'장전 매매 신호' if ko else 'Pre-open signals'} {day} ({_mode(dry_run, language)})"
    if not orders:
        head = "오늘은 진입·청산 신호가 없습니다." if ko else "No entries and no exits today."
    else:
        head = f"진입 {entries}건, 청산 {exits}건" if ko else f"{entries} entries, {exits} exits"
    if watchlist_date:
        head += f" (관심종목 {watchlist_date} 기준)" if ko else f" (watchlist of {watchlist_date})"
    return Message(Level.INFO, title, "\n".join([head, *(_order_line(order, language) for order in orders)]))


def fills_message(at: datetime, fills: Sequence[Fill], exits: Sequence[Order], dry_run: bool, language: str,
                  tz: tzinfo) -> Message | None:
    """One monitoring run's fills and the protective exits it placed (None: neither)."""
    if not fills and not exits:
        return None
    ko = language == "ko"
    when = at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if fills:
        what = f"체결 {len(fills)}건" if ko else f"{len(fills)} fill(s)"
        title = f"[KRX] {what} {when} ({_mode(dry_run, language)})"
    else:
        what = f"청산 주문 {len(exits)}건" if ko else f"{len(exits)} protective exit(s)"
        title = f"[KRX] {what} {when} ({_mode(dry_run, language)})"
    lines = []
    for fill in fills:
        fees = won(fill.commission, language) + (f", {'세금' if ko else 'tax'} {won(fill.tax, language)}"
                                                 if fill.tax else "")
        shares = f"{fill.quantity:,}주" if ko else f"{fill.quantity:,} sh"
        lines.append(f"{_side(fill.side, language)} {fill.ticker} {fill.name} {shares} × "
                     f"{won(fill.price, language)} = {won(fill.quantity * fill.price, language)} "
                     f"({'수수료' if ko else 'fees'} {fees})")
    if exits:
        lines.append(f"손절·익절 주문 {len(exits)}건 (다음 점검 때 체결):" if ko else
                     f"{len(exits)} protective exit(s) placed (filled at the next check):")
        lines.extend(_order_line(order, language) for order in exits)
    return Message(Level.INFO, title, "\n".join(lines))


def daily_report(day: date, summary: dict[str, Any], positions: Sequence[dict[str, Any]],
                 fills: Sequence[Fill], entered: Sequence[str], left: Sequence[str],
                 next_session: dict[str, str] | None, dry_run: bool, language: str) -> Message:
    """The day after its close: equity, day and total P&L, positions with their returns,
    the day's fills and fees, the watchlist's entries and exits, the next session."""
    ko = language == "ko"

    def w(amount: float | int) -> str:
        return won(amount, language)

    title = f"[KRX] {'일일 보고' if ko else 'Daily report'} {day} ({_mode(dry_run, language)})"
    equity, day_pnl, total_pnl = summary.get("equity"), summary.get("day_pnl"), summary.get("total_pnl")
    lines = []
    if equity is not None:
        day_part = "" if day_pnl is None else (
            f", {'당일' if ko else 'day'} {signed_won(day_pnl, language)} ({summary.get('day_return', 0):+.2%})")
        total_part = "" if total_pnl is None else (
            f", {'누적' if ko else 'total'} {signed_won(total_pnl, language)} ({summary.get('total_return', 0):+.2%})")
        lines.append(f"{'평가금액' if ko else 'Equity'} {w(equity)}{day_part}{total_part}")
        lines.append(f"{'현금' if ko else 'Cash'} {w(summary.get('cash') or 0)}, "
                     f"{'주식' if ko else 'stocks'} {w(summary.get('market_value') or 0)} "
                     f"({'비중' if ko else 'exposure'} {(summary.get('exposure') or 0):.1%})")
    lines.append(f"보유 {len(positions)}종목" + (":" if positions else "") if ko else
                 f"{len(positions)} position(s)" + (":" if positions else ""))
    for position in positions:
        value = position.get("market_value")
        ret = position.get("unrealised_return")
        lines.append(f"  {position['ticker']} {position.get('name', '')} {position['quantity']:,}"
                     f"{'주' if ko else ' sh'} {w(value) if value is not None else '-'}"
                     + (f" ({ret:+.2%})" if ret is not None else ""))
    commission, tax = sum(fill.commission for fill in fills), sum(fill.tax for fill in fills)
    lines.append(f"오늘 체결 {len(fills)}건, 수수료 {w(commission)}, 세금 {w(tax)}" if ko else
                 f"Fills today: {len(fills)}, fees {w(commission)}, tax {w(tax)}")
    if entered or left:
        lines.append(f"관심종목 편입: {', '.join(entered) or '-'} / 편출: {', '.join(left) or '-'}" if ko else
                     f"Watchlist in: {', '.join(entered) or '-'} / out: {', '.join(left) or '-'}")
    if next_session is not None:
        weekday = _WEEKDAYS[language][date.fromisoformat(next_session["date"]).weekday()]
        special = (" (특별 세션)" if ko else " (special hours)") if next_session["status"] == "special" else ""
        lines.append(f"{'다음 거래일' if ko else 'Next session'} {next_session['date']} ({weekday}) "
                     f"{next_session['open']}-{next_session['close']}{special}")
    return Message(Level.INFO, title, "\n".join(lines))


# --- hearing the runs -----------------------------------------------------------------------------


class TradingNotices:
    """A runner's run listener (see the module docstring): ``starting`` notes where the
    account's orders and fills stood, ``finished`` tells what the run added."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._marks: dict[int, tuple[int, int]] = {}  # run id -> (latest order id, latest fill id) at its start

    def starting(self, ctx: JobContext) -> None:
        from services.trading_engine.queries import latest_ids

        if notifications.current() is None or ctx.job_name not in (SIGNALS, MONITORING) or ctx.run_id is None:
            return
        with self._session() as session:
            self._marks[ctx.run_id] = latest_ids(session.connection(), Account.of(self.runtime.settings))

    def finished(self, ctx: JobContext, record: RunRecord) -> None:
        mark = self._marks.pop(record.run_id, None)
        notifier = notifications.current()
        if notifier is None or record.outcome is not Outcome.SUCCESS or record.trading_date is None:
            return
        if record.trading_date != self.runtime.clock.now().astimezone(KRX_TZ).date():
            return  # a past day's run (a start-up's history catch-up): old news
        message = self.message_of(ctx, record, mark)
        if message is not None:
            notifier.notify(message)

    def message_of(self, ctx: JobContext, record: RunRecord, mark: tuple[int, int] | None) -> Message | None:
        """The notice of the run, if it is one that has a notice (a signal or monitoring
        run needs its ``mark``: where the orders and fills stood at its start)."""
        settings = self.runtime.settings
        language, dry_run = settings.notify_language, settings.dry_run
        if record.job_name == SIGNALS and mark is not None:
            watchlist_date = (record.summary or {}).get("watchlist_date")
            return signal_list(ctx.trading_date, self._orders_after(mark[0]), watchlist_date, dry_run, language)
        if record.job_name == MONITORING and mark is not None:
            exits = [order for order in self._orders_after(mark[0]) if order.side == "sell"]
            return fills_message(record.scheduled_for, self._fills_after(mark[1]), exits, dry_run, language,
                                 settings.display_tz)
        if record.job_name == REPORT_AFTER:
            return self._daily_report(ctx.trading_date, language, dry_run)
        return None

    def _session(self) -> DbSession:
        factory: sessionmaker[DbSession] = self.runtime.session_factory()
        return factory()

    def _names(self) -> dict[str, str]:
        from services.data_collector.queries import stock_names

        with self._session() as session:
            return stock_names(session.connection())

    def _orders_after(self, order_id: int) -> list[Order]:
        from services.trading_engine.queries import orders_after

        with self._session() as session:
            lines = orders_after(session.connection(), Account.of(self.runtime.settings), order_id)
        names = self._names() if lines else {}
        return [Order(line.ticker, names.get(line.ticker, ""), line.side, line.order_type, line.quantity,
                      line.limit_price, line.reason) for line in lines]

    def _fills_after(self, fill_id: int) -> list[Fill]:
        from services.trading_engine.queries import fills_after

        with self._session() as session:
            lines = fills_after(session.connection(), Account.of(self.runtime.settings), fill_id)
        return self._named_fills(lines)

    def _named_fills(self, lines: Sequence[Any]) -> list[Fill]:
        names = self._names() if lines else {}
        return [Fill(line.ticker, names.get(line.ticker, ""), line.side, line.quantity, line.price,
                     line.commission, line.tax) for line in lines]

    def _daily_report(self, day: date, language: str, dry_run: bool) -> Message:
        from services.orchestrator import ops
        from services.trading_engine.queries import fills

        runtime = self.runtime
        overview = ops.account.overview(runtime)
        with self._session() as session:
            day_fills = fills(session.connection(), Account.of(runtime.settings), day, day)
        entered: list[str] = []
        left: list[str] = []
        try:
            watchlist = ops.watchlist.view(runtime, day)
        except ops.watchlist.NoWatchlist:
            watchlist = None
        if watchlist is not None and watchlist["date"] == day.isoformat():
            entered = [f"{e['ticker']} {e['name']}".strip() for e in watchlist["entries"]
                       if e["entered_on"] == day.isoformat()]
            left = [f"{e['ticker']} {e['name']}".strip() for e in watchlist["exits"]]
        upcoming = runtime.calendar.sessions(day + timedelta(days=1), day + timedelta(days=14))
        next_session = None if not upcoming else ops.schedule.calendar_days(
            runtime, upcoming[0].date, upcoming[0].date)[0]
        return daily_report(day, overview["summary"], overview["positions"], self._named_fills(day_fills),
                            entered, left, next_session, dry_run, language)
