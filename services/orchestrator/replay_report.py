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
from services.orchestrator.trading_notices import SIGNALS
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
#: the benchmark's sources: the index closes the data provider published, or an index of the stored prices
PUBLISHED, CAP_WEIGHTED = "KRX index closes", "stored prices, cap-weighted"
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
    #: the benchmark's index level on the day before the first session, then at each close
    benchmark_levels: list[float] | None = None
    #: where the levels come from: the provider's index closes, or the stored prices
    benchmark_source: str = CAP_WEIGHTED
    #: signal runs that found entries but placed no order, and how many of them sized by half-Kelly
    unordered_signals: tuple[int, int] = (0, 0)

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
        unordered, by_kelly = self.unordered_signals
        if unordered:
            rows.append(("signals without orders", f"{unordered} session(s) had entry signals and placed no order"
                         + (f"; {by_kelly} of them sized by half-Kelly, which bets nothing while the closed trades "
                            "show no edge" if by_kelly else "")))
        if self.performance is not None:
            rows += performance_rows(self.performance, f"{self.benchmark} ({self.benchmark_source})")
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
        (f"benchmark {benchmark}", pct(p.benchmark_return, signed=True)),
        (f"beta / alpha vs {benchmark.split(' ')[0]}", f"{num(p.beta)} / {pct(p.alpha, signed=True)} a year"),
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
        signal_summaries: Sequence[dict[str, Any] | None] = db.scalars(select(JobRun.summary).where(
            JobRun.user_id == user_id, JobRun.origin == SIMULATE, JobRun.job_name == SIGNALS,
            JobRun.outcome == "success", JobRun.scheduled_for >= first, JobRun.scheduled_for < last)).all()
        paper, connection = Account(user_id, dry_run=True), db.connection()
        orders = order_count(connection, paper, start, end)
        fills, commission, tax = fill_totals(connection, paper, start, end)
        halts = halting_days(connection, user_id, start, end)
    initial = starting_equity(session_factory, user_id, start, initial_cash)
    daily = daily_snapshots(session_factory, user_id, start, end, initial)
    closes = [int(row["equity"]) for row in daily]
    final = closes[-1] if closes else initial
    performance, levels, source = (None, None, CAP_WEIGHTED) if calendar is None else _performance(
        session_factory, user_id, start, end, initial, daily, calendar)
    return ReplaySummary(start, end, sessions, dict(fires), int(orders), int(fills), int(commission), int(tax),
                         initial, final, max_drawdown_pct([initial, *closes]), int(halts), list(jobs), performance,
                         benchmark_levels=levels, benchmark_source=source,
                         unordered_signals=_unordered(signal_summaries))


def _unordered(summaries: Sequence[dict[str, Any] | None]) -> tuple[int, int]:
    """How many signal runs found entries but placed no order, and how many of those
    were sized by half-Kelly."""
    unordered = [summary for summary in summaries
                 if summary and summary.get("entries", 0) > 0 and summary.get("orders", 0) == 0]
    return len(unordered), sum(summary.get("sizing") == "half_kelly" for summary in unordered)


def _performance(session_factory: sessionmaker[DbSession], user_id: str, start: date, end: date, initial: int,
                 daily: list[dict[str, Any]], calendar: MarketCalendar) -> tuple[Performance, list[float] | None, str]:
    """The statistics of the window against the benchmark market's index over the same
    sessions (from the one before the first): its closes as the provider published them
    where they are stored for every one of those sessions, else a cap-weighted index of
    the stored prices (the simulated market's index)."""
    from services.data_collector.queries import index_closes, market_caps

    paper = Account(user_id, dry_run=True)
    days = [date.fromisoformat(row["trading_date"]) for row in daily]
    before = calendar.sessions(start - timedelta(days=14), start - timedelta(days=1))
    index_days = ([before[-1].date] if before else []) + days
    with session_factory() as db:
        connection = db.connection()
        trades = [Trade(opened, closed, pnl) for opened, closed, pnl in closed_trades(connection, paper, start, end)]
        traded = traded_amount(connection, paper, start, end)
        published = index_closes(connection, BENCHMARK_MARKET, index_days[0], end) if index_days else {}
        caps = market_caps(connection, BENCHMARK_MARKET, index_days[0], end) \
            if index_days and not all(day in published for day in index_days) else []
    complete = bool(index_days) and len(index_days) == len(days) + 1
    levels: list[float] | None
    if complete and all(day in published for day in index_days):
        levels, source = [published[day] for day in index_days], PUBLISHED
    else:
        levels, source = (cap_weighted_index(index_days, caps) if complete else None), CAP_WEIGHTED
    return measure([initial, *(int(row["equity"]) for row in daily)], trades=trades, traded=traded,
                   exposures=[float(row["exposure"]) for row in daily], benchmark=levels), levels, source


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
                 end: date, tz: ZoneInfo, initial_equity: int, summary: ReplaySummary | None = None,
                 data_source: str = "") -> list[Path]:
    """``snapshots.csv``, ``ledger.csv``, ``equity.png`` (equity against the benchmark,
    the trades marked, and the drawdown; its title gives the range and the data source)
    and ``report.html`` (the summary and the statistics, the chart, each session's close
    and the fills) in ``directory``."""
    from services.trading_engine.queries import fills

    directory.mkdir(parents=True, exist_ok=True)
    daily = daily_snapshots(session_factory, user_id, start, end, initial_equity, tz)
    with session_factory() as db:
        traded = fills(db.connection(), Account(user_id, dry_run=True), start, end)
    written = [_write_csv(directory / "snapshots.csv", SNAPSHOT_COLUMNS, daily),
               _write_csv(directory / "ledger.csv", LEDGER_COLUMNS, ledger_rows(session_factory, user_id, start,
                                                                                 end, tz))]
    title = f"Paper account {user_id}, {start} to {end}, data: {data_source or 'unknown'}"
    levels = summary.benchmark_levels if summary is not None else None
    benchmark = f"{summary.benchmark} ({summary.benchmark_source})" if summary is not None else BENCHMARK_MARKET
    chart = _plot_equity(directory / "equity.png", daily, title, initial_equity, levels, benchmark, traded)
    written.append(chart)
    written.append(_write_html(directory / "report.html", title, summary, daily, traded, tz, chart.name))
    return written


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plot_equity(path: Path, daily: list[dict[str, Any]], title: str, initial_equity: int,
                 levels: list[float] | None, benchmark: str, traded: Sequence[Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    days = [date.fromisoformat(row["trading_date"]) for row in daily]
    equity = {day: row["equity"] / 1e6 for day, row in zip(days, daily)}
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6), height_ratios=[3, 1])
    top.plot(days, [equity[day] for day in days], color="tab:blue", label="equity at the close")
    if levels is not None and len(levels) == len(days) + 1 and levels[0] > 0:
        scale = initial_equity / 1e6 / levels[0]  # the benchmark as if the starting equity were in it
        top.plot(days, [level * scale for level in levels[1:]], color="tab:gray", linestyle="--",
                 label=benchmark)
    for side, marker, color in (("buy", "^", "tab:red"), ("sell", "v", "tab:blue")):  # KRX: buys red
        marked = sorted({fill.trade_date for fill in traded if fill.side == side and fill.trade_date in equity})
        if marked:
            top.scatter(marked, [equity[day] for day in marked], marker=marker, color=color, s=28, zorder=3,
                        label=f"{side}s")
    top.set_ylabel("equity (million KRW)")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize="small")
    bottom.fill_between(days, [-row["drawdown_pct"] for row in daily], 0, color="tab:red", alpha=0.5)
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]  # matplotlib leaves both untyped
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _write_html(path: Path, title: str, summary: ReplaySummary | None, daily: list[dict[str, Any]],
                traded: Sequence[Any], tz: ZoneInfo, chart: str) -> Path:
    """One page, no asset from the network: the summary table, the chart, the sessions
    and the fills."""
    from html import escape

    def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
        head = "".join(f"<th>{escape(str(column))}</th>" for column in columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    summary_rows = [] if summary is None else [(row["what"], row["value"]) for row in summary.rows()]
    sessions = [(row["trading_date"], f"{int(row['equity']):,}", f"{int(row['cash']):,}",
                 f"{100 * float(row['exposure']):.1f}%", row["positions"], f"{float(row['drawdown_pct']):.2f}%")
                for row in daily]
    fills_rows = [(fill.filled_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), fill.ticker, fill.side,
                   f"{fill.quantity:,}", f"{fill.price:,}", f"{fill.commission:,}", f"{fill.tax:,}")
                  for fill in traded]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}
th,td{{border-bottom:1px solid #e3e6ec;padding:.25rem .6rem;text-align:left}}td:not(:first-child){{text-align:right}}
img{{max-width:100%}}h2{{margin-top:1.5rem}}</style></head><body>
<h1>{escape(title)}</h1>
<h2>Summary</h2>{table(["what", "value"], summary_rows)}
<h2>Equity, benchmark and trades</h2><img src="{escape(chart)}" alt="equity, benchmark, trades and drawdown">
<h2>Sessions ({len(sessions)})</h2>{table(["date", "equity", "cash", "exposure", "positions", "drawdown"], sessions)}
<h2>Fills ({len(fills_rows)})</h2>{table(["filled at", "ticker", "side", "quantity", "price", "commission", "tax"],
                                          fills_rows)}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
