"""Catch-up when ``start`` begins: the fires missed while no orchestrator ran, and the
history of the jobs that keep one.

After downtime every missed fire is recorded ``missed``; the latest one of each job
still inside its deadline runs once (coalesced). Then each job that keeps a history
(``catch_up_on_start``) runs once for its latest trading date and fills what is missing.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services.common.alerts import Alert, raise_alert
from services.common.job_api import Outcome
from services.common.memory import release_memory
from services.orchestrator.ledger import CATCH_UP, SCHEDULE, RunRecord

if TYPE_CHECKING:
    from services.orchestrator.runner import JobRunner

logger = logging.getLogger(__name__)

#: After downtime, fires up to this far back (since each job's last recorded fire) are
#: recorded as missed; older ones are not looked for.
DOWNTIME_LOOKBACK = timedelta(days=7)


def history_on_start(runner: JobRunner, now: datetime) -> list[RunRecord]:
    """Run each job that keeps a history (``catch_up_on_start``) once for its latest
    trading date, unless its output for that date is already there (a restart with
    nothing missing records nothing); the job fills what is missing."""
    records = []
    with _batch_garbage_collection():
        for job_name in runner.scheduled_jobs():
            trigger, job = runner.triggers[job_name], runner.job(job_name)
            if not job.catch_up_on_start or runner.stop_requested():
                continue
            latest = trigger.previous_fire_time(now)
            if latest is None:
                continue
            day = trigger.trading_date(latest)
            if job.output is not None and job.work_done(runner.context(job_name, day, latest, CATCH_UP)):
                logger.info("%s for %s: already stored (%s)", job_name, day, job.output.name)
                continue
            records.append(runner.run_now(job_name, day, origin=CATCH_UP))
    release_memory()  # a history catch-up is the largest batch an idle scheduler runs
    return records


@contextmanager
def _batch_garbage_collection() -> Iterator[None]:
    """While a history catch-up runs, the garbage collector skips the objects that were
    there before it (modules, settings, the calendar: about 100,000), and collects less
    often: the catch-up allocates enough to trigger several full passes, each walking
    them all again (a tenth of a second of a first start; its peak memory is the same).
    Afterwards they are collected as before."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 5_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def fires_missed_during_downtime(runner: JobRunner, now: datetime) -> list[tuple[str, datetime]]:
    """Fires of the scheduled jobs since each one's last recorded fire (at most
    :data:`DOWNTIME_LOOKBACK` back) that never ran."""
    missed: list[tuple[str, datetime]] = []
    for job_name in runner.scheduled_jobs():
        trigger = runner.triggers[job_name]
        last = runner.ledger.latest_fire(job_name, (SCHEDULE, CATCH_UP))
        if last is None:
            continue  # a job that never ran here has no history to catch up
        start = max(last + timedelta(microseconds=1), now - DOWNTIME_LOOKBACK)
        missed.extend((job_name, fire) for fire in trigger.fire_times(start, now))
    return sorted(missed, key=lambda item: (item[1], item[0]))


def after_downtime(runner: JobRunner, now: datetime) -> list[RunRecord]:
    """After downtime: every missed fire is recorded; the latest one of each job still
    inside its window runs once (coalesced), in time order."""
    by_job: dict[str, list[datetime]] = {}
    for job_name, fire in fires_missed_during_downtime(runner, now):
        by_job.setdefault(job_name, []).append(fire)
    records: list[RunRecord] = []
    older = [(name, fire) for name, fires in by_job.items() for fire in fires[:-1]]
    records.extend(record_missed(runner, older, "orchestrator was not running"))
    for job_name, fires in sorted(by_job.items(), key=lambda item: item[1][-1]):
        if runner.stop_requested():
            break
        record = runner.run_fire(job_name, fires[-1], origin=CATCH_UP)
        if record:
            records.append(record)
    return sorted(records, key=lambda r: (r.scheduled_for, r.job_name))


def record_missed(runner: JobRunner, fires: list[tuple[str, datetime]], reason: str) -> list[RunRecord]:
    """Record ``fires`` missed (those not recorded yet), and alert them in one line."""
    rows = [(name, fire, runner.triggers[name].trading_date(fire)) for name, fire in fires]
    recorded = runner.ledger.record_many(rows, Outcome.MISSED, reason, origin=CATCH_UP)
    if recorded:
        first, last = min(fire for _, fire in fires), max(fire for _, fire in fires)
        raise_alert(logger, Alert("run_missed", f"{len(recorded)} fires were missed while the orchestrator "
                                  f"was not running ({first.isoformat()} to {last.isoformat()})", {
                                      "fires": len(recorded), "reason": reason, "user_id": runner.settings.user_id,
                                      "first": first.isoformat(), "last": last.isoformat()}))
    return [RunRecord(run_id, name, fire, day, Outcome.MISSED, reason=reason)
            for run_id, (name, fire, day) in recorded]
