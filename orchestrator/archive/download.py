"""Archiving one day file: resolve, stream, verify, write atomically. No store, no logs.

``download_day`` resolves the day (307 -> pre-signed URL), streams the body from the file host
(no Twilio credentials: ``BulkExportsClient.open_download``) through a ``StreamVerifier`` into an
``AtomicWriter``, checks the size against the host's Content-Length and Twilio's ``size``, and
renames the file into place only when everything holds. The verifying and writing of each chunk
run together in a worker thread, so neither the CPU (sha256, inflate, JSON) nor the disk block
the event loop; memory stays at a few chunks whatever the file size.

Errors (the temporary file is always gone when one is raised, cancellation included):
- ``FileGone``: the day resource answered 404: Twilio no longer has the file;
- ``DownloadExpired``: the file host kept refusing fresh pre-signed URLs;
- ``DownloadCorrupt``: truncated gzip, a line that is not a JSON object, a size mismatch;
- ``ArchiveWriteError``: the disk is full or the directory cannot be written;
- other ``TwilioError``s: the API or the file host failed (retryable).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.archive.verify import StreamVerifier, VerifiedFile
from orchestrator.archive.writer import AtomicWriter, Opener, open_exclusive
from orchestrator.domain.model import ResourceType
from orchestrator.errors import ArchiveError, DownloadCorrupt, DownloadExpired, NotFound
from orchestrator.twilio import BulkExportsClient

# Bytes asked of the network per chunk (aiohttp may hand over less).
CHUNK_BYTES = 256 * 1024
# Pre-signed URLs fetched for one attempt when the file host refuses them.
MAX_RESOLUTIONS = 3


class FileGone(ArchiveError):
    """Twilio no longer has the day's file (the day resource answered 404)."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A day file complete on disk at ``path``."""

    path: Path
    size: int
    sha256: str
    record_count: int
    # Pre-signed URLs it took (more than one when the host refused an expired one).
    resolutions: int
    seconds: float


class _Sink:
    """Verify, then write, one chunk; runs in a worker thread."""

    def __init__(self, verifier: StreamVerifier, writer: AtomicWriter) -> None:
        self.verifier = verifier
        self.writer = writer

    def feed(self, chunk: bytes) -> None:
        self.verifier.feed(chunk)
        self.writer.write(chunk)

    def finish(self) -> VerifiedFile:
        return self.verifier.finish()


async def download_day(
    client: BulkExportsClient,
    resource_type: ResourceType,
    day: dt.date,
    target: Path,
    root: Path,
    *,
    expected_size: int | None = None,
    allow_empty: bool = False,
    opener: Opener = open_exclusive,
    max_resolutions: int = MAX_RESOLUTIONS,
    monotonic: Callable[[], float] = time.monotonic,
) -> StoredFile:
    """Put the day's file, complete and verified, at ``target`` (inside ``root``)."""
    started = monotonic()
    for resolution in range(1, max_resolutions + 1):
        try:
            url = await client.resolve_day_url(resource_type, day)
        except NotFound as exc:
            raise FileGone(f"Twilio has no file for {resource_type.value} {day}: {exc}") from exc
        try:
            facts = await _fetch(
                client, url, target, root, expected_size, allow_empty=allow_empty, opener=opener
            )
        except (DownloadExpired, NotFound):
            # Expired or refused (or the host lost the key): a fresh URL may work; a day Twilio
            # no longer has shows as 404 from the day resource on the next turn.
            if resolution == max_resolutions:
                raise
            continue
        return StoredFile(
            path=target,
            size=facts.size,
            sha256=facts.sha256,
            record_count=facts.record_count,
            resolutions=resolution,
            seconds=monotonic() - started,
        )
    raise AssertionError("unreachable")  # pragma: no cover


async def _fetch(
    client: BulkExportsClient,
    url: str,
    target: Path,
    root: Path,
    expected_size: int | None,
    *,
    allow_empty: bool,
    opener: Opener,
) -> VerifiedFile:
    writer = AtomicWriter(target, root, opener=opener)
    sink = _Sink(StreamVerifier(allow_empty=allow_empty), writer)
    try:
        # The disk first: a full or unwritable archive fails before any byte is fetched.
        await asyncio.to_thread(writer.open)
        async with client.open_download(url) as download:
            async for chunk in download.chunks(CHUNK_BYTES):
                await asyncio.to_thread(sink.feed, chunk)
            content_length = download.content_length
        facts = sink.finish()
        if content_length is not None and facts.size != content_length:
            raise DownloadCorrupt(
                f"got {facts.size} bytes, the file host announced {content_length}"
            )
        if expected_size is not None and facts.size != expected_size:
            raise DownloadCorrupt(
                f"got {facts.size} bytes, Twilio's Days list says {expected_size}"
            )
        await asyncio.to_thread(writer.commit)
    except BaseException:
        # Synchronous on purpose: it must run even when this task is being cancelled, and it
        # waits (briefly) for a chunk still being written by the worker thread.
        writer.abort()
        raise
    return facts
