"""``GET /metrics``: the orchestrator in the Prometheus text format.

Everything is read from the database at scrape time, in one snapshot transaction, by
a collector registered on a registry of its own for each scrape: every API process
beside any number of schedulers gives the same answer, and nothing is counted in a
process. The account is the runtime's settings' own (``user_id`` and ``dry_run``); no
row of another account is read.

- ``krx_orchestrator_runs_total{job,outcome}``: the account's ledger rows by outcome
  (success, failed, skipped, missed), every run since the ledger began: a row's
  outcome never changes once it is finished, so the counts only grow. Runs still
  going are ``krx_orchestrator_runs_in_progress{job}``.
- ``krx_orchestrator_run_duration_seconds{job}`` and
  ``krx_orchestrator_fire_lateness_seconds{job}``: histograms of the runs whose fire
  (``scheduled_for``) is in the last 24 hours (``HISTOGRAM_WINDOW``), bucketed in SQL.
  A window and not the whole ledger: a year of runs (25,000 rows) takes a tenth of a
  second to bucket on SQLite. So the buckets fall as well as rise: read them directly
  (``histogram_quantile(0.99, krx_orchestrator_fire_lateness_seconds_bucket)`` is the
  p99 of the last 24 hours), not through ``rate()``.
- ``krx_orchestrator_last_success_timestamp_seconds{job}`` (jobs that ever
  succeeded) and ``krx_orchestrator_next_fire_timestamp_seconds{job}`` (jobs that
  fire: enabled and installed), unix seconds.
- The account as its latest portfolio snapshot left it (none before the first):
  equity, cash, exposure, drawdown from the peak, the day's P&L, and when it was taken;
  the open positions now; whether trading is halted; the days of reviewed KRX calendar
  data left.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, bindparam, case, extract, func, select

from services.common.job_api import Account, Origin, Outcome
from services.common.market_calendar import KRX_TZ
from services.orchestrator import reports
from services.orchestrator.jobs import JOBS
from services.orchestrator.models import JobRun
from services.orchestrator.runtime import Runtime

PREFIX = "krx_orchestrator_"
#: the outcomes of finished runs, each a series of ``runs_total`` from the start
FINISHED_OUTCOMES = (Outcome.SUCCESS.value, Outcome.FAILED.value, Outcome.SKIPPED.value, Outcome.MISSED.value)
#: the fires whose lateness is measured: the scheduler's and its catch-up's
TIMED_ORIGINS = (Origin.SCHEDULE.value, Origin.CATCH_UP.value)
HISTOGRAM_WINDOW = timedelta(hours=24)
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_RUNS = JobRun.__table__
_RUNNING, _MISSED, _SUCCESS = Outcome.RUNNING.value, Outcome.MISSED.value, Outcome.SUCCESS.value


def render_metrics(runtime: Runtime) -> tuple[bytes, str]:
    """The metrics now, in the Prometheus text exposition format, and its content type."""
    registry = CollectorRegistry()
    registry.register(OrchestratorCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class OrchestratorCollector(Collector):
    """Reads the database at each ``collect()``: see the module."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        return families(read_state(self.runtime))


# --- what is read ----------------------------------------------------------------------------------


@dataclass
class Histogram:
    """Cumulative bucket counts (one per upper bound, then +Inf) and the sum."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def add(self, counts: Sequence[int], total: float) -> None:
        self.counts = [mine + more for mine, more in zip(self.counts, counts)]
        self.total += total

    def buckets(self) -> list[tuple[str, float]]:
        labels = [_bound(bound) for bound in self.bounds] + ["+Inf"]
        return list(zip(labels, (float(count) for count in self.counts)))


@dataclass(frozen=True)
class Snapshot:
    """The account's latest portfolio snapshot and what it is measured against."""

    taken_at: datetime
    equity: int
    cash: int
    exposure: float
    peak: int  # the highest snapshotted equity, the opening balance included
    base: int | None  # the previous trading date's last equity, else the opening balance


@dataclass(frozen=True)
class State:
    account: Account
    runs: dict[tuple[str, str], int]  # (job, outcome) -> finished runs
    running: dict[str, int]
    last_success: dict[str, datetime]
    durations: dict[str, Histogram]
    lateness: dict[str, Histogram]
    next_fires: dict[str, datetime]
    snapshot: Snapshot | None
    open_positions: int
    halted: bool
    calendar_days_left: int


def read_state(runtime: Runtime) -> State:
    """What the metrics say, read in one snapshot transaction."""
    from services.common.database import snapshot_transaction
    from services.risk_manager.halts import active_halt

    account, now = Account.of(runtime.settings), runtime.clock.now()
    factory = runtime.session_factory()
    with snapshot_transaction(factory) as connection:
        runs, running, last_success = _ledger_counts(connection, account)
        durations, lateness = _histograms(connection, account, now - HISTOGRAM_WINDOW)
        snapshot = _latest_snapshot(connection, account)
        open_positions = _open_positions(connection, account)
        halted = active_halt(connection, account.user_id) is not None
    statuses = reports.job_statuses(runtime.all_jobs, runtime.settings, runtime.triggers, now, {})
    return State(
        account=account, runs=runs, running=running, last_success=last_success, durations=durations,
        lateness=lateness,
        next_fires={status.name: status.next_fires[0] for status in statuses if status.next_fires},
        snapshot=snapshot, open_positions=open_positions, halted=halted,
        calendar_days_left=(runtime.calendar.valid_through - now.astimezone(KRX_TZ).date()).days,
    )


def _mine(account: Account) -> Any:
    return and_(_RUNS.c.user_id == account.user_id, _RUNS.c.dry_run == account.dry_run)


def _ledger_counts(connection: Connection, account: Account,
                   ) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, datetime]]:
    """The account's runs by (job, outcome), its running runs by job, and when each
    job last succeeded: one aggregate over the ledger."""
    rows = connection.execute(
        select(_RUNS.c.job_name, _RUNS.c.outcome, func.count(), func.max(_RUNS.c.finished_at))
        .where(_mine(account)).group_by(_RUNS.c.job_name, _RUNS.c.outcome)).all()
    runs: dict[tuple[str, str], int] = {}
    running: dict[str, int] = {}
    last_success: dict[str, datetime] = {}
    for row in rows:
        job, outcome, count, finished = str(row[0]), str(row[1]), int(row[2]), row[3]
        if outcome == _RUNNING:
            running[job] = count
            continue
        runs[(job, outcome)] = count
        if outcome == _SUCCESS and finished is not None:
            last_success[job] = finished
    return runs, running, last_success


@functools.lru_cache(maxsize=4)
def _histogram_statement(dialect: str) -> Any:
    """Each job's cumulative bucket counts and sums of run durations (finished runs
    that ran: not missed) and fire lateness (scheduled and caught-up fires that
    started; clamped at 0) over the fires from ``since``, built once per dialect."""
    duration = case((_RUNS.c.outcome.not_in([_RUNNING, _MISSED]),
                     _seconds(dialect, _RUNS.c.finished_at, _RUNS.c.started_at)))
    late = case((and_(_RUNS.c.origin.in_(TIMED_ORIGINS), _RUNS.c.outcome != _MISSED),
                 _seconds(dialect, _RUNS.c.started_at, _RUNS.c.scheduled_for)))
    window = select(_RUNS.c.job_name, duration.label("duration"), late.label("late")).where(
        _RUNS.c.user_id == bindparam("owner"), _RUNS.c.dry_run == bindparam("mode"),
        _RUNS.c.job_name.in_([job.name for job in JOBS]),  # the (job_name, scheduled_for) index's probes
        _RUNS.c.scheduled_for >= bindparam("since", type_=_RUNS.c.scheduled_for.type)).subquery()
    lateness = case((window.c.late < 0, 0.0), else_=window.c.late)
    return select(
        window.c.job_name,
        func.count(window.c.duration), func.coalesce(func.sum(window.c.duration), 0.0),
        *(func.sum(case((window.c.duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS),
        func.count(window.c.late), func.coalesce(func.sum(lateness), 0.0),
        *(func.sum(case((window.c.late <= bound, 1), else_=0)) for bound in LATENESS_BUCKETS),
    ).group_by(window.c.job_name)


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _histograms(connection: Connection, account: Account, since: datetime,
                ) -> tuple[dict[str, Histogram], dict[str, Histogram]]:
    durations = {job.name: Histogram(DURATION_BUCKETS) for job in JOBS}
    lateness = {job.name: Histogram(LATENESS_BUCKETS) for job in JOBS}
    statement = _histogram_statement(connection.dialect.name)
    width = len(DURATION_BUCKETS)
    for row in connection.execute(statement, {"owner": account.user_id, "mode": account.dry_run,
                                              "since": since}).all():
        job, values = row[0], row[1:]
        duration_count, duration_sum, duration_buckets = values[0], values[1], values[2:2 + width]
        late_values = values[2 + width:]
        late_count, late_sum, late_buckets = late_values[0], late_values[1], late_values[2:]
        durations.setdefault(job, Histogram(DURATION_BUCKETS)).add(
            [int(count or 0) for count in duration_buckets] + [int(duration_count)], float(duration_sum or 0))
        lateness.setdefault(job, Histogram(LATENESS_BUCKETS)).add(
            [int(count or 0) for count in late_buckets] + [int(late_count)], float(late_sum or 0))
    return durations, lateness


def _latest_snapshot(connection: Connection, account: Account) -> Snapshot | None:
    from services.trading_engine.models import PortfolioSnapshot
    from services.trading_engine.queries import equity_before, opening_balance

    mine = and_(PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run))
    latest = connection.execute(select(
        PortfolioSnapshot.taken_at, PortfolioSnapshot.trading_date, PortfolioSnapshot.equity,
        PortfolioSnapshot.cash, PortfolioSnapshot.exposure).where(mine)
        .order_by(PortfolioSnapshot.taken_at.desc()).limit(1)).first()
    if latest is None:
        return None
    peak = connection.scalar(select(func.max(PortfolioSnapshot.equity)).where(mine))  # ix_snapshots_equity
    opening = opening_balance(connection, account)
    previous = equity_before(connection, account, latest.trading_date)
    return Snapshot(latest.taken_at, int(latest.equity), int(latest.cash), float(latest.exposure),
                    max(int(peak or 0), opening or 0), previous if previous is not None else opening)


def _open_positions(connection: Connection, account: Account) -> int:
    from services.trading_engine.models import PositionRow

    return int(connection.scalar(select(func.count()).select_from(PositionRow).where(
        PositionRow.user_id == account.user_id, PositionRow.dry_run.is_(account.dry_run),
        PositionRow.quantity > 0)) or 0)


# --- what is shown -----------------------------------------------------------------------------------


def families(state: State) -> Iterator[Metric]:
    """The metric families of ``state``; every family is given, with no sample where
    there is nothing to say (no snapshot yet, a job that never succeeded)."""
    jobs = [job.name for job in JOBS] + sorted({job for job, _ in state.runs} - {job.name for job in JOBS})

    info = GaugeMetricFamily(PREFIX + "account_info", "The account these metrics are of (always 1).",
                             labels=["user_id", "mode"])
    info.add_metric([state.account.user_id, state.account.mode], 1)
    yield info

    runs = CounterMetricFamily(
        PREFIX + "runs", "Finished runs in the run ledger by job and outcome, since the ledger began.",
        labels=["job", "outcome"])
    for job in jobs:
        for outcome in FINISHED_OUTCOMES:
            runs.add_metric([job, outcome], state.runs.get((job, outcome), 0))
    yield runs

    running = GaugeMetricFamily(PREFIX + "runs_in_progress", "Runs claimed and not finished, by job.",
                                labels=["job"])
    for job in jobs:
        running.add_metric([job], state.running.get(job, 0))
    yield running

    window = f"{HISTOGRAM_WINDOW.total_seconds() / 3600:g} hours"
    yield _histogram(PREFIX + "run_duration_seconds",
                     f"Run durations (finished_at - started_at) of the finished runs (not missed) whose fire is in "
                     f"the last {window}, bucketed in SQL at scrape; a window, so read the buckets directly "
                     "rather than through rate().", state.durations, jobs)
    yield _histogram(PREFIX + "fire_lateness_seconds",
                     f"Fire lateness (started_at - scheduled_for, at least 0) of the scheduled and caught-up fires "
                     f"that started, whose fire is in the last {window}, bucketed in SQL at scrape; a window, so "
                     "read the buckets directly rather than through rate().", state.lateness, jobs)

    last = GaugeMetricFamily(PREFIX + "last_success_timestamp_seconds",
                             "When each job's latest successful run finished (unix seconds); none if it never "
                             "succeeded.", labels=["job"])
    for job in jobs:
        if job in state.last_success:
            last.add_metric([job], state.last_success[job].timestamp())
    yield last

    upcoming = GaugeMetricFamily(PREFIX + "next_fire_timestamp_seconds",
                                 "Each job's next fire (unix seconds); none for a job that does not fire "
                                 "(disabled or not installed).", labels=["job"])
    for job, fire in state.next_fires.items():
        upcoming.add_metric([job], fire.timestamp())
    yield upcoming

    snapshot = state.snapshot
    yield _gauge("equity_krw", "The account's equity (KRW) at its latest portfolio snapshot.",
                 None if snapshot is None else snapshot.equity)
    yield _gauge("cash_krw", "The account's cash (KRW) at its latest portfolio snapshot.",
                 None if snapshot is None else snapshot.cash)
    yield _gauge("exposure_ratio", "Market value / equity at the latest portfolio snapshot.",
                 None if snapshot is None else snapshot.exposure)
    yield _gauge("drawdown_ratio",
                 "How far the latest snapshot's equity is below the peak (the highest snapshotted equity or the "
                 "opening balance), as a fraction of the peak: 0.05 is 5% below, 0 at the peak.",
                 None if snapshot is None else (1 - snapshot.equity / snapshot.peak if snapshot.peak > 0 else 0.0))
    yield _gauge("day_pnl_krw",
                 "The latest snapshot's equity less the previous trading date's last snapshotted equity (before "
                 "any, the opening balance), KRW.",
                 None if snapshot is None or snapshot.base is None else snapshot.equity - snapshot.base)
    yield _gauge("portfolio_snapshot_timestamp_seconds", "When the latest portfolio snapshot was taken (unix seconds).",
                 None if snapshot is None else snapshot.taken_at.timestamp())
    yield _gauge("open_positions", "The account's open positions now.", state.open_positions)
    yield _gauge("halted", "1 while trading is halted for the user, else 0.", 1 if state.halted else 0)
    yield _gauge("calendar_days_left",
                 "Calendar days from today (KRX date) to the last date of reviewed KRX calendar data "
                 "(valid_through); negative once past it.", state.calendar_days_left)


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(PREFIX + name, documentation, labels=[])
    if value is not None:
        gauge.add_metric([], float(value))
    return gauge


def _histogram(name: str, documentation: str, histograms: dict[str, Histogram],
               jobs: Sequence[str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["job"])
    for job in jobs:
        histogram = histograms.get(job)
        if histogram is not None:
            family.add_metric([job], histogram.buckets(), histogram.total)
    return family


def _bound(bound: float) -> str:
    """An upper bound as Prometheus clients write it: ``0.25``, ``1.0``, ``300.0``."""
    return repr(float(bound))
