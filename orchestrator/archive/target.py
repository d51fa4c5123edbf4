"""Where archived day files go: one interface, a local directory or object storage behind it.

``ArchiveTarget`` is what the archive pass, ``verify-archive`` and ``check-config --connect``
use; they never know which target they hold:

- ``LocalTarget`` (``archive/local.py``): a directory; a temporary file, fsync, atomic rename;
- ``ObjectTarget`` (``archive/object.py``): S3 (and S3-compatible), GCS or Azure Blob through
  obstore; a streaming multipart upload that makes the object appear only when it completes.

A key is the day's relative path from ``layout.relative_path`` (``Calls/2026/02/...``): the
``path_template`` layout is the same on every target. ``location(key)`` is what the store
records (the absolute path of a local file, ``s3://bucket/prefix/key`` for an object).

Promises every target keeps:

- ``open_writer(key)`` checks what it can before a byte is fetched (a local directory that
  cannot be written fails here); ``write`` streams chunks with bounded memory; ``commit(facts)``
  makes the whole file appear at ``key`` at once (or raises ``ArchiveWriteError``); ``abort()``
  leaves nothing at ``key`` and never raises. Nothing partial is ever visible at a final key.
- ``stat(key)`` is a HEAD: size and, where the target keeps metadata, the sha256 written with
  the object (None when it has none); None when nothing is at ``key``.
- ``read(key)`` streams the bytes (``ArchiveReadError`` when they cannot be read).
- Nothing archived is ever deleted: ``delete_probe`` removes only a probe object (``probe``).

``probe(target)`` writes, stats, reads back and removes a small object under the target's
``PROBE_DIRECTORY``, so a wrong bucket, endpoint or policy shows before the daemon runs
(``orchestrator check-config --connect``).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from orchestrator.archive.verify import VerifiedFile
from orchestrator.errors import ArchiveError

# Probe objects live here, under the target's root/prefix (a hidden name: no day file has one).
PROBE_DIRECTORY = ".orchestrator-probe"
# Bytes asked per chunk when reading an archived file back.
READ_CHUNK = 1024 * 1024


class ArchiveReadError(ArchiveError):
    """An archived file could not be read (permissions, the service, the network)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a HEAD of an archived file says."""

    size: int
    # The sha256 stored with the object as metadata; None when the target keeps none for it.
    sha256: str | None = None
    # Whether the object carries our own metadata (written by this daemon); always True locally.
    ours: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)


class ArchiveWriter(abc.ABC):
    """One file on its way to a final key: write chunks, then commit or abort."""

    @abc.abstractmethod
    async def write(self, chunk: bytes) -> None:
        """The next bytes of the file (bounded memory whatever the file size)."""

    @abc.abstractmethod
    async def commit(self, facts: VerifiedFile) -> None:
        """Make the whole file appear at its key at once; ``facts`` go with it as metadata."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard what was written; nothing appears at the key. Idempotent, never raises."""


class ArchiveTarget(abc.ABC):
    """A place that keeps day files under keys (see the module docstring)."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where this target is, for logs and reports (``file:///...``, ``s3://b/p``); no secret."""

    @abc.abstractmethod
    def location(self, key: str) -> str:
        """What the store records for the file at ``key``."""

    @abc.abstractmethod
    def key_of(self, location: str) -> str | None:
        """The key of a recorded ``location`` of this target; None when it is not one of ours."""

    @abc.abstractmethod
    async def open_writer(self, key: str) -> ArchiveWriter:
        """Start writing the file of ``key`` (``ArchiveWriteError`` when it cannot be)."""

    @abc.abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None:
        """HEAD ``key``: None when nothing is there; ``ArchiveReadError`` when it cannot tell."""

    @abc.abstractmethod
    def read(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        """The bytes at ``key``, streamed (``ArchiveReadError`` if missing or unreadable)."""

    @abc.abstractmethod
    async def put_probe(self, key: str, data: bytes) -> None:
        """Write a small probe object at ``key`` (under ``PROBE_DIRECTORY``) in one go."""

    @abc.abstractmethod
    async def delete_probe(self, key: str) -> None:
        """Remove a probe object; refuses any key outside ``PROBE_DIRECTORY``."""

    async def abort_incomplete(self) -> int:
        """Discard uploads left incomplete by a crash under this target; how many went.

        The default does nothing (see each target for why that is safe).
        """
        return 0

    def with_opener(self, opener: object) -> ArchiveTarget:
        """A test hook for local file-system faults: a local target opening its temporary
        files with ``opener``; other targets ignore it."""
        return self


def check_probe_key(key: str) -> str:
    """``key`` if it is a probe object's, else ArchiveError (nothing archived is deleted)."""
    head, sep, name = key.partition("/")
    if head != PROBE_DIRECTORY or not sep or not name or "/" in name or name.startswith("."):
        raise ArchiveError(f"refusing to delete {key!r}: only probe objects are ever deleted")
    return key


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What ``probe`` did, for check-config's report."""

    url: str
    key: str
    size: int


async def probe(target: ArchiveTarget) -> ProbeResult:
    """Write, HEAD, read back and remove a small object under the target: its access works.

    Raises ``ArchiveWriteError`` (cannot write), ``ArchiveReadError`` (cannot read back) or
    ``ArchiveError`` (what came back differs, or the probe could not be removed); the message
    names the target's URL and never a credential.
    """
    key = f"{PROBE_DIRECTORY}/probe-{secrets.token_hex(8)}"
    data = b"orchestrator archive probe " + secrets.token_hex(16).encode() + b"\n"
    digest = hashlib.sha256(data).hexdigest()
    await target.put_probe(key, data)
    try:
        await _read_back(target, key, data, digest)
    except BaseException:
        # The first problem is the one to report; removing the probe is then best effort.
        with contextlib.suppress(ArchiveError):
            await target.delete_probe(key)
        raise
    await target.delete_probe(key)
    return ProbeResult(url=target.url, key=key, size=len(data))


async def _read_back(target: ArchiveTarget, key: str, data: bytes, digest: str) -> None:
    info = await target.stat(key)
    if info is None:
        raise ArchiveError(f"{target.url}: the probe object {key} was written but not found")
    if info.size != len(data):
        raise ArchiveError(
            f"{target.url}: the probe object {key} has {info.size} bytes, wrote {len(data)}"
        )
    back = bytearray()
    async for chunk in target.read(key):
        back += chunk
    if hashlib.sha256(back).hexdigest() != digest:
        raise ArchiveError(f"{target.url}: the probe object {key} read back different bytes")
