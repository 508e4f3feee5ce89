"""The project installs as a package (``pip install -e .``): checked from its
declaration in pyproject.toml, without installing anything."""

from __future__ import annotations

import fnmatch
import importlib
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_the_console_script_is_declared_and_its_target_imports() -> None:
    target = _pyproject()["project"]["scripts"]["krx-orchestrator"]
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    assert callable(function)


def test_the_console_script_runs_the_command_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    module_name, _, function_name = _pyproject()["project"]["scripts"]["krx-orchestrator"].partition(":")
    monkeypatch.setattr("sys.argv", ["krx-orchestrator", "--help"])
    with pytest.raises(SystemExit) as exit_:
        getattr(importlib.import_module(module_name), function_name)()
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: ")  # the program's name is the script's (pytest's here)
    assert "Calendar-driven batch job scheduler for KRX trading." in out
    assert {"start", "run-job", "status", "migrate"} <= {line.split()[0] for line in out.splitlines()
                                                         if line.startswith("  ") and line.split()}


def test_the_build_is_setuptools_with_the_requirements_as_dependencies() -> None:
    pyproject = _pyproject()
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    assert pyproject["project"]["dynamic"] == ["dependencies"]
    [requirements] = pyproject["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert (REPO / requirements).is_file()


def test_only_the_services_are_packaged() -> None:
    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["services*"]
    for top in ("tests", "scripts"):
        assert not any(fnmatch.fnmatch(top, pattern) for pattern in find["include"])


def test_every_file_the_services_read_beside_their_modules_is_package_data() -> None:
    """A file under services/ that is neither a package's module nor declared data
    would be missing from an installed wheel (e.g. the calendar overrides, the Alembic
    revisions: services/migrations/versions is not a package)."""
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    services = REPO / "services"
    missing = []
    for path in sorted(services.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        if path.suffix == ".py" and (path.parent / "__init__.py").is_file():
            continue  # a module of a package
        package_dir = next(parent for parent in path.parents if (parent / "__init__.py").is_file())
        package = ".".join(package_dir.relative_to(REPO).parts)
        relative = path.relative_to(package_dir).as_posix()
        if not any(fnmatch.fnmatch(relative, pattern) for pattern in package_data.get(package, [])):
            missing.append(path.relative_to(REPO).as_posix())
    assert missing == []


def test_the_data_files_the_code_names_are_declared() -> None:
    from services.common.database import MIGRATIONS_DIR
    from services.common.market_calendar import OVERRIDES_PATH

    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert OVERRIDES_PATH.name in package_data["services.common"]
    assert MIGRATIONS_DIR == REPO / "services" / "migrations"
    assert {"script.py.mako", "versions/*.py"} <= set(package_data["services.migrations"])
