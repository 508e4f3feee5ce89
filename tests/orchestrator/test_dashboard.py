"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) against a real ``start`` on a replayed week.

The page shows the six jobs; halting with the token shows the halt banner, and resuming
(the token is not asked again) clears it. A screenshot of each state and the first
load's timing are saved to ``$TEST_ARTIFACTS`` (``.ci/run`` sets it to
``test-artifacts/``; without it, the test's own temp dir). The load time is recorded
there, not asserted: ``scripts/benchmark.py --only dashboard`` holds its budget.

Without Chromium the test is skipped, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.orchestrator.jobs import JOBS
from services.orchestrator.replay import simulate
from tests.conftest import make_settings
from tests.orchestrator.test_api import _read_until, _start, _stop

START, END = date(2026, 11, 16), date(2026, 11, 20)
TOKEN = "s3cret-dashboard-token-0123"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_SECONDS = 20


def _missing_browser() -> None:
    message = ("headless Chromium is not installed: apt-get install chromium chromium-driver "
               "(.ci/run installs them)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("TEST_ARTIFACTS") or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def console(tmp_path: Path, calendar_cache_dir: Path) -> Iterator[str]:
    """The URL of a real ``start`` (every job enabled) on a SQLite database holding a
    week's replay, serving the console with ``TOKEN``."""
    url = f"sqlite:///{tmp_path / 'week.db'}"
    values = {"simulated_universe": "30", "bootstrap_sessions": "130"}
    simulation = simulate(make_settings(database_url=url, cache_dir=str(calendar_cache_dir), **values), START, END)
    simulation.runtime.close()
    assert simulation.failed == 0
    process = _start(["start"], tmp_path, calendar_cache_dir, DATABASE_URL=url, ORCHESTRATOR_API_TOKEN=TOKEN,
                     ORCHESTRATOR_SIMULATED_UNIVERSE="30", ORCHESTRATOR_BOOTSTRAP_SESSIONS="130")
    output = ""
    try:
        output = _read_until(process, "console (REST API) at", timeout=60)
        found = re.search(r"at (http://127\.0\.0\.1:[0-9]+/) ", output)
        assert found is not None, output
        yield found[1]
    finally:
        output += _stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        _missing_browser()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Chromium's socket path must stay short (about 100 characters): the test's own temp
    # dir is too deep, so it gets one of its own, removed afterwards
    short_tmp = Path(tempfile.mkdtemp(prefix="chromium-", dir="/tmp"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2400",
                     f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"),
                      env={**os.environ, "TMPDIR": str(short_tmp)})
    try:
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(short_tmp, ignore_errors=True)


def _wait(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {WAIT_SECONDS} s for {what}")


def _confirm(driver: Any, *, reason: str | None, token: str | None) -> None:
    """Fill the open action dialog and confirm it; the token field is shown only when
    asked for."""
    from selenium.webdriver.common.by import By

    dialog = _wait(lambda: driver.find_element(By.ID, "action-dialog").get_attribute("open") is not None and
                   driver.find_element(By.ID, "action-dialog"), "the action dialog")
    token_field = driver.find_element(By.ID, "action-token")
    assert token_field.is_displayed() is (token is not None)
    if reason is not None:
        driver.find_element(By.ID, "action-reason").send_keys(reason)
    if token is not None:
        token_field.send_keys(token)
    driver.find_element(By.ID, "action-confirm").click()
    _wait(lambda: dialog.get_attribute("open") is None, "the dialog to close")


def _refused(driver: Any, *, reason: str, token: str) -> None:
    """Confirm the open dialog with a wrong token: refused in the dialog, which stays open."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "action-reason").send_keys(reason)
    driver.find_element(By.ID, "action-token").send_keys(token)
    driver.find_element(By.ID, "action-confirm").click()
    error = driver.find_element(By.ID, "action-error")
    _wait(lambda: error.text, "the refusal")
    assert error.text.startswith("missing or wrong token"), error.text
    assert driver.find_element(By.ID, "action-dialog").get_attribute("open") is not None


def test_the_dashboard_shows_the_jobs_and_halts_and_resumes_with_the_token(console: str, browser: Any,
                                                                          artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    browser.get(console)
    _wait(lambda: browser.execute_script("return document.body.dataset.loaded"), "the first load")
    load = {"seconds_until_every_panel_filled": round(time.monotonic() - started, 3),
            "page_ms_until_filled": browser.execute_script("return window.dashboardLoadedMs")}
    (artifacts / "dashboard-load.json").write_text(json.dumps(load, indent=1))
    browser.save_screenshot(str(artifacts / "dashboard.png"))

    rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    assert [row.get_attribute("data-job") for row in rows] == [job.name for job in JOBS]
    assert len(rows) == 6
    banner = browser.find_element(By.ID, "halt-banner")
    assert not banner.is_displayed()
    assert "paper" in browser.find_element(By.ID, "account-label").text
    # the replayed week ends holding 9 positions (test_api counts them from SQL); the
    # scheduler runs on the real clock, so a monitoring tick of today may have sold some
    held = httpx.get(console + "api/positions", timeout=10).json()
    shown = browser.find_elements(By.CSS_SELECTOR, "#positions tbody tr")
    assert held and [row.find_element(By.TAG_NAME, "td").text for row in shown] == [p["ticker"] for p in held]

    browser.find_element(By.ID, "halt-button").click()
    _refused(browser, reason="broker maintenance", token="not-the-token")
    _confirm(browser, reason=None, token=TOKEN)  # the reason typed is kept; the token is asked again
    _wait(banner.is_displayed, "the halt banner")
    assert "broker maintenance" in banner.text
    browser.save_screenshot(str(artifacts / "dashboard-halted.png"))
    assert httpx.get(console + "api/status", timeout=10).json()["halt"]["halted"] is True

    browser.find_element(By.ID, "resume-button").click()
    _confirm(browser, reason=None, token=None)  # the token was asked once
    _wait(lambda: not banner.is_displayed(), "the banner to clear")
    halt = httpx.get(console + "api/status", timeout=10).json()["halt"]
    assert halt["halted"] is False and halt["resumed_at"] is not None
    audit = httpx.get(console + "api/audit", timeout=10).json()  # a refused token is not audited
    assert [(entry["action"], entry["status_code"]) for entry in audit] == [("resume", 200), ("halt", 200)]
