"""The SQLite leader lock's file: where it is, and whether a process holds it now.

Standard library only: ``orchestrator status`` reads a SQLite store without SQLAlchemy
(``store.snapshot``) and asks here whether the recorded leader still runs. The lock itself is
``store.leadership.FileLock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def lock_file_of(database: Path) -> Path:
    """``<database>.lock``, beside the database file."""
    return database.with_name(database.name + ".lock")


def is_held(path: Path) -> bool:
    """Whether a process holds the lock file ``path`` now (a missing file is held by none).

    A shared lock is tried and let go at once: it never blocks a leader, and a standby whose
    try meets it just tries again at its next interval.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)  # also lets go of a shared lock we got
    return False
