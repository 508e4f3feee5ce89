"""The race and crash tests' orchestrator instance: ``scripts.benchkit.race_worker``
with a job entry point of tests/orchestrator/fake_services.py.

    python -m tests.orchestrator.race_worker DATABASE_URL JOB ENTRY START END [LEASE_SECONDS]

ENTRY names a function of tests/orchestrator/fake_services.py; START and END are ISO
times (Asia/Seoul). Prints the seconds it spent per fire on its last line.
"""

from __future__ import annotations

import sys

from scripts.benchkit import race_worker


def main(url: str, job: str, entry: str, start: str, end: str, lease: str = "60") -> None:
    race_worker.main(url, job, f"tests.orchestrator.fake_services:{entry}", start, end, lease)


if __name__ == "__main__":
    main(*sys.argv[1:])
