"""Archiving one day file: resolve, stream, verify, write atomically. No store, no logs.

``download_day`` resolves the day (307 -> pre-signed URL), streams the body from the file host
(no Twilio credentials: ``BulkExportsClient.open_download``) through a ``StreamVerifier`` into
an ``ArchiveWriter`` of the archive's target (a local directory or object storage: see
``archive/target.py``), checks the size against the host's Content-Length and Twilio's
``size``, commits only when everything holds, then HEADs the final key: it must show the
verified size. The verifying of each chunk runs in a worker thread, so the CPU (sha256,
inflate, JSON) does not block the event loop; memory stays at a few chunks (a few upload parts
for object storage) whatever the file size.

Errors (nothing is left at the final key when one is raised, cancellation included):
- ``FileGone``: the day resource answered 404: Twilio no longer has the file;
- ``DownloadExpired``: the file host kept refusing fresh pre-signed URLs;
- ``DownloadCorrupt``: truncated gzip, a line that is not a JSON object, a size mismatch;
- ``ArchiveWriteError``: the disk is full, the directory cannot be written, the bucket refused
  or failed the upload, or the final key does not show the file after commit;
- other ``TwilioError``s: the API or the file host failed (retryable).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.archive.target import ArchiveReadError, ArchiveTarget
from orchestrator.archive.verify import StreamVerifier, VerifiedFile
from orchestrator.domain.model import ResourceType
from orchestrator.errors import (
    ArchiveError,
    ArchiveWriteError,
    DownloadCorrupt,
    DownloadExpired,
    NotFound,
)
from orchestrator.twilio import BulkExportsClient

# Bytes asked of the network per chunk (aiohttp may hand over less).
CHUNK_BYTES = 256 * 1024
# Pre-signed URLs fetched for one attempt when the file host refuses them.
MAX_RESOLUTIONS = 3


class FileGone(ArchiveError):
    """Twilio no longer has the day's file (the day resource answered 404)."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A day file complete at ``location`` (a path, or an object's URL) of its target."""

    location: str
    size: int
    sha256: str
    record_count: int
    # Pre-signed URLs it took (more than one when the host refused an expired one).
    resolutions: int
    seconds: float


async def download_day(
    client: BulkExportsClient,
    resource_type: ResourceType,
    day: dt.date,
    target: ArchiveTarget,
    key: str,
    *,
    expected_size: int | None = None,
    allow_empty: bool = False,
    max_resolutions: int = MAX_RESOLUTIONS,
    monotonic: Callable[[], float] = time.monotonic,
) -> StoredFile:
    """Put the day's file, complete and verified, at ``key`` of ``target``."""
    started = monotonic()
    for resolution in range(1, max_resolutions + 1):
        try:
            url = await client.resolve_day_url(resource_type, day)
        except NotFound as exc:
            raise FileGone(f"Twilio has no file for {resource_type.value} {day}: {exc}") from exc
        try:
            facts = await _fetch(client, url, target, key, expected_size, allow_empty=allow_empty)
        except (DownloadExpired, NotFound):
            # Expired or refused (or the host lost the key): a fresh URL may work; a day Twilio
            # no longer has shows as 404 from the day resource on the next turn.
            if resolution == max_resolutions:
                raise
            continue
        return StoredFile(
            location=target.location(key),
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
    target: ArchiveTarget,
    key: str,
    expected_size: int | None,
    *,
    allow_empty: bool,
) -> VerifiedFile:
    verifier = StreamVerifier(allow_empty=allow_empty)
    # The target first: a full or unwritable archive fails before any byte is fetched.
    writer = await target.open_writer(key)
    try:
        async with client.open_download(url) as download:
            async for chunk in download.chunks(CHUNK_BYTES):
                await asyncio.to_thread(verifier.feed, chunk)
                await writer.write(chunk)
            content_length = download.content_length
        facts = verifier.finish()
        if content_length is not None and facts.size != content_length:
            raise DownloadCorrupt(
                f"got {facts.size} bytes, the file host announced {content_length}"
            )
        if expected_size is not None and facts.size != expected_size:
            raise DownloadCorrupt(
                f"got {facts.size} bytes, Twilio's Days list says {expected_size}"
            )
        await writer.commit(facts)
    except BaseException:
        # Runs even when this task is being cancelled: nothing is left at the final key.
        await writer.abort()
        raise
    # Recorded archived only when the final key shows the whole file.
    try:
        found = await target.stat(key)
    except ArchiveReadError as error:
        raise ArchiveWriteError(f"cannot check the file after its upload: {error}") from None
    if found is None or found.size != facts.size:
        shown = "nothing" if found is None else f"{found.size} bytes"
        raise ArchiveWriteError(
            f"{target.location(key)} shows {shown} after the upload of {facts.size} bytes"
        )
    return facts
