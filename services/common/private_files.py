"""Files and directories only their owner may use (the SQLite database, its lock file,
the caches): directories 0700, files 0600 when this process creates them, whatever the
umask. Existing ones are left as they are."""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path | str) -> None:
    """Create ``path`` and its missing parents, each 0700 (like ``mkdir -p``)."""
    missing = []
    directory = Path(path)
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            if directory.is_dir():
                continue  # another process made it first
            raise
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is masked by the umask


def open_private(path: Path | str, flags: int) -> int:
    """``os.open(path, flags)``, the file created 0600 if it does not exist yet."""
    descriptor = _create(path, flags)
    return os.open(path, flags) if descriptor is None else descriptor


def create_private_file(path: Path | str) -> None:
    """Create ``path`` empty and 0600 unless it exists."""
    descriptor = _create(path, os.O_WRONLY)
    if descriptor is not None:
        os.close(descriptor)


def _create(path: Path | str, flags: int) -> int | None:
    try:
        descriptor = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return None
    os.fchmod(descriptor, FILE_MODE)  # os.open's mode is masked by the umask
    return descriptor
