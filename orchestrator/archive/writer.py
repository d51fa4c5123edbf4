"""Writing one archive file atomically: a temporary file, fsync, rename, fsync the directory.

``AtomicWriter(target, root)``:

1. ``open()`` creates the missing directories under ``root``, refuses a target whose real
   directory (symlinks resolved) is not inside ``root``'s, removes temporary files of the same
   name left by a crash, and opens ``.<name>.part-<random>`` exclusively next to the target;
2. ``write(chunk)`` as often as needed;
3. ``commit()`` flushes and fsyncs the file, renames it over the target (``os.replace``: readers
   see the old file or the new one, never a part) and fsyncs the directories it changed;
4. ``abort()`` (on any failure or cancellation) closes and removes the temporary file.

Every method blocks: call them from a worker thread. A lock serializes them, so an ``abort()``
from the event loop after a cancellation waits for a chunk still being written instead of
racing it. Any ``OSError`` (ENOSPC, EACCES, EROFS ...) becomes ``ArchiveWriteError`` and the
temporary file is removed. ``opener`` opens the temporary file; tests pass one that injects
faults (a disk that fills up).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from orchestrator.archive.layout import PART_MARKER, is_part_file
from orchestrator.errors import ArchiveWriteError


class PartFile(Protocol):
    """What the writer needs of an open temporary file."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


Opener = Callable[[Path], PartFile]


def open_exclusive(path: Path) -> PartFile:
    """The default opener: a new file, never an existing one."""
    return path.open("xb")


def describe_os_error(exc: OSError) -> str:
    """``ENOSPC (No space left on device)``-style text for logs."""
    name = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    reason = exc.strerror or type(exc).__name__
    return f"{name} ({reason})" if name else reason


def fsync_directory(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicWriter:
    """One file written to a temporary name, then renamed into place."""

    def __init__(self, target: Path, root: Path, *, opener: Opener = open_exclusive) -> None:
        self.target = target
        self.root = root
        self._opener = opener
        self._lock = threading.Lock()
        self._file: PartFile | None = None
        self.part_path: Path | None = None
        self._created_dirs: list[Path] = []
        self._done = False
        self.written = 0

    def open(self) -> None:
        with self._lock:
            if self._done or self._file is not None:
                raise RuntimeError("an AtomicWriter opens once")
            try:
                self._make_directories()
                self._check_inside_root()
                self._remove_leftovers()
                part = self.target.with_name(
                    f".{self.target.name}{PART_MARKER}{secrets.token_hex(6)}"
                )
                self._file = self._opener(part)
                self.part_path = part
            except OSError as exc:
                self._discard()
                raise self._error("cannot create the file", exc) from exc

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self._file is None or self._done:
                raise RuntimeError("the writer is not open")
            try:
                count = self._file.write(chunk)
                if count != len(chunk):
                    raise OSError(errno.EIO, f"short write ({count} of {len(chunk)} bytes)")
                self.written += count
            except OSError as exc:
                self._discard()
                raise self._error("cannot write", exc) from exc

    def commit(self) -> None:
        with self._lock:
            if self._file is None or self._done or self.part_path is None:
                raise RuntimeError("the writer is not open")
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
                os.replace(self.part_path, self.target)
                self._done = True
                fsync_directory(self.target.parent)
                for made in reversed(self._created_dirs):
                    fsync_directory(made.parent)
            except OSError as exc:
                if not self._done:
                    self._discard()
                    raise self._error("cannot complete", exc) from exc
                # Renamed, but the directory could not be synced: the file is complete on disk
                # and a crash may at worst lose the rename; report it all the same.
                raise self._error("cannot sync the directory of", exc) from exc

    def abort(self) -> None:
        """Remove the temporary file (idempotent; never raises)."""
        with self._lock:
            if not self._done:
                self._discard()

    # ------------------------------------------------------------------ internals

    def _make_directories(self) -> None:
        missing: list[Path] = []
        parent = self.target.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            self._created_dirs.append(directory)

    def _check_inside_root(self) -> None:
        real_root = self.root.resolve(strict=True)
        real_parent = self.target.parent.resolve(strict=True)
        if not real_parent.is_relative_to(real_root):
            raise OSError(errno.EPERM, f"{self.target.parent} leads outside {self.root}")

    def _remove_leftovers(self) -> None:
        for entry in self.target.parent.iterdir():
            if is_part_file(entry.name, self.target.name):
                entry.unlink(missing_ok=True)

    def _discard(self) -> None:
        self._done = True
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.part_path is not None:
            with contextlib.suppress(OSError):
                self.part_path.unlink(missing_ok=True)

    def _error(self, what: str, exc: OSError) -> ArchiveWriteError:
        return ArchiveWriteError(f"{what} {self.target}: {describe_os_error(exc)}")
