"""What the orchestrator's commands do, as a library: the CLI (``main.py``) and the
REST API call the same functions.

Each operation takes a :class:`~services.orchestrator.runtime.Runtime` (or settings)
and plain arguments, and returns plain data; an argument that is not accepted raises
:class:`~services.orchestrator.ops.arguments.InvalidArgument` naming it. Nothing here
prints, and the caller owns the runtime (it closes it).

- ``arguments``: dates, times and ranges read from text; checks against the calendar
- ``schedule``: the KRX sessions and the fire times (calendar, next-runs)
- ``status``: settings, jobs, the calendar's horizon, the halt; the run ledger (history, runs);
  readiness (the database, its schema, a scheduler's heartbeat)
- ``service``: starting the scheduler (start)
- ``manual``: one job run now (run-job)
- ``halts``: halting and resuming trading
- ``console``: the console's mutations: their audit, and the job runs it queues for a scheduler
- ``emergency``: the emergency stop: halt, cancel every open order, and sell every position
- ``backfill``: collecting past sessions
- ``replays``: replaying the schedule on a virtual clock (simulate)
- ``sweeps``: one replay per value of a setting, in parallel (simulate --sweep)
- ``watchlist``: a user's watchlist with its entries and exits
- ``account``: the account at a glance: its summary, positions, orders, fills, daily P&L,
  equity snapshots
- ``risk``: the limits, the latest risk check's metrics, the breaches, the halt
- ``database``: migrations
- ``notify``: a test message to each notification channel
"""

from services.orchestrator.ops import (
    account,
    arguments,
    backfill,
    console,
    database,
    emergency,
    halts,
    manual,
    notify,
    replays,
    risk,
    schedule,
    service,
    status,
    sweeps,
    watchlist,
)

__all__ = ["account", "arguments", "backfill", "console", "database", "emergency", "halts", "manual", "notify",
           "replays", "risk", "schedule", "service", "status", "sweeps", "watchlist"]
