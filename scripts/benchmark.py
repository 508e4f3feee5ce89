"""Benchmarks with budgets, printed as a table with a baseline beside each figure.

    python scripts/benchmark.py            # everything
    python scripts/benchmark.py --only status --repeat 7

Each benchmark returns one row: what was measured, our figure, the baseline's figure,
the budget and whether it was met. Subprocess timings are wall-clock medians of fresh
processes (a "cold" CLI call: new interpreter, warm OS file cache, warm calendar cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KST = ZoneInfo("Asia/Seoul")
YEAR_START = datetime(2026, 1, 1, tzinfo=KST)
YEAR_END = datetime(2027, 1, 1, tzinfo=KST)


@dataclass
class Row:
    name: str
    ours: float
    baseline: float | None
    unit: str
    budget: str
    ok: bool
    note: str = ""


def _env(workdir: Path, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_") and k != "DATABASE_URL"}
    env.update({"PYTHONPATH": str(REPO), "ORCHESTRATOR_CACHE_DIR": str(cache_dir),
                "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}"})
    return env


def _time_command(args: list[str], env: dict[str, str], cwd: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(args, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


CLI = [sys.executable, "-m", "services.orchestrator.main"]
LIBRARY_ONLY = [sys.executable, "-c",
                "import warnings; warnings.simplefilter('ignore');"
                "import pandas_market_calendars as m;"
                "m.get_calendar('XKRX').schedule('2026-01-01', '2026-12-31')"]


def bench_cold_status(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    env = _env(workdir, cache_dir)
    subprocess.run(CLI + ["migrate"], env=env, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    ours = _time_command(CLI + ["status"], env, workdir, repeat)
    baseline = _time_command(LIBRARY_ONLY, env, workdir, repeat)
    empty_cache = Path(tempfile.mkdtemp(prefix="krx-empty-cache-"))
    first = _time_command(CLI + ["status"], _env(workdir, empty_cache), workdir, 1)
    shutil.rmtree(empty_cache, ignore_errors=True)
    return [
        Row("cold `status` (calendar cache warm)", ours, baseline, "s", "< 1.5 s", ours < 1.5,
            "baseline: a process that only builds one year with pandas-market-calendars"),
        Row("first-ever `status` (empty calendar cache)", first, baseline, "s", "(informational)", True,
            "builds 2015-2027 once and writes the cache"),
    ]


def bench_cold_next_runs(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    env = _env(workdir, cache_dir)
    args = CLI + ["next-runs", "--start", "2026-01-01", "--end", "2027-01-01", "--format", "csv"]
    ours = _time_command(args, env, workdir, repeat)
    baseline = _time_command(LIBRARY_ONLY, env, workdir, repeat)
    return [Row("cold `next-runs` for a year, all jobs (csv)", ours, baseline, "s", "< 1.5 s", ours < 1.5,
                "baseline: the library's one-year schedule alone")]


def bench_year_of_fires(_workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    from services.common.market_calendar import load_calendar
    from services.common.settings import load_settings
    from services.orchestrator.jobs import JOBS, build_triggers
    from services.orchestrator.reports import next_runs

    settings = load_settings({}, environ={}, env_file=Path("/nonexistent"))
    calendar = load_calendar(cache_dir)
    triggers = build_triggers(settings, calendar)
    next_runs(JOBS, triggers, YEAR_START, YEAR_END)  # warm-up

    def ours() -> int:
        return len(next_runs(JOBS, triggers, YEAR_START, YEAR_END))

    def baseline() -> int:  # APScheduler's way: ask each trigger for the next fire, one at a time
        count = 0
        for trigger in triggers.values():
            fire = trigger.get_next_fire_time(None, YEAR_START)
            while fire is not None and fire < YEAR_END:
                count += 1
                fire = trigger.get_next_fire_time(fire, fire)
        return count

    ours_s, count = _best(ours, repeat)
    base_s, base_count = _best(baseline, max(1, repeat // 3))
    assert count == base_count, (count, base_count)
    return [Row(f"a year of fire times, all jobs, warm ({count} fires)", ours_s * 1000, base_s * 1000,
                "ms", "< 100 ms", ours_s < 0.1, "baseline: get_next_fire_time loop per trigger")]


# --- start: a first `make run` in a fresh directory, until its ready line ----------------------

READY_TIMEOUT = 120  # seconds: a start that takes longer has failed


def bench_startup(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    """``start`` in a fresh directory (new SQLite database under ./data, the simulated
    market, 250 sessions to catch up), from spawn to its ``ready:`` line; then SIGINT,
    and it must exit 0. Each run in a directory of its own, with a warm calendar cache
    and with an empty one; beside them, the same work without the scheduler, and a
    restart of the same directory with nothing missing."""
    warm, cold, restart, raw, sessions = [], [], [], [], set()
    for _ in range(repeat):
        run = _fresh_directory(workdir)
        warm.append(_until_line(CLI + ["start"], _start_env(run, cache_dir), run, "ready: ", interrupt=True))
        sessions.add(_collected_sessions(run / "data" / "orchestrator.db"))
        restart.append(_until_line(CLI + ["start"], _start_env(run, cache_dir), run, "ready: ", interrupt=True))
        run = _fresh_directory(workdir)
        cold.append(_until_line(CLI + ["start"], _start_env(run, run / "empty-cache"), run, "ready: ",
                                interrupt=True))
        run = _fresh_directory(workdir)
        raw.append(_until_line(RAW_START, _start_env(run, cache_dir), run, "done", interrupt=False))
    ours, cold_s = statistics.median(warm), statistics.median(cold)
    restart_s, raw_s = statistics.median(restart), statistics.median(raw)
    caught_up = "/".join(str(count) for count in sorted(sessions))
    return [
        Row(f"`start` in a fresh directory -> ready ({caught_up} sessions caught up), calendar cache warm",
            ours, raw_s, "s", "< 5 s", ours < 5,
            "spawn to `ready:`; baseline: the same work without CLI and scheduler (benchkit/raw_start.py)"),
        Row("  the same, calendar cache empty", cold_s, ours, "s", "< 5 s", cold_s < 5,
            "baseline: the warm-cache start (the difference builds the 2015-2027 calendar once)"),
        Row("  `start` again in the same directory (nothing missing) -> ready", restart_s, None, "s",
            "(informational)", True, "what every start costs: imports, calendar, database, scheduler"),
    ]


RAW_START = [sys.executable, "-m", "scripts.benchkit.raw_start"]


def _fresh_directory(workdir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="start-", dir=workdir))


def _start_env(run: Path, cache_dir: Path) -> dict[str, str]:
    """A first start's environment: the host's without its orchestrator settings (the
    defaults: simulated market, dry run, SQLite under ./data, INFO logging), its home,
    caches and temp dir inside ``run`` (nothing is written anywhere else)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("ORCHESTRATOR_", "KIS_")) and name not in ("DATABASE_URL", "LOG_LEVEL")}
    for name, directory in (("HOME", "home"), ("XDG_CACHE_HOME", "cache"), ("TMPDIR", "tmp")):
        (run / directory).mkdir(exist_ok=True)
        env[name] = str(run / directory)
    env.update({"PYTHONPATH": str(REPO), "ORCHESTRATOR_CACHE_DIR": str(cache_dir),
                "ORCHESTRATOR_API_PORT": "0"})  # the console on a free port: runs never collide
    return env


def _until_line(args: list[str], env: dict[str, str], cwd: Path, marker: str, *, interrupt: bool) -> float:
    """Seconds from spawning ``args`` to the first stderr line containing ``marker``;
    then SIGINT (``interrupt``) or let it end, and require exit 0."""
    import threading

    lines: list[str] = []
    seen = threading.Event()
    at = [0.0]
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if not seen.is_set() and marker in line:
                at[0] = time.perf_counter()
                seen.set()
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = started + READY_TIMEOUT
        while not seen.wait(0.05) and process.poll() is None and time.perf_counter() < deadline:
            pass
        if seen.is_set() and interrupt:
            process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60 if seen.is_set() else 0.1)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
    if not seen.is_set() or code != 0:
        what = f"exited {code}" if seen.is_set() else f"wrote no {marker.strip()!r} line (exit {process.returncode})"
        raise RuntimeError(f"{' '.join(args[1:])} {what}: {''.join(lines[-5:])}")
    return at[0] - started


def _collected_sessions(database: Path) -> int:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM collected_sessions").fetchone()[0])


def bench_idle_memory(workdir: Path, cache_dir: Path, _repeat: int) -> list[Row]:
    """``start`` on a migrated database, measured once its start-up catch-up (250
    sessions of simulated data) has finished and it only waits for fires."""
    env = _env(workdir, cache_dir)
    env["DATABASE_URL"] = f"sqlite:///{workdir / 'idle.db'}"
    subprocess.run(CLI + ["migrate"], env=env, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    process = subprocess.Popen(CLI + ["start"], env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for_catch_up(workdir / "idle.db", timeout=120)
        time.sleep(2)
        rss_kb = _rss_kb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    baseline_kb = _python_baseline_rss_kb()
    mb = rss_kb / 1024
    return [Row("idle `start` resident memory", mb, baseline_kb / 1024, "MB", "< 150 MB", mb < 150,
                "baseline: a bare interpreter that imported pandas")]


def _wait_for_catch_up(database: Path, timeout: float) -> None:
    import sqlite3

    from services.common.job_api import Origin

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(database) as connection:
                done = connection.execute("SELECT count(*) FROM job_runs WHERE origin = ? AND finished_at IS NOT NULL",
                                          (Origin.CATCH_UP.value,)).fetchone()[0]
            if done:
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the start-up catch-up did not finish")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _python_baseline_rss_kb() -> int:
    code = ("import pandas, time\n"
            "for l in open('/proc/self/status'):\n"
            "    l.startswith('VmRSS:') and print(l.split()[1])")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _best(func: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - started)
    return best, result


BACKFILL_START, BACKFILL_END = "2025-11-13", "2026-11-20"  # 250 sessions


def bench_backfill(workdir: Path, cache_dir: Path, _repeat: int) -> list[Row]:
    """A full-universe backfill through the CLI, against ORM row-by-row inserts."""
    import resource

    env = _env(workdir, cache_dir)
    env.update({"ORCHESTRATOR_SIMULATED_UNIVERSE": "2800",
                "DATABASE_URL": f"sqlite:///{workdir / 'backfill.db'}"})
    started = time.perf_counter()
    subprocess.run(CLI + ["backfill", "--start", BACKFILL_START, "--end", BACKFILL_END],
                   env=env, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = _stored_rows(workdir / "backfill.db")
    base_rows, base_seconds = _orm_baseline(workdir, cache_dir, sessions=3)
    ours_rate, base_rate = rows / seconds, base_rows / base_seconds
    return [
        Row(f"backfill 2,800 tickers x 250 sessions, end to end ({rows:,} rows)", seconds, None, "s",
            "< 20 s", seconds < 20, "CLI `backfill` into SQLite, simulated provider"),
        Row("  rows stored per second", ours_rate / 1000, base_rate / 1000, "k rows/s", ">= 10x baseline",
            ours_rate >= 10 * base_rate, f"baseline: ORM row-by-row merge ({ours_rate / base_rate:.0f}x)"),
        Row("  peak memory of the backfill process", peak_mb, None, "MB", "< 500 MB", peak_mb < 500),
    ]


def _stored_rows(database: Path) -> int:
    import sqlite3

    with sqlite3.connect(database) as connection:
        return sum(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                   for table in ("daily_prices", "fundamentals"))


def _orm_baseline(workdir: Path, cache_dir: Path, sessions: int) -> tuple[int, float]:
    """The naive way: the same fetch and validation, then one ORM ``merge`` per row
    (the ORM's idempotent upsert: a SELECT by key, then an INSERT or UPDATE)."""
    from datetime import date

    from services.common.clock import FixedClock
    from services.common.database import create_db_engine, make_session_factory, migrate
    from services.common.market_calendar import load_calendar
    from services.data_collector.models import DailyPrice, Fundamental
    from services.data_collector.providers.simulated import SimulatedProvider
    from services.data_collector.validation import validate_snapshot

    calendar = load_calendar(cache_dir)
    provider = SimulatedProvider(calendar=calendar, seed=42, universe_size=2800,
                                 clock=FixedClock(datetime(2026, 11, 21, tzinfo=UTC)))
    engine = create_db_engine(f"sqlite:///{workdir / 'baseline.db'}")
    migrate(engine)
    factory = make_session_factory(engine)
    days = [s.date for s in calendar.sessions(date(2026, 11, 10), date(2026, 11, 20))][:sessions]
    provider.fetch_session(days[0])  # build the path outside the timing
    rows, started = 0, time.perf_counter()
    for day in days:
        validated = validate_snapshot(provider.fetch_session(day))
        with factory.begin() as session:
            for record in validated.prices.to_dict("records"):
                session.merge(DailyPrice(**record))
                rows += 1
            for record in validated.fundamentals.to_dict("records"):
                session.merge(Fundamental(**record))
                rows += 1
    seconds = time.perf_counter() - started
    engine.dispose()
    return rows, seconds


def _universe_prices(cache_dir: Path, tickers: int, sessions: int):  # -> pd.DataFrame
    from datetime import date

    import pandas as pd

    from services.common.clock import FixedClock
    from services.common.market_calendar import load_calendar
    from services.data_collector.providers.simulated import SimulatedProvider

    calendar = load_calendar(cache_dir)
    provider = SimulatedProvider(calendar=calendar, seed=42, universe_size=tickers,
                                 clock=FixedClock(datetime(2026, 11, 21, tzinfo=UTC)))
    days = [s.date for s in calendar.sessions(date(2020, 1, 1), date(2026, 11, 20))][-sessions:]
    frame = pd.concat([provider.fetch_session(day).prices for day in days], ignore_index=True)
    return frame[["ticker", "date", "open", "high", "low", "close", "volume"]]


def _pandas_loop_baseline(prices):  # the usual way: one ticker at a time with pandas
    import pandas as pd

    results = []
    for _, group in prices.sort_values(["ticker", "date"]).groupby("ticker", sort=False):
        close, high, low = group["close"].astype(float), group["high"].astype(float), group["low"].astype(float)
        out = pd.DataFrame(index=group.index)
        for n in (5, 20, 60, 120):
            out[f"sma_{n}"] = close.rolling(n).mean()
        for n in (12, 26, 20):
            out[f"ema_{n}"] = close.ewm(span=n, adjust=False).mean()
        change = close.diff()
        gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-change.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
        out["rsi_14"] = 100 * gain / (gain + loss)
        out["macd"] = out["ema_12"] - out["ema_26"]
        out["macd_signal"] = out["macd"].ewm(span=9, adjust=False).mean()
        out["macd_hist"] = out["macd"] - out["macd_signal"]
        middle, deviation = close.rolling(20).mean(), close.rolling(20).std(ddof=0)
        out["bb_upper"], out["bb_middle"], out["bb_lower"] = middle + 2 * deviation, middle, middle - 2 * deviation
        ranges = pd.concat([high - low, (high - close.shift()).abs(), (low - close.shift()).abs()], axis=1).max(axis=1)
        out["atr_14"] = ranges.ewm(alpha=1 / 14, adjust=False).mean()
        lowest, highest = low.rolling(14).min(), high.rolling(14).max()
        out["stoch_k"] = (100 * (close - lowest) / (highest - lowest)).rolling(3).mean()
        out["stoch_d"] = out["stoch_k"].rolling(3).mean()
        volume = group["volume"].astype(float)
        out["volume_ratio_20"] = volume / volume.rolling(20).mean()
        results.append(out)
    return pd.concat(results).reindex(prices.index)


def bench_indicators(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    from services.indicator_calculator.technical import compute_indicators

    prices = _universe_prices(cache_dir, 2800, 500)
    first_s, _ = _best(lambda: len(compute_indicators(prices)), 1)  # the process's first call
    ours_s, _ = _best(lambda: len(compute_indicators(prices)), max(2, repeat // 2))
    base_s, _ = _best(lambda: len(_pandas_loop_baseline(prices)), 1)
    rows = [Row(f"indicators, 2,800 tickers x 500 sessions ({len(prices):,} rows)", ours_s, base_s, "s",
                "< 2 s and >= 10x", ours_s < 2 and base_s / ours_s >= 10,
                f"baseline: a pandas loop over tickers ({base_s / ours_s:.0f}x); best of repeats"),
            Row("  the same, first call of a fresh process", first_s, base_s, "s", "< 2 s", first_s < 2,
                "includes the first touch of the memory its temporaries use")]
    rows.append(_bench_incremental(workdir, cache_dir))
    return rows


def _bench_incremental(workdir: Path, cache_dir: Path) -> Row:
    """One date of indicators on a database holding 250 sessions of the full universe."""
    from datetime import date

    from services.common.clock import FixedClock
    from services.common.database import create_db_engine, make_session_factory
    from services.common.market_calendar import load_calendar
    from services.indicator_calculator.calculator import calculate

    database = workdir / "backfill.db"
    if not database.exists():
        bench_backfill(workdir, cache_dir, 1)
    engine = create_db_engine(f"sqlite:///{database}")
    factory = make_session_factory(engine)
    calendar = load_calendar(cache_dir)
    clock = FixedClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    calculate([date(2026, 11, 19)], session_factory=factory, calendar=calendar, now=clock.now)  # warm
    seconds, _ = _best(lambda: len(calculate([date(2026, 11, 20)], session_factory=factory,
                                             calendar=calendar, now=clock.now).dates), 3)
    engine.dispose()
    return Row("daily incremental indicators, one date, 2,800 tickers", seconds, None, "s", "< 1 s",
               seconds < 1, "one step from the stored previous session: reads 120 sessions of closes")


# --- trading: pre-open signals and a monitoring tick -------------------------------------------------

TRADE_DAY = datetime(2026, 11, 20, tzinfo=KST).date()
PREVIOUS_DAY = datetime(2026, 11, 19, tzinfo=KST).date()
POSITIONS = 20


def _trading_database(workdir: Path, cache_dir: Path, users: int):  # -> (session_factory, calendar, settings)
    """The previous session of the full 2,800-ticker simulated market with indicators,
    each user's 20-ticker watchlist of it, and 20 open paper positions per user."""
    import numpy as np
    from sqlalchemy import insert

    from scripts.benchkit.fixtures import make_settings
    from services.common.clock import FixedClock
    from services.common.database import create_db_engine, make_session_factory, migrate, upsert_columns
    from services.common.market_calendar import load_calendar
    from services.data_collector.collector import store_snapshot
    from services.data_collector.providers.simulated import SimulatedProvider
    from services.data_collector.validation import validate_snapshot
    from services.indicator_calculator.models import TechnicalIndicator
    from services.trading_engine.models import PaperAccount, PositionRow
    from services.watchlist_manager.manager import update_watchlist
    from services.watchlist_manager.scoring import WatchlistRules

    settings = make_settings(simulated_universe="2800", portfolio_value="100000000",
                             entry_rules="trend>=0.5,momentum>=0.3,rsi_14<80")
    calendar = load_calendar(cache_dir)
    engine = create_db_engine(f"sqlite:///{workdir / 'trading.db'}")
    migrate(engine)
    factory = make_session_factory(engine)
    provider = SimulatedProvider(calendar=calendar, clock=FixedClock(datetime(2026, 11, 19, 17, 0, tzinfo=KST)),
                                 universe_size=2800)
    snapshot = provider.fetch_session(PREVIOUS_DAY)
    prices = snapshot.prices
    rng = np.random.default_rng(7)
    close = prices["close"].to_numpy(dtype=float)
    n = len(prices)
    technical = {"date": [PREVIOUS_DAY] * n, "ticker": prices["ticker"].tolist(),
                 "sma_20": (close * rng.uniform(0.9, 1.1, n)).tolist(),
                 "sma_60": (close * rng.uniform(0.85, 1.15, n)).tolist(),
                 "sma_120": (close * rng.uniform(0.8, 1.2, n)).tolist(),
                 "rsi_14": rng.uniform(25, 85, n).tolist(), "macd_hist": rng.normal(0, close * 0.01).tolist(),
                 "atr_14": (close * rng.uniform(0.01, 0.05, n)).tolist(),
                 "volume_ratio_20": rng.uniform(0.5, 2.0, n).tolist()}
    held = prices[prices["volume"] > 0].sample(POSITIONS, random_state=1)
    with factory.begin() as session:
        connection = session.connection()
        store_snapshot(connection, validate_snapshot(snapshot), provider.name,
                       datetime(2026, 11, 19, 17, 0, tzinfo=KST))
        upsert_columns(connection, TechnicalIndicator.__table__, technical, ["date", "ticker"])
        for user in range(users):
            user_id = f"bench{user}"
            update_watchlist(connection, user_id, PREVIOUS_DAY, WatchlistRules.from_settings(settings))
            connection.execute(insert(PaperAccount).values(user_id=user_id, initial_cash=100_000_000,
                                                           cash=60_000_000, opened_at=datetime.now(KST)))
            connection.execute(insert(PositionRow), [
                {"user_id": user_id, "dry_run": True, "ticker": ticker, "quantity": max(1, 2_000_000 // price),
                 "cost": max(1, 2_000_000 // price) * price, "opened_on": PREVIOUS_DAY, "high_water": price}
                for ticker, price in zip(held["ticker"], held["close"].astype(int))])
    return factory, calendar, settings, engine


def _signal_context(factory, calendar, settings, user_id: str, job: str, when: datetime):
    from services.common.clock import FixedClock
    from services.common.job_api import JobContext

    return JobContext(job_name=job, trading_date=TRADE_DAY, scheduled_for=when,
                      settings=replace(settings, user_id=user_id, dry_run=True),
                      session_factory=factory, clock=FixedClock(when), calendar=calendar)


def _naive_signals(factory, user_id: str) -> int:
    """The usual way: walk the universe, loading each ticker's rows through the ORM."""
    from sqlalchemy import select

    from services.data_collector.models import DailyPrice
    from services.indicator_calculator.models import TechnicalIndicator
    from services.watchlist_manager.models import WatchlistEntry

    found = 0
    with factory() as session:
        listed = {e.ticker: e for e in session.scalars(select(WatchlistEntry).where(
            WatchlistEntry.user_id == user_id, WatchlistEntry.date == PREVIOUS_DAY))}
        for ticker in session.scalars(select(DailyPrice.ticker).where(DailyPrice.date == PREVIOUS_DAY)).all():
            price = session.get(DailyPrice, (PREVIOUS_DAY, ticker))
            indicator = session.get(TechnicalIndicator, (PREVIOUS_DAY, ticker))
            entry = listed.get(ticker)
            if entry and price and indicator and entry.trend >= 0.5 and indicator.rsi_14 < 80:
                found += 1
    return found


def bench_trading(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    from services.trading_engine import engine, monitor

    runs = max(3, repeat)
    factory, calendar, settings, db = _trading_database(workdir, cache_dir, runs + 1)
    pre_open = datetime(2026, 11, 20, 8, 45, tzinfo=KST)
    users = iter(range(runs + 1))

    def generate() -> int:
        ctx = _signal_context(factory, calendar, settings, f"bench{next(users)}", "signal_generation", pre_open)
        result = engine.run(ctx)
        assert result.status.value == "success", result
        return int(result.summary["orders"])

    generate()  # the process's first run (imports, statement compilation)
    signal_s, orders = _best(generate, runs - 1)
    naive_s, _ = _best(lambda: _naive_signals(factory, "bench0"), 1)

    ticks = iter(datetime(2026, 11, 20, 9, 0, tzinfo=KST) + timedelta(minutes=15 * k) for k in range(27))

    def one_tick() -> int:
        ctx = _signal_context(factory, calendar, settings, "bench0", "position_monitoring", next(ticks))
        result = monitor.run(ctx)
        assert result.status.value == "success", result
        return int(result.summary["positions"])

    cold_s, _ = _best(one_tick, 1)  # builds the simulated day's bars (the whole 2,800-ticker walk)
    tick_s, positions = _best(one_tick, min(runs, 20))
    db.dispose()
    return [
        Row(f"signal generation, 2,800-ticker universe, {POSITIONS} positions ({orders} orders)", signal_s,
            naive_s, "s", "< 1 s", signal_s < 1,
            "the whole job: checks, reads, signals, sizing, paper orders, commit; baseline: ORM walk of the universe"),
        Row(f"one monitoring tick, {positions} positions, simulated intraday prices", tick_s, cold_s, "s",
            "< 0.2 s", tick_s < 0.2, "baseline: the process's first tick, which builds the day's bars"),
    ]


# --- risk: one check of an account with a year of snapshots ------------------------------------------

RISK_USER = "risk0"


def _risk_database(workdir: Path, cache_dir: Path):  # -> (session_factory, calendar, settings, engine)
    """20 open paper positions, their closes of 2026-11-20, 100 closed trades and a
    snapshot at every monitoring tick of every 2026 session up to then."""
    from sqlalchemy import insert

    from scripts.benchkit.fixtures import make_settings
    from services.common.database import create_db_engine, make_session_factory, migrate
    from services.common.market_calendar import load_calendar
    from services.data_collector.models import CollectedSession, DailyPrice
    from services.trading_engine.models import (
        ClosedTrade,
        FillRow,
        OrderRow,
        PaperAccount,
        PortfolioSnapshot,
        PositionRow,
    )

    settings = make_settings(portfolio_value="100000000")
    calendar = load_calendar(cache_dir)
    engine = create_db_engine(f"sqlite:///{workdir / 'risk.db'}")
    migrate(engine)
    factory = make_session_factory(engine)
    tickers = [f"{100000 + 7 * k:06d}" for k in range(POSITIONS)]
    sessions = calendar.sessions(datetime(2026, 1, 1).date(), TRADE_DAY)
    stamp = datetime(2026, 1, 2, 9, 0, tzinfo=KST)
    with factory.begin() as session:
        c = session.connection()
        c.execute(insert(PaperAccount).values(user_id=RISK_USER, initial_cash=100_000_000, cash=40_000_000,
                                              opened_at=stamp))
        c.execute(insert(PositionRow), [{"user_id": RISK_USER, "dry_run": True, "ticker": t, "quantity": 300,
                                         "cost": 3_000_000, "opened_on": PREVIOUS_DAY, "high_water": 10_500}
                                        for t in tickers])
        c.execute(insert(DailyPrice), [{"date": TRADE_DAY, "ticker": t, "open": 10_000, "high": 10_500, "low": 9_800,
                                        "close": 10_000 + 50 * k, "volume": 1_000_000, "value": 10**10,
                                        "change_pct": 0.0, "market_cap": 10**12, "market": "KOSPI", "halted": False}
                                       for k, t in enumerate(tickers)])
        c.execute(insert(CollectedSession).values(date=TRADE_DAY, provider="simulated", stock_rows=20, price_rows=20,
                                                  fundamental_rows=0, rejected_rows=0, collected_at=stamp))
        order_id = c.execute(insert(OrderRow).values(
            user_id=RISK_USER, client_order_id="bench", broker="paper", broker_order_id=None, trading_date=TRADE_DAY,
            ticker=tickers[0], side="sell", order_type="market", quantity=1, limit_price=None, status="filled",
            filled_quantity=1, reserved_cash=0, reason="bench", dry_run=True, created_at=stamp,
            updated_at=stamp)).inserted_primary_key[0]
        for k in range(100):
            fill_id = c.execute(insert(FillRow).values(
                order_id=order_id, fill_key=f"bench:{k}", user_id=RISK_USER, ticker=tickers[k % POSITIONS],
                side="sell", quantity=10, price=10_000, commission=15, tax=200, trade_date=TRADE_DAY,
                settles_on=TRADE_DAY, filled_at=stamp, dry_run=True)).inserted_primary_key[0]
            c.execute(insert(ClosedTrade).values(fill_id=fill_id, user_id=RISK_USER, dry_run=True,
                                                 ticker=tickers[k % POSITIONS], opened_on=PREVIOUS_DAY,
                                                 closed_on=TRADE_DAY, quantity=10, cost=95_000,
                                                 proceeds=99_785, pnl=4_785 if k % 3 else -5_215))
        snapshots = [{"user_id": RISK_USER, "dry_run": True, "taken_at": s.open + timedelta(minutes=15 * k),
                      "trading_date": s.date, "cash": 40_000_000, "settled_cash": 40_000_000,
                      "market_value": 60_000_000, "equity": 100_000_000 + 1_000 * (i % 97) + k,
                      "exposure": 0.6, "unrealised_pnl": 0, "positions": POSITIONS, "prices_observed": True}
                     for i, s in enumerate(sessions) for k in range(27)]
        c.execute(insert(PortfolioSnapshot), snapshots)
    return factory, calendar, settings, engine, len(snapshots)


def _naive_risk_check(factory) -> int:
    """The usual way: load the account's rows through the ORM and compute in Python."""
    from sqlalchemy import select

    from services.data_collector.models import DailyPrice
    from services.trading_engine.models import ClosedTrade, PaperAccount, PortfolioSnapshot, PositionRow

    with factory() as session:
        account = session.get(PaperAccount, RISK_USER)
        positions = session.scalars(select(PositionRow).where(PositionRow.user_id == RISK_USER)).all()
        value = sum(p.quantity * session.get(DailyPrice, (TRADE_DAY, p.ticker)).close for p in positions)
        snapshots = session.scalars(select(PortfolioSnapshot).where(PortfolioSnapshot.user_id == RISK_USER)
                                    .order_by(PortfolioSnapshot.taken_at)).all()
        peak = max(s.equity for s in snapshots)
        previous = [s for s in snapshots if s.trading_date < TRADE_DAY][-1].equity
        realised = sum(t.pnl for t in session.scalars(select(ClosedTrade).where(ClosedTrade.user_id == RISK_USER)))
        equity = account.cash + value
        return int(equity - previous + peak + realised)


def bench_risk(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    from services.common.clock import FixedClock
    from services.common.job_api import JobContext
    from services.orchestrator.jobs import get_job

    run_risk_check = get_job("risk_checks").load_entry_point()  # wherever the registry has it
    factory, calendar, settings, db, snapshots = _risk_database(workdir, cache_dir)
    night = datetime(2026, 11, 21, 20, 0, tzinfo=KST)

    def check() -> int:
        ctx = JobContext(job_name="risk_checks", trading_date=night.date(), scheduled_for=night,
                         settings=replace(settings, user_id=RISK_USER, dry_run=True),
                         session_factory=factory, clock=FixedClock(night), calendar=calendar)
        result = run_risk_check(ctx)
        assert result.status.value == "success" and result.summary["priced"] == POSITIONS, result
        return int(result.summary["positions"])

    check()  # the process's first check (imports, statement compilation)
    seconds, positions = _best(check, max(5, repeat))
    naive_s, _ = _best(lambda: _naive_risk_check(factory), 3)
    db.dispose()
    return [Row(f"one risk check, {positions} positions, {snapshots:,} snapshots (a year of ticks)", seconds,
                naive_s, "s", "< 0.1 s", seconds < 0.1,
                "the whole job: account, prices, metrics, limits, commit; baseline: ORM load of the account's rows")]


# --- replay: the whole pipeline over a year on a virtual clock ------------------------------------------

REPLAY_START, REPLAY_END = datetime(2025, 11, 21).date(), datetime(2026, 11, 20).date()
YEAR_DATABASE = "replay.db"  # bench_replay's: the benchmarks on a year-replayed database share it


#: the implementation the replay figures stand beside: the last commit before issue 19's speed work
BASELINE_REVISION = "a6c1eb2"
#: each year replay runs this many times, ours and the baseline's in turn (the other
#: one first in the next round), and the best run of each is its figure: one run on a
#: virtual machine varies by a tenth or more from the next
REPLAY_ROUNDS = 3


def bench_replay(workdir: Path, cache_dir: Path, _repeat: int) -> list[Row]:
    """``simulate`` over a year (all six jobs, simulated tickers, SQLite), 300 tickers and
    the full 2,800, beside the same replay by :data:`BASELINE_REVISION` (checked out in
    a worktree) in the same run, the best of :data:`REPLAY_ROUNDS` runs of each, taken
    in turn; each in a fresh process into a new database, with each job's share of the
    time (the time from one fire's end to the next one's is the next fire's). The
    300-ticker database is the one the other year benchmarks read."""
    from services.orchestrator.jobs import JOBS

    rows = []
    with _baseline_worktree(workdir) as baseline_root:
        for universe, budget in ((300, 20.0), (2800, 90.0)):
            database = workdir / (YEAR_DATABASE if universe == 300 else f"replay-{universe}.db")
            sides = [(REPO, database)]
            if baseline_root is not None:
                sides.append((baseline_root, workdir / f"baseline-{universe}.db"))
            runs: dict[Path, list[dict]] = {root: [] for root, _ in sides}  # type: ignore[type-arg]
            for round_ in range(REPLAY_ROUNDS):
                for root, path in sides if round_ % 2 == 0 else sides[::-1]:
                    _remove_database(path)  # each run replays the year into a new database
                    runs[root].append(_year_replay(root, path, cache_dir, universe))
            ours = min(runs[REPO], key=lambda run: run["seconds"])
            theirs = min(runs[baseline_root], key=lambda run: run["seconds"]) if baseline_root is not None else None
            shares = ", ".join(f"{job} {100 * t / ours['seconds']:.0f}% ({1000 * t / ours['fires_by_job'][job]:.1f}"
                               f" ms x {ours['fires_by_job'][job]})"
                               for job, t in sorted(ours["per_job"].items(), key=lambda item: -item[1]))
            fingerprinted = [job.name for job in JOBS if job.state]
            skipped = sum(ours["outcomes"].get(f"{name}:skipped", 0) for name in fingerprinted)
            rows.append(Row(f"replay of a year: {ours['sessions']} sessions, {ours['fires']:,} fires, {universe:,} "
                            "tickers, SQLite", ours["seconds"], theirs["seconds"] if theirs else None, "s",
                            f"< {budget:.0f} s", ours["seconds"] < budget and ours["failed"] == 0,
                            f"best of {REPLAY_ROUNDS} runs each, in turn; baseline: {BASELINE_REVISION}; "
                            + ("market-data fires run ahead in a second process (their share here: the wait and "
                               "the copy); " if ours.get("ran_ahead") else "")
                            + f"{skipped:,} fires skipped as unchanged "
                            f"({', '.join(fingerprinted)}); "
                            f"by job: {shares}"))
    return rows


def _remove_database(path: Path) -> None:
    """A SQLite database and the files beside it, gone."""
    for suffix in ("", "-wal", "-shm", ".migrate.lock", ".replay.lock", ".ahead.db"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _year_replay(root: Path, database: Path, cache_dir: Path, universe: int) -> dict:  # type: ignore[type-arg]
    """The year replay by the checkout at ``root``, in a fresh process."""
    import json

    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("DATABASE_URL", None)
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchkit" / "year_replay.py"), str(database), str(cache_dir),
         str(universe), REPLAY_START.isoformat(), REPLAY_END.isoformat()],
        env=env, cwd=root, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@contextmanager
def _baseline_worktree(workdir: Path) -> Iterator[Path | None]:
    """:data:`BASELINE_REVISION` checked out under ``workdir`` (None, said once, where git
    or the revision is not there: a source tarball)."""
    target = workdir / "baseline"
    try:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(target), BASELINE_REVISION],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        print(f"  no baseline: {BASELINE_REVISION} cannot be checked out here", file=sys.stderr)
        yield None
        return
    try:
        yield target
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(target)], check=False,
                       capture_output=True)


def _year_database(workdir: Path, cache_dir: Path):  # -> Settings
    """The settings of the year-replayed SQLite database in ``workdir`` (a year of
    ``simulate``, 300 tickers), replayed here if no benchmark of this run has yet."""
    from scripts.benchkit.fixtures import make_settings
    from services.orchestrator.replay import simulate

    settings = make_settings(database_url=f"sqlite:///{workdir / YEAR_DATABASE}", cache_dir=str(cache_dir),
                             simulated_universe="300")
    if not (workdir / YEAR_DATABASE).exists():
        print("  replaying a year into the shared database ...", file=sys.stderr)
        simulate(settings, REPLAY_START, REPLAY_END).runtime.close()
    return settings


def bench_metrics(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    """``render_metrics`` (the body of ``GET /metrics``) on a year-replayed SQLite
    database (``bench_replay``'s, replayed here if it has not run): p50 and p99 of 200
    scrapes. Baseline: the runs by job and outcome alone, counted from the account's
    ledger rows loaded through the ORM (median of ``repeat``)."""
    from sqlalchemy import select

    from services.common.clock import FixedClock
    from services.orchestrator.api.metrics import render_metrics
    from services.orchestrator.models import JobRun
    from services.orchestrator.runtime import Runtime

    settings = _year_database(workdir, cache_dir)
    runtime = Runtime.create(settings, clock=FixedClock(datetime(2026, 11, 20, 16, 0, tzinfo=KST)))
    try:
        render_metrics(runtime)  # the connection opened, the statements compiled
        times = []
        for _ in range(200):
            started = time.perf_counter()
            render_metrics(runtime)
            times.append(time.perf_counter() - started)
        factory = runtime.session_factory()
        naive = []
        for _ in range(max(repeat, 1)):
            started = time.perf_counter()
            with factory() as session:
                counts = Counter((run.job_name, run.outcome) for run in session.scalars(select(JobRun).where(
                    JobRun.user_id == settings.user_id, JobRun.dry_run == settings.dry_run)))
            naive.append(time.perf_counter() - started)
    finally:
        runtime.close()
    times.sort()
    p50, p99, baseline = 1000 * times[99], 1000 * times[197], 1000 * statistics.median(naive)
    rows = f"{sum(counts.values()):,} ledger rows"
    return [Row(f"metrics scrape p99 of 200, year-replayed SQLite ({rows})", p99, baseline, "ms", "< 100 ms",
                p99 < 100, f"p50 {p50:.1f} ms; baseline: the runs by job and outcome alone, from the ledger rows "
                           "loaded through the ORM")]


# --- the console under load, beside the scheduler --------------------------------------------------

LOAD_CLIENTS, LOAD_REQUESTS, BASELINE_REQUESTS = 50, 2000, 500
LOAD_ENDPOINTS = (("/api/status", 50.0), ("/api/runs", 50.0), ("/metrics", 100.0))  # path, p99 budget (ms)
SUSTAINED_SECONDS = 10.0  # the loads are repeated at least this long, for the lateness
IDLE_SECONDS = 5.0
LATENESS_BUDGET_MS = 100.0
CONSOLE_UNDER_LOAD = [sys.executable, "-m", "scripts.benchkit.console_under_load"]


class _Console:
    """``benchkit/console_under_load.py`` on the year-replayed database, in a directory
    of its own; ``stop()`` returns its probe's samples (wall time, lateness ms)."""

    def __init__(self, workdir: Path, cache_dir: Path, database_url: str, cache_seconds: str) -> None:
        run = _fresh_directory(workdir)
        env = _start_env(run, cache_dir)
        env.update({"DATABASE_URL": database_url, "ORCHESTRATOR_SIMULATED_UNIVERSE": "300",
                    "ORCHESTRATOR_API_CACHE_SECONDS": cache_seconds, "LOG_LEVEL": "WARNING"})
        self._log = (run / "console.log").open("w")
        self.process = subprocess.Popen(CONSOLE_UNDER_LOAD, env=env, cwd=run, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._log, text=True)
        try:
            assert self.process.stdout is not None
            self.url = self.process.stdout.readline().strip()
            if not self.url.startswith("http"):
                raise RuntimeError(f"the console did not start: {(run / 'console.log').read_text()[-500:]}")
        except BaseException:
            self.kill()
            raise

    def stop(self) -> list[tuple[float, float]]:
        import json

        output, _ = self.process.communicate("stop\n", timeout=30)
        return [(at, ms) for at, ms in json.loads(output.splitlines()[-1])]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def bench_api_load(workdir: Path, cache_dir: Path, _repeat: int) -> list[Row]:
    """The console (as ``start`` serves it, its response cache on) on the year-replayed
    database, beside a scheduler whose probe job fires every 0.1 s: 2,000 GETs of each
    endpoint over 50 concurrent keep-alive connections from another process; p99 of the
    latencies, and the probe's fire lateness during the load against an idle phase just
    before it. Baseline: the same endpoint with the response cache off, 500 requests."""
    from scripts.benchkit.api_load import LoadResult, run_load

    database_url = _year_database(workdir, cache_dir).database_url
    loaded: dict[str, LoadResult] = {}
    baseline: dict[str, LoadResult] = {}
    console = _Console(workdir, cache_dir, database_url, "1")
    try:
        time.sleep(1.0)  # the scheduler's first fires
        idle_from = time.time()
        time.sleep(IDLE_SECONDS)
        load_from = time.time()
        for path, _budget in LOAD_ENDPOINTS:
            print(f"  {path}: {LOAD_REQUESTS} requests, {LOAD_CLIENTS} clients ...", file=sys.stderr)
            loaded[path] = run_load(console.url, path, LOAD_REQUESTS, LOAD_CLIENTS)
        rounds = 1  # the same loads again until the probe has fired often enough for a p99
        while time.time() - load_from < SUSTAINED_SECONDS:
            for path, _budget in LOAD_ENDPOINTS:
                run_load(console.url, path, LOAD_REQUESTS, LOAD_CLIENTS)
            rounds += 1
        load_to = time.time()
        samples = console.stop()
    finally:
        console.kill()
    console = _Console(workdir, cache_dir, database_url, "0")
    try:
        for path, _budget in LOAD_ENDPOINTS:
            print(f"  {path}: {BASELINE_REQUESTS} requests, response cache off ...", file=sys.stderr)
            baseline[path] = run_load(console.url, path, BASELINE_REQUESTS, LOAD_CLIENTS)
        console.stop()
    finally:
        console.kill()

    rows = []
    for path, budget in LOAD_ENDPOINTS:
        ours, base = loaded[path], baseline[path]
        p99 = ours.percentile_ms(0.99)
        errors = sum(ours.errors.values()) + sum(base.errors.values())
        failed = "; errors: " + ", ".join(f"{what} x{n}" for what, n in (ours.errors + base.errors).items())
        rows.append(Row(
            f"`GET {path}` p99, {LOAD_CLIENTS} clients x {LOAD_REQUESTS:,} requests, year-replayed SQLite",
            p99, base.percentile_ms(0.99), "ms", f"< {budget:.0f} ms", p99 < budget and errors == 0,
            f"p50 {ours.percentile_ms(0.5):.1f} ms, {ours.throughput:,.0f} req/s, {ours.requests:,} requests, "
            f"{sum(ours.errors.values())} errors; baseline: response cache off, {base.requests} requests "
            f"(p50 {base.percentile_ms(0.5):.1f} ms, {base.throughput:,.0f} req/s){failed if errors else ''}"))
    idle = sorted(ms for at, ms in samples if idle_from <= at < load_from)
    busy = sorted(ms for at, ms in samples if load_from <= at < load_to)

    def pct(values: list[float], fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))] if values else float("nan")

    p99 = pct(busy, 0.99)
    rows.append(Row("  scheduler fire lateness p99 during that load (probe every 0.1 s)", p99, pct(idle, 0.99),
                    "ms", f"< {LATENESS_BUDGET_MS:.0f} ms", p99 < LATENESS_BUDGET_MS,
                    f"{len(busy)} fires over {rounds} rounds of the three loads ({load_to - load_from:.1f} s), "
                    f"p50 {pct(busy, 0.5):.1f} ms; baseline: the same process idle for "
                    f"{IDLE_SECONDS:.0f} s before the load ({len(idle)} fires, p50 {pct(idle, 0.5):.1f} ms)"))
    return rows


# --- the dashboard's first load in headless Chromium ------------------------------------------------

def dashboard_reads() -> list[str]:
    """The reads of the dashboard's first load, as its script asks for them."""
    import re

    script = (REPO / "services" / "orchestrator" / "api" / "dashboard" / "dashboard.js").read_text(encoding="utf-8")
    return list(dict.fromkeys(re.findall(r'(?:panel\("[a-z-]+", |get\()"(/api/[^"]+)"', script)))


DASHBOARD_BUDGET_MS = 1000.0


def bench_dashboard(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    """The dashboard's first load in a new headless Chromium (empty browser cache), from
    navigation until every panel is filled (``window.dashboardLoadedMs``), on the
    year-replayed database with the response cache off (each load computes every read):
    the worst of ``repeat`` loads. Baseline: the same reads fetched one after another by
    one client (httpx), as a page without parallel requests would."""
    import httpx

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    name = "dashboard first load, headless Chromium, year-replayed SQLite"
    if not (chromium and driver_path):
        return [Row(name, float("nan"), None, "ms", f"< {DASHBOARD_BUDGET_MS:.0f} ms", False,
                    "not measured: apt-get install chromium chromium-driver")]
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    reads = dashboard_reads()
    database_url = _year_database(workdir, cache_dir).database_url
    console = _Console(workdir, cache_dir, database_url, "0")
    loads: list[float] = []
    try:
        time.sleep(2.0)  # its warm-up (the database opened), as a console that has been up a while
        with httpx.Client(base_url=console.url, timeout=30) as client:
            sequential = []
            for _ in range(max(repeat, 1)):
                started = time.perf_counter()
                for path in reads:
                    client.get(path).raise_for_status()
                sequential.append(time.perf_counter() - started)
        for attempt in range(max(repeat, 1)):
            profile = Path(tempfile.mkdtemp(prefix="chromium-", dir="/tmp"))  # a short socket path
            options = webdriver.ChromeOptions()
            options.binary_location = chromium
            for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                             "--window-size=1280,2400", f"--user-data-dir={profile / 'profile'}"):
                options.add_argument(argument)
            browser = webdriver.Chrome(service=Service(driver_path, env={**os.environ, "TMPDIR": str(profile)}),
                                       options=options)
            try:
                browser.get(console.url)
                deadline = time.monotonic() + 30
                while not browser.execute_script("return window.dashboardLoadedMs"):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the dashboard did not load (attempt {attempt + 1})")
                    time.sleep(0.02)
                loads.append(float(browser.execute_script("return window.dashboardLoadedMs")))
            finally:
                browser.quit()
                shutil.rmtree(profile, ignore_errors=True)
        console.stop()
    finally:
        console.kill()
    worst, baseline = max(loads), 1000 * statistics.median(sequential)
    return [Row(f"{name} (worst of {len(loads)})", worst, baseline, "ms", f"< {DASHBOARD_BUDGET_MS:.0f} ms",
                worst < DASHBOARD_BUDGET_MS,
                f"median {statistics.median(loads):.0f} ms; response cache off; baseline: its "
                f"{len(reads)} reads one after another from one client")]


MONTH = ("2026-10-20", "2026-11-20")  # the README's "replay a month"


def bench_month_replay(workdir: Path, cache_dir: Path, repeat: int) -> list[Row]:
    """The README's month replay as a new user types it, in a fresh directory (a new
    simulation database: its history backfill included), with the report; beside it,
    the same replay run again on its database (nothing left to run: the report alone)."""
    fresh, again = [], []
    args = CLI + ["simulate", "--start", MONTH[0], "--end", MONTH[1], "--report", "report"]
    for _ in range(repeat):
        run = _fresh_directory(workdir)
        env = _start_env(run, cache_dir)
        fresh.append(_time_command(args, env, run, 1))
        again.append(_time_command(args, env, run, 1))
    ours, baseline = statistics.median(fresh), statistics.median(again)
    return [Row(f"README month replay `simulate --start {MONTH[0]} --end {MONTH[1]} --report report`, "
                "fresh directory", ours, baseline, "s", "< 30 s", ours < 30,
                "baseline: the same command again (every fire already recorded: start-up and report)")]

# --- several instances on one PostgreSQL database ------------------------------------------------

RACE_FIRES = 2000  # risk checks every 30 minutes: 2,000 fires from RACE_START
RACE_START = datetime(2026, 1, 1, tzinfo=KST)
RACE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def bench_race(workdir: Path, cache_dir: Path, _repeat: int) -> list[Row]:
    """Three instances race over the same 2,000 fires on PostgreSQL (each fire's job
    appends one line to a log): every fire must run exactly once. The overhead per fire
    is an instance's time per fire (claim, or losing the claim, plus recording), against
    one instance alone."""
    import uuid

    from sqlalchemy import create_engine, text

    from scripts.benchkit.fixtures import postgres_schema_url

    end = RACE_START + timedelta(minutes=30 * RACE_FIRES)
    window = [RACE_START.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")]

    def race(instances: int) -> tuple[list[float], Counter[str]]:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(RACE_URL)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        log = workdir / f"{schema}.log"
        env = {**_env(workdir, cache_dir), "RACE_LOG": str(log), "LOG_LEVEL": "WARNING"}
        try:
            url = postgres_schema_url(RACE_URL, schema)
            worker = [sys.executable, "-m", "scripts.benchkit.race_worker", url, "risk_checks",
                      "scripts.benchkit.jobs:record_fire", *window]
            workers = [subprocess.Popen(worker, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
                       for _ in range(instances)]
            per_fire = [float(worker.communicate()[0].split()[-1]) for worker in workers]
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        ran = Counter(" ".join(line.split()[:2]) for line in log.read_text().splitlines())
        return per_fire, ran

    name = f"3 instances on PostgreSQL over {RACE_FIRES:,} fires: time per fire per instance"
    try:
        create_engine(RACE_URL).connect().close()
    except Exception as exc:  # noqa: BLE001 (any reason: the row says it)
        return [Row(name, float("nan"), None, "s", "< 0.02 s, 0 duplicates, 0 lost", False,
                    f"not run: no PostgreSQL at BENCH_DATABASE_URL ({type(exc).__name__})")]
    alone, _ = race(1)
    per_fire, ran = race(3)
    duplicates = sum(count - 1 for count in ran.values())
    lost = RACE_FIRES - len(ran)
    ok = duplicates == 0 and lost == 0 and max(per_fire) < 0.02
    return [Row(name, max(per_fire), alone[0], "s", "< 0.02 s, 0 duplicates, 0 lost", ok,
                f"duplicates {duplicates}, lost {lost}; baseline: one instance alone")]


BENCHMARKS: dict[str, Callable[[Path, Path, int], list[Row]]] = {
    "startup": bench_startup,
    "status": bench_cold_status,
    "next-runs": bench_cold_next_runs,
    "fires": bench_year_of_fires,
    "memory": bench_idle_memory,
    "backfill": bench_backfill,
    "indicators": bench_indicators,
    "trading": bench_trading,
    "risk": bench_risk,
    "replay": bench_replay,
    "month": bench_month_replay,
    "race": bench_race,
    "metrics": bench_metrics,
    "dashboard": bench_dashboard,
    "api-load": bench_api_load,
}


def print_table(rows: list[Row]) -> None:
    headers = ["benchmark", "ours", "baseline", "budget", "met", "note"]
    table = [[r.name, f"{r.ours:.3g} {r.unit}",
              "-" if r.baseline is None else f"{r.baseline:.3g} {r.unit}",
              r.budget, "yes" if r.ok else "NO", r.note] for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *table)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in table:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="krx-bench-"))
    try:
        cache_dir = workdir / "calendar-cache"
        from services.common.market_calendar import load_calendar

        load_calendar(cache_dir)  # the warm cache every cold CLI call below reads
        rows: list[Row] = []
        for name in args.only or BENCHMARKS:
            print(f"running {name} ...", file=sys.stderr)
            rows.extend(BENCHMARKS[name](workdir, cache_dir, args.repeat))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
