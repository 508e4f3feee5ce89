"""Rewrite .env.example from the settings declaration (every variable, default, meaning)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.common.settings import env_example_lines  # noqa: E402

HEADER = [
    "# Every variable the orchestrator reads, with its default and meaning.",
    "# Copy to .env and edit; precedence: CLI option > environment > .env > default.",
    "# The default DATABASE_URL is a SQLite file under ./data/ of the working directory.",
    "# The pykrx provider also needs KRX_ID and KRX_PW (KRX data site membership).",
    "",
]


def main() -> None:
    lines = env_example_lines()
    body = []
    for comment, assignment in zip(lines[::2], lines[1::2]):
        body += [comment, assignment, ""]
    (REPO / ".env.example").write_text("\n".join(HEADER + body).rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
