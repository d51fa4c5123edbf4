"""The local archive: day files in a directory, written by ``AtomicWriter``.

Exactly the behaviour the archive had before targets existed: the directories are made under
the archive directory, a target whose real directory (symlinks resolved) leads outside it is
refused, a temporary ``.<name>.part-<random>`` is written next to the final file, fsync'd and
renamed over it (``os.replace``), and the directories are fsync'd. A crash leaves at most a
part file, which the next write of the same day removes (``abort_incomplete`` removes them all).
The location recorded in the store is the file's absolute path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

from orchestrator.archive.layout import PART_MARKER, check_relative
from orchestrator.archive.target import (
    PROBE_DIRECTORY,
    READ_CHUNK,
    ArchiveReadError,
    ArchiveTarget,
    ArchiveWriter,
    ObjectInfo,
    check_probe_key,
)
from orchestrator.archive.verify import VerifiedFile
from orchestrator.archive.writer import AtomicWriter, Opener, describe_os_error, open_exclusive
from orchestrator.errors import ArchiveWriteError


class LocalWriter(ArchiveWriter):
    """An ``AtomicWriter`` driven from the event loop (each blocking step in a thread)."""

    def __init__(self, writer: AtomicWriter) -> None:
        self._writer = writer

    async def write(self, chunk: bytes) -> None:
        await asyncio.to_thread(self._writer.write, chunk)

    async def commit(self, facts: VerifiedFile) -> None:
        await asyncio.to_thread(self._writer.commit)

    async def abort(self) -> None:
        # Synchronous on purpose (no await): it must run even when the task is being
        # cancelled, and it waits (briefly) for a chunk still being written by the thread.
        self._writer.abort()


class LocalTarget(ArchiveTarget):
    """Day files under ``directory``."""

    def __init__(self, directory: Path, *, opener: Opener = open_exclusive) -> None:
        self.directory = directory
        self._opener = opener

    def __repr__(self) -> str:
        return f"LocalTarget({str(self.directory)!r})"

    @property
    def url(self) -> str:
        return f"file://{self.directory}"

    def path(self, key: str) -> Path:
        """The file of ``key`` (lexically inside the directory: the key is checked)."""
        if key.startswith(f"{PROBE_DIRECTORY}/"):
            return self.directory.joinpath(*check_probe_key(key).split("/"))
        return self.directory.joinpath(*check_relative(key).parts)

    def location(self, key: str) -> str:
        return str(self.path(key))

    def key_of(self, location: str) -> str | None:
        try:
            relative = Path(location).relative_to(self.directory)
        except ValueError:
            return None
        return relative.as_posix()

    def with_opener(self, opener: object) -> ArchiveTarget:
        return LocalTarget(self.directory, opener=cast(Opener, opener))

    async def open_writer(self, key: str) -> ArchiveWriter:
        writer = AtomicWriter(self.path(key), self.directory, opener=self._opener)
        # The disk first: a full or unwritable archive fails before any byte is fetched.
        await asyncio.to_thread(writer.open)
        return LocalWriter(writer)

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        try:
            found = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ArchiveReadError(f"cannot stat {path}: {describe_os_error(error)}") from None
        if not path.is_file():
            return None
        return ObjectInfo(size=found.st_size)

    async def read(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except OSError as error:
            raise ArchiveReadError(f"cannot read {path}: {describe_os_error(error)}") from None
        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(handle.read, chunk_size)
                except OSError as error:
                    raise ArchiveReadError(
                        f"cannot read {path}: {describe_os_error(error)}"
                    ) from None
                if not chunk:
                    return
                yield chunk
        finally:
            handle.close()

    async def put_probe(self, key: str, data: bytes) -> None:
        writer = await self.open_writer(check_probe_key(key))
        try:
            await writer.write(data)
            await writer.commit(VerifiedFile(len(data), "", 0))
        except BaseException:
            await writer.abort()
            raise

    async def delete_probe(self, key: str) -> None:
        path = self.path(check_probe_key(key))
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(path.parent.rmdir)
        except OSError as error:
            raise ArchiveWriteError(
                f"cannot remove the probe {path}: {describe_os_error(error)}"
            ) from None

    async def abort_incomplete(self) -> int:
        """Remove every part file a crash left under the directory."""

        def sweep() -> int:
            removed = 0
            if not self.directory.is_dir():
                return 0
            for entry in self.directory.rglob(f".*{PART_MARKER}*"):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
            return removed

        return await asyncio.to_thread(sweep)
