"""A sweep: the same replay once per value of one setting, each into a database of its
own (beside the simulation database), in parallel processes; one row per value."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from services.common.settings import ENV_PREFIX, Settings
from services.common.text import did_you_mean
from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.replay_settings import NOT_SHAPING


@dataclass(frozen=True)
class Sweep:
    env: str  # the setting's environment variable
    field: str
    values: list[str]  # as given
    parsed: list[Any]


@dataclass(frozen=True)
class SweepRow:
    value: str
    database: str
    figures: dict[str, str]  # SWEEP_COLUMNS -> the replay's figure, as shown
    failed: int


#: what the sweep's table shows of each replay
SWEEP_COLUMNS = ("return", "CAGR", "max DD", "Sharpe", "trades", "win rate", "fees+tax")


def parse_sweep(text: str) -> Sweep:
    """'NAME=v1,v2,...' (NAME: ORCHESTRATOR_STOP_LOSS_PCT or stop_loss_pct, a setting that
    shapes a replay: ``replay_settings.NOT_SHAPING`` are not), each value checked as the
    setting checks it."""
    name, _, values_text = text.partition("=")
    values = [value.strip() for value in values_text.split(",") if value.strip()]
    by_env = {field.metadata["env"]: field for field in fields(Settings) if "env" in field.metadata}
    by_name = {field.name: field for field in by_env.values()}
    key = name.strip()
    field = by_env.get(key) or by_env.get(ENV_PREFIX + key.upper()) or by_name.get(key.lower())
    if field is None or field.name in NOT_SHAPING:
        known = sorted({name for env, f in by_env.items() if f.name not in NOT_SHAPING for name in (env, f.name)})
        raise InvalidArgument("sweep", f"{key!r} is not a setting a sweep can vary; {did_you_mean(key, known)}"
                              "expected NAME=v1,v2,... with NAME a setting, e.g. ORCHESTRATOR_STOP_LOSS_PCT")
    if len(values) < 2:
        raise InvalidArgument("sweep", f"{text!r}: expected two values or more, e.g. {field.metadata['env']}=3,5,7")
    if len(set(values)) != len(values):
        raise InvalidArgument("sweep", f"{text!r}: a value is given twice")
    parser = field.metadata["parser"]
    parsed = []
    for value in values:
        try:
            parsed.append(parser(value))
        except ValueError as exc:
            raise InvalidArgument("sweep", f"{field.metadata['env']}={value}: {exc}") from None
    return Sweep(field.metadata["env"], field.name, values, parsed)


def sweep_databases(settings: Settings, sweep: Sweep) -> list[str]:
    """One SQLite database per value, beside the simulation database (a sweep needs the
    simulation database to be a SQLite file)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.simulation_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise InvalidArgument("sweep", "a sweep replays into SQLite files beside the simulation database; "
                                       "ORCHESTRATOR_SIMULATION_DATABASE_URL is not a SQLite file")
    base = Path(url.database)
    slug = sweep.env.removeprefix(ENV_PREFIX).lower()
    return [str(url.set(database=str(base.with_name(f"{base.stem}-{slug}-{_safe(value)}{base.suffix or '.db'}"))))
            for value in sweep.values]


def _safe(value: str) -> str:
    return "".join(character if character.isalnum() or character in ".-" else "_" for character in value)


def run_sweep(settings: Settings, sweep: Sweep, start: date, end: date, *, fresh: bool = False,
              workers: int | None = None) -> list[SweepRow]:
    """Each value's replay, in parallel processes (at most the CPUs), in value order.
    With more than one, none runs its market data ahead in another process
    (``replay_ahead``): the replays already keep the CPUs busy."""
    databases = sweep_databases(settings, sweep)
    ahead = None if len(databases) == 1 else False
    jobs = [(replace(settings, **{sweep.field: parsed}), start, end, database, fresh, ahead)
            for parsed, database in zip(sweep.parsed, databases)]
    count = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(_replay_one, jobs))
    return [SweepRow(value, database, figures, failed)
            for value, database, (figures, failed) in zip(sweep.values, databases, results)]


def _replay_one(job: tuple[Settings, date, date, str, bool, bool | None]) -> tuple[dict[str, str], int]:
    """One replay of the sweep (in a worker process): its summary rows and failures."""
    import logging

    from services.orchestrator.ops import replays

    logging.getLogger("services").setLevel(logging.WARNING)
    settings, start, end, database, fresh, ahead = job
    plan = replays.plan(settings, start, end, database_url=database)
    result = replays.run(plan, fresh=fresh, ahead=ahead)
    return figures(result.summary), result.failed


def figures(summary: Any) -> dict[str, str]:
    """A replay summary's figures for the sweep's table (``SWEEP_COLUMNS``; '-': none)."""
    p = summary.performance

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:+.2f}%"

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return {"return": f"{summary.return_pct:+.2f}%", "CAGR": pct(p.cagr if p else None),
            "max DD": f"{summary.max_drawdown_pct:.2f}%", "Sharpe": num(p.sharpe if p else None),
            "trades": str(p.trades if p else "-"),
            "win rate": "-" if p is None or p.win_rate is None else f"{100 * p.win_rate:.1f}%",
            "fees+tax": f"{summary.commission + summary.tax:,}"}
