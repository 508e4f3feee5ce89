"""A replay that pauses after its first fire, holding its database's replay lock, until
it is killed (tests/orchestrator/test_replay.py): what a second replay meets, without
relying on a long replay still running when the second one starts.

Usage: python -m tests.orchestrator.paused_replay_worker DATABASE_URL CACHE_DIR READY_FILE
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from services.orchestrator.replay import simulate
from tests.conftest import make_settings

START, END = date(2026, 11, 16), date(2026, 11, 20)


def main(database_url: str, cache_dir: str, ready: str) -> None:
    settings = make_settings(database_url=database_url, cache_dir=cache_dir, simulated_universe="30",
                             bootstrap_sessions="130", enable_risk_checks="false")

    def pause(_fire: Any, _record: Any) -> None:
        Path(ready).touch()
        time.sleep(600)  # killed by the test long before

    simulate(settings, START, END, on_fire=pause)


if __name__ == "__main__":
    main(*sys.argv[1:])
