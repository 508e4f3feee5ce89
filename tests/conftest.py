"""Shared fixtures: settings without the host's environment, the calendar built once,
and migrated databases (SQLite always; PostgreSQL when TEST_DATABASE_URL is set).

Hermetic: every test (and every subprocess it starts with this environment) has its own
home, cache, config and temp directories under pytest's temp dir, and none of the host's
orchestrator settings; nothing reads or writes ``~/.cache`` or the system temp dir (the
calendar cache's default and fallback directories among them)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from scripts.benchkit.fixtures import make_settings as make_settings  # the tests import it from here
from scripts.benchkit.fixtures import postgres_schema_url
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.market_calendar import MarketCalendar, load_calendar

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
DATA_DIR = Path(__file__).parent / "data"
NO_POSTGRESQL = "TEST_DATABASE_URL is not set"
#: the console's port in the tests' subprocesses: any free one (``start`` serves the
#: console; two tests, or a test beside a real scheduler, never race for 8080)
TEST_API_PORT = ("ORCHESTRATOR_API_PORT", "0")
#: the variables pointed at a test's own directories: where a home, the XDG caches and
#: configs, and ``tempfile.gettempdir()`` are (the calendar cache's default and fallback)
OWN_DIRS = {"HOME": "home", "XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config",
            "XDG_DATA_HOME": "data", "XDG_STATE_HOME": "state", "TMPDIR": "tmp"}


def host_setting(name: str) -> bool:
    """An orchestrator setting of the host's environment (none reaches a test)."""
    return name.startswith(("ORCHESTRATOR_", "KIS_")) or name in ("DATABASE_URL", "LOG_LEVEL")


def _use_own_dirs(patch: pytest.MonkeyPatch, root: Path) -> None:
    for name, directory in OWN_DIRS.items():
        (root / directory).mkdir(parents=True)
        patch.setenv(name, str(root / directory))
    patch.setattr(tempfile, "tempdir", str(root / "tmp"))  # gettempdir() keeps its first answer


@pytest.fixture(scope="session", autouse=True)
def _hermetic_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The run's own directories (for session-scoped fixtures) and no host settings;
    gives the directory of the tests' own directories."""
    root = tmp_path_factory.mktemp("hermetic")
    (root / "tests").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if host_setting(name)]:
            patch.delenv(name)
        _use_own_dirs(patch, root / "run")
        patch.setenv("MPLCONFIGDIR", str(root / "run" / "matplotlib"))  # its font list, built once a run
        yield root / "tests"


@pytest.fixture(autouse=True)
def _hermetic_test(_hermetic_run: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own home, caches and temp dir (see ``OWN_DIRS``); ``subprocess_env``
    passes them on to its subprocesses."""
    name = re.sub(r"[^\w.-]", "_", request.node.name)[:50]
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_hermetic_run))  # no numbering scan, as mktemp's
    _use_own_dirs(monkeypatch, root)
    return root


@pytest.fixture(scope="session")
def calendar_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calendar disk cache shared by the run (and by the CLI subprocesses it starts)."""
    return tmp_path_factory.mktemp("calendar-cache")


@pytest.fixture(scope="session")
def krx_calendar(calendar_cache_dir: Path) -> MarketCalendar:
    """The real corrected KRX calendar, built once for the whole run."""
    return load_calendar(calendar_cache_dir)


def subprocess_env(**values: str) -> dict[str, str]:
    """The environment for a subprocess under test: this process's, with the test's own
    directories (``OWN_DIRS``: home, caches, temp dir), without orchestrator settings
    (ORCHESTRATOR_*, KIS_*, DATABASE_URL, LOG_LEVEL) but the console's port (``TEST_API_PORT``),
    plus ``values``."""
    own = {name: value for name, value in os.environ.items() if not host_setting(name)}
    own.update({name: os.environ[name] for name in OWN_DIRS})  # set by _hermetic_test: fails loudly if not
    return {**own, TEST_API_PORT[0]: TEST_API_PORT[1], **values}


def in_process_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path,
                   now: Any) -> Any:
    """The CLI, invoked in this process as ``cli(*args, env=None)``: none of the host's
    ORCHESTRATOR_/KIS_ variables, ``tmp_path`` as working directory (its SQLite
    database under ./data), the clock standing at ``now``."""
    from typer.testing import CliRunner

    from services.common.clock import FixedClock
    from services.orchestrator import runtime as runtime_module
    from services.orchestrator.main import app

    for name in list(os.environ):
        if host_setting(name):
            monkeypatch.delenv(name)
    root = logging.getLogger()  # the CLI logs to the runner's stderr, closed after the test: put back
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
    monkeypatch.setattr(runtime_module, "SystemClock", lambda: FixedClock(now))
    runner = CliRunner()
    return lambda *args, env=None: runner.invoke(app, list(args), env=env)


def terminate_backend(admin: Any, pid: int) -> None:
    """``pg_terminate_backend(pid)`` through the engine ``admin``, returning once that
    backend has exited (failing the test if it has not within 30 s)."""
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(3000):
            if not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": pid}).scalar():
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still runs 30 s after pg_terminate_backend")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger's handlers and level, put back after the test (for tests that
    call ``configure_logging``)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@contextmanager
def scratch_database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of a fresh, empty database of ``kind`` (``sqlite``: a file in ``directory``;
    ``postgresql``: a throwaway schema, dropped afterwards; the test skipped without
    ``TEST_DATABASE_URL``)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'test.db'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip(NO_POSTGRESQL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(TEST_DATABASE_URL, schema)
    finally:
        with admin.begin() as connection:  # a connection the test left open fails it, never hangs the run
            connection.execute(text("SET LOCAL lock_timeout = '60s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind (PostgreSQL: a throwaway schema)."""
    with scratch_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Any]:
    engine = create_db_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(migrated_engine: Any) -> Any:
    return make_session_factory(migrated_engine)


# --- the run's summary: why tests were skipped or deselected, and how to run them -----


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = skip_explanation(terminalreporter.stats.get("skipped", []),
                             terminalreporter.stats.get("deselected", []))
    if lines:
        terminalreporter.write_sep("-", "skipped and deselected tests")
        for line in lines:
            terminalreporter.write_line(line)


def skip_explanation(skipped: list[Any], deselected: list[Any]) -> list[str]:
    """A few lines: the PostgreSQL tests skipped and the slow tests deselected, each with
    the command that runs them, then each other reason to skip with its count."""
    reasons = Counter(_skip_reason(report) for report in skipped)
    lines = []
    if postgresql := reasons.pop(NO_POSTGRESQL, 0):
        lines += [f"{_tests(postgresql, 'PostgreSQL')} skipped: {NO_POSTGRESQL}. Run them with (.ci/run does):",
                  "  TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test make test"]
    if slow := sum(1 for item in deselected if item.get_closest_marker("slow")):
        lines.append(f"{_tests(slow, 'slow')} deselected (addopts: -m 'not slow'). Run them with: pytest -m slow")
    if reasons:
        lines.append(f"{_tests(sum(reasons.values()))} skipped where they do not apply:")
        lines += [f"  {reason} ({count})" for reason, count in reasons.most_common()]
    return lines


def _tests(count: int, kind: str = "") -> str:
    return " ".join(filter(None, [str(count), kind, "test" if count == 1 else "tests"]))


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)
    return reason.removeprefix("Skipped: ")


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    """The output of ``process`` up to the first line holding ``marker``; an
    AssertionError with what it printed if none comes within ``timeout`` seconds (or
    it ends first)."""
    seen, deadline = [], time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} in the output:\n{''.join(seen)}")
