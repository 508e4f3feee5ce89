"""What a replay did, read back from the database it wrote: the summary table, and
the report directory (equity and drawdown charts, daily snapshots, the ledger)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.job_api import Account
from services.common.market_calendar import MarketCalendar
from services.orchestrator.ledger import SIMULATE
from services.orchestrator.models import JobRun
from services.orchestrator.performance import Performance, Trade, cap_weighted_index, measure
from services.orchestrator.replay import replay_window
from services.risk_manager.queries import halting_days
from services.trading_engine.queries import (
    closed_trades,
    equity_before,
    fill_totals,
    order_count,
    paper_opening_cash,
    snapshots,
    traded_amount,
)

#: the market whose index a replay is measured against (beta, alpha)
BENCHMARK_MARKET = "KOSPI"
LEDGER_COLUMNS = ["job", "scheduled_for", "trading_date", "outcome", "reason", "error", "summary"]
SNAPSHOT_COLUMNS = ["trading_date", "taken_at", "cash", "settled_cash", "market_value", "equity", "exposure",
                    "unrealised_pnl", "positions", "drawdown_pct"]


@dataclass(frozen=True)
class ReplaySummary:
    start: date
    end: date
    sessions: int
    fires: dict[tuple[str, str], int]  # (job, outcome) -> count
    orders: int
    fills: int
    commission: int
    tax: int
    initial_equity: int
    final_equity: int
    max_drawdown_pct: float
    halts: int
    jobs: list[str] = field(default_factory=list)
    performance: Performance | None = None
    benchmark: str = BENCHMARK_MARKET

    @property
    def return_pct(self) -> float:
        return 100.0 * (self.final_equity - self.initial_equity) / self.initial_equity if self.initial_equity else 0.0

    def rows(self) -> list[dict[str, str]]:
        """The summary as (what, value) rows for the terminal."""
        rows = [("sessions", f"{self.sessions}")]
        for job in self.jobs:
            outcomes = {outcome: n for (name, outcome), n in sorted(self.fires.items()) if name == job}
            rows.append((f"fires: {job}", ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items()) or "0"))
        rows += [("orders", f"{self.orders}"), ("fills", f"{self.fills}"),
                 ("fees and taxes paid", f"{self.commission + self.tax:,} KRW (commission {self.commission:,}, "
                                         f"tax {self.tax:,})"),
                 ("final equity", f"{self.final_equity:,} KRW (from {self.initial_equity:,})"),
                 ("return", f"{self.return_pct:+.2f}%"),
                 ("max drawdown", f"{self.max_drawdown_pct:.2f}% (session closes)"
                                  + (f", {self.performance.max_drawdown_sessions} sessions to recover (or to the "
                                     "end)" if self.performance else "")),
                 ("halts", f"{self.halts}")]
        if self.performance is not None:
            rows += performance_rows(self.performance, self.benchmark)
        return [{"what": what, "value": value} for what, value in rows]


def performance_rows(p: Performance, benchmark: str) -> list[tuple[str, str]]:
    """The statistics a quant reads first, as (what, value) rows ('-': not defined)."""
    def pct(value: float | None, signed: bool = False) -> str:
        return "-" if value is None else f"{100 * value:{'+' if signed else ''}.2f}%"

    def num(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    return [
        ("CAGR", pct(p.cagr, signed=True)),
        ("volatility (annualized)", pct(p.volatility)),
        ("Sharpe / Sortino (risk-free 0)", f"{num(p.sharpe)} / {num(p.sortino)}"),
        ("trades closed", f"{p.trades}, win rate {pct(p.win_rate)}, profit factor {num(p.profit_factor)}, "
                          f"held {num(p.average_holding_days, 1)} days on average"),
        ("turnover / exposure", f"{num(p.turnover)}x the average equity / {pct(p.exposure)} on average"),
        (f"benchmark {benchmark} (stored prices, cap-weighted)", pct(p.benchmark_return, signed=True)),
        (f"beta / alpha vs {benchmark}", f"{num(p.beta)} / {pct(p.alpha, signed=True)} a year"),
    ]


def max_drawdown_pct(equities: Sequence[int]) -> float:
    """The largest fall from a running peak, in percent."""
    peak, worst = 0, 0.0
    for equity in equities:
        peak = max(peak, equity)
        if peak > 0:
            worst = max(worst, 100.0 * (peak - equity) / peak)
    return worst


def summarize(session_factory: sessionmaker[DbSession], *, user_id: str, start: date, end: date,
              sessions: int, jobs: Sequence[str], initial_cash: int,
              calendar: MarketCalendar | None = None) -> ReplaySummary:
    first, last = replay_window(start, end)
    with session_factory() as db:
        fires = Counter({(job, outcome): n for job, outcome, n in db.execute(
            select(JobRun.job_name, JobRun.outcome, func.count()).where(
                JobRun.user_id == user_id, JobRun.origin == SIMULATE, JobRun.scheduled_for >= first,
                JobRun.scheduled_for < last).group_by(JobRun.job_name, JobRun.outcome))})
        paper, connection = Account(user_id, dry_run=True), db.connection()
        orders = order_count(connection, paper, start, end)
        fills, commission, tax = fill_totals(connection, paper, start, end)
        halts = halting_days(connection, user_id, start, end)
    initial = starting_equity(session_factory, user_id, start, initial_cash)
    daily = daily_snapshots(session_factory, user_id, start, end, initial)
    closes = [int(row["equity"]) for row in daily]
    final = closes[-1] if closes else initial
    performance = None if calendar is None else _performance(session_factory, user_id, start, end, initial, daily,
                                                             calendar)
    return ReplaySummary(start, end, sessions, dict(fires), int(orders), int(fills), int(commission), int(tax),
                         initial, final, max_drawdown_pct([initial, *closes]), int(halts), list(jobs), performance)


def _performance(session_factory: sessionmaker[DbSession], user_id: str, start: date, end: date, initial: int,
                 daily: list[dict[str, Any]], calendar: MarketCalendar) -> Performance:
    """The statistics of the window, against the benchmark market's cap-weighted index of
    the stored prices over the same sessions (from the one before the first)."""
    from services.data_collector.queries import market_caps

    paper = Account(user_id, dry_run=True)
    days = [date.fromisoformat(row["trading_date"]) for row in daily]
    before = calendar.sessions(start - timedelta(days=14), start - timedelta(days=1))
    index_days = ([before[-1].date] if before else []) + days
    with session_factory() as db:
        connection = db.connection()
        trades = [Trade(opened, closed, pnl) for opened, closed, pnl in closed_trades(connection, paper, start, end)]
        traded = traded_amount(connection, paper, start, end)
        caps = market_caps(connection, BENCHMARK_MARKET, index_days[0], end) if index_days else []
    levels = cap_weighted_index(index_days, caps) if len(index_days) == len(days) + 1 else None
    return measure([initial, *(int(row["equity"]) for row in daily)], trades=trades, traded=traded,
                   exposures=[float(row["exposure"]) for row in daily], benchmark=levels)


def starting_equity(session_factory: sessionmaker[DbSession], user_id: str, start: date, initial_cash: int) -> int:
    """The paper account's equity when the window opens: its last snapshot before
    ``start`` (a database that already holds earlier replays), else its initial cash."""
    with session_factory() as db:
        before = equity_before(db.connection(), Account(user_id, dry_run=True), start)
        opened_with = paper_opening_cash(db.connection(), user_id)
    if before is not None:
        return before
    return opened_with if opened_with is not None else initial_cash


def daily_snapshots(session_factory: sessionmaker[DbSession], user_id: str, start: date, end: date,
                    initial_equity: int, tz: ZoneInfo | None = None) -> list[dict[str, Any]]:
    """The last snapshot of each trading date, with the drawdown from the running peak
    of the session closes (starting from ``initial_equity``); ``taken_at`` in ``tz``
    (the display zone; default UTC, as stored)."""
    with session_factory() as db:
        rows = snapshots(db.connection(), Account(user_id, dry_run=True), start, end)
    last_of_day: dict[date, Any] = {}
    for row in rows:
        last_of_day[row.trading_date] = row
    daily, peak = [], initial_equity
    for day, row in sorted(last_of_day.items()):
        peak = max(peak, int(row.equity))
        daily.append({"trading_date": day.isoformat(), "taken_at": row.taken_at.astimezone(tz or UTC).isoformat(),
                      "cash": row.cash,
                      "settled_cash": row.settled_cash, "market_value": row.market_value, "equity": row.equity,
                      "exposure": row.exposure, "unrealised_pnl": row.unrealised_pnl, "positions": row.positions,
                      "drawdown_pct": round(100.0 * (peak - int(row.equity)) / peak, 4) if peak else 0.0})
    return daily


def ledger_rows(session_factory: sessionmaker[DbSession], user_id: str, start: date, end: date,
                tz: ZoneInfo) -> list[dict[str, Any]]:
    import json

    first, last = replay_window(start, end)
    with session_factory() as db:
        runs = db.scalars(select(JobRun).where(
            JobRun.user_id == user_id, JobRun.origin == SIMULATE, JobRun.scheduled_for >= first,
            JobRun.scheduled_for < last).order_by(JobRun.scheduled_for, JobRun.id)).all()
    return [{"job": run.job_name, "scheduled_for": run.scheduled_for.astimezone(tz).isoformat(),
             "trading_date": run.trading_date.isoformat() if run.trading_date else "", "outcome": run.outcome,
             "reason": run.reason or "", "error": run.error or "",
             "summary": json.dumps(run.summary, sort_keys=True, ensure_ascii=False) if run.summary else ""}
            for run in runs]


def write_report(directory: Path, session_factory: sessionmaker[DbSession], *, user_id: str, start: date,
                 end: date, tz: ZoneInfo, initial_equity: int) -> list[Path]:
    """``snapshots.csv``, ``ledger.csv`` and ``equity.png`` (equity and drawdown) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    daily = daily_snapshots(session_factory, user_id, start, end, initial_equity, tz)
    written = [_write_csv(directory / "snapshots.csv", SNAPSHOT_COLUMNS, daily),
               _write_csv(directory / "ledger.csv", LEDGER_COLUMNS, ledger_rows(session_factory, user_id, start,
                                                                                 end, tz))]
    written.append(_plot_equity(directory / "equity.png", daily, user_id))
    return written


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plot_equity(path: Path, daily: list[dict[str, Any]], user_id: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    days = [date.fromisoformat(row["trading_date"]) for row in daily]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6), height_ratios=[3, 1])
    top.plot(days, [row["equity"] / 1e6 for row in daily], color="tab:blue")
    top.set_ylabel("equity (million KRW)")
    top.set_title(f"Paper account {user_id}: equity at each session's close")
    top.grid(alpha=0.3)
    bottom.fill_between(days, [-row["drawdown_pct"] for row in daily], 0, color="tab:red", alpha=0.5)
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]  # matplotlib leaves both untyped
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
