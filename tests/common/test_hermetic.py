"""The tests are hermetic: each has its own home, caches and temp dir, and so do the
subprocesses it starts; no host setting reaches them (see tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from services.common.market_calendar import default_cache_dir, fallback_cache_dir
from tests.conftest import OWN_DIRS, TEST_API_PORT, host_setting, skip_explanation, subprocess_env

REPO = Path(__file__).resolve().parents[2]
WHERE = """
import json, os, tempfile
from pathlib import Path
from services.common.market_calendar import default_cache_dir, fallback_cache_dir
print(json.dumps({"home": str(Path.home()), "temp": tempfile.gettempdir(), "cache": str(default_cache_dir()),
                  "fallback": str(fallback_cache_dir()), "settings": sorted(os.environ)}))
"""


def _inside(root: Path, paths: dict[str, str]) -> dict[str, bool]:
    return {name: Path(path).is_relative_to(root) for name, path in paths.items()}


def test_a_test_has_its_own_home_caches_and_temp_dir(_hermetic_test: Path) -> None:
    paths = {"home": str(Path.home()), "temp": tempfile.gettempdir(), "cache": str(default_cache_dir()),
             "fallback": str(fallback_cache_dir()), **{name: os.environ[name] for name in OWN_DIRS}}
    assert _inside(_hermetic_test, paths) == dict.fromkeys(paths, True)


def test_a_subprocess_started_with_subprocess_env_has_them_too(_hermetic_test: Path, tmp_path: Path) -> None:
    env = subprocess_env(PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", WHERE], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    seen = json.loads(result.stdout)
    settings = seen.pop("settings")
    assert _inside(_hermetic_test, seen) == dict.fromkeys(seen, True)
    assert [name for name in settings if host_setting(name)] == [TEST_API_PORT[0]]  # the tests' own, no host's
    assert env[TEST_API_PORT[0]] == TEST_API_PORT[1]


def test_each_test_has_its_own_directories(_hermetic_test: Path, _hermetic_run: Path) -> None:
    assert _hermetic_test.parent == _hermetic_run
    assert _hermetic_test.name.startswith("test_each_test_has_its_own_directories-")


def test_no_host_orchestrator_setting_reaches_a_test() -> None:
    assert [name for name in os.environ if host_setting(name)] == []


def _skipped(reason: str) -> SimpleNamespace:
    return SimpleNamespace(longrepr=("tests/x.py", 1, f"Skipped: {reason}"))


def _item(*markers: str) -> SimpleNamespace:
    return SimpleNamespace(get_closest_marker=lambda name: name if name in markers else None)


def test_the_run_s_summary_says_why_tests_were_skipped_and_how_to_run_them() -> None:
    skipped = [_skipped("TEST_DATABASE_URL is not set")] * 3 + [_skipped("pg_terminate_backend is PostgreSQL's")]
    assert skip_explanation(skipped, [_item("slow"), _item("slow"), _item()]) == [
        "3 PostgreSQL tests skipped: TEST_DATABASE_URL is not set. Run them with (.ci/run does):",
        "  TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test make test",
        "2 slow tests deselected (addopts: -m 'not slow'). Run them with: pytest -m slow",
        "1 test skipped where they do not apply:",
        "  pg_terminate_backend is PostgreSQL's (1)",
    ]


def test_a_run_that_skipped_nothing_says_nothing() -> None:
    assert skip_explanation([], [_item()]) == []
