"""The archive in object storage: S3 (and S3-compatible: MinIO, Ceph, R2, Wasabi), GCS, Azure.

All I/O goes through obstore (one asyncio API over the three clouds, Rust-backed, with
streaming multipart uploads, retries and each cloud's standard credential chain); no request is
signed here. ``ObjectTarget`` keeps the promises of ``archive/target.py``:

- Streamed: the writer hands chunks through a small queue to ``obstore.put_async``, which
  uploads ``PART_BYTES`` parts, ``UPLOAD_CONCURRENCY`` at a time: memory stays at a few parts
  whatever the file size, and no byte touches the local disk.
- Atomic: a file that ends within the first part is sent as one PUT after it was verified; a
  longer one is a multipart upload whose object appears only when the upload completes. A
  failure or an abort makes the chunk iterator raise, and obstore aborts the multipart upload:
  nothing is ever visible at the final key. A process killed mid-upload leaves an incomplete
  multipart upload (invisible, but billed): obstore cannot list those, so they are removed by
  the bucket's lifecycle rule (README: "AbortIncompleteMultipartUpload"), not at start-up.
- Verified: the object carries metadata ``archived-by: orchestrator`` and, for a one-PUT file
  (whose sha256 is known before it is sent), ``sha256`` and ``records``. A multipart upload's
  metadata is sent when it starts, before the sha256 is known; its sha256 lives in the store
  and ``verify-archive --deep`` re-hashes it. The workflow HEADs the final key after commit.
- Never deletes an archived object: ``delete_probe`` removes only probe objects.

Errors from the service become ``ArchiveWriteError`` (writing) or ``ArchiveReadError``
(reading), with obstore's first line (operation, URL and status; never a credential).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import gc
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import AzureStore, GCSStore, S3Store

from orchestrator.archive.layout import ArchiveUrl, check_relative
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
from orchestrator.errors import ArchiveError, ArchiveWriteError, InvalidInput

if TYPE_CHECKING:  # only for annotations
    from obstore.store import ClientConfig, ObjectStore, RetryConfig

# A multipart upload's part size (S3's minimum is 5 MiB); also the most a one-PUT file may be.
PART_BYTES = 5 * 1024 * 1024
# Parts of one upload in flight at once: memory is about (this + 2) parts per upload.
UPLOAD_CONCURRENCY = 2
# Chunks waiting between the download and the upload.
QUEUE_CHUNKS = 4
# How long an abort waits for obstore to abort a multipart upload.
ABORT_SECONDS = 10.0
# Our metadata on every object.
MARKER_KEY = "archived-by"
MARKER_VALUE = "orchestrator"
CONTENT_TYPE = "application/gzip"

# The obstore class of each URL scheme; they all take the same arguments.
_STORES: dict[str, Any] = {"s3": S3Store, "gs": GCSStore, "az": AzureStore}


# Set once a target was built: only then is there anything to wait for at exit.
_runtime_used = False
# How long the exit hook lets obstore's runtime threads finish what they were doing.
EXIT_SETTLE_SECONDS = 0.2


def _collect_before_exit() -> None:
    """Let obstore's runtime settle while the interpreter is still whole.

    A tokio worker still finishing an obstore call (dropping its Python objects) when the
    interpreter finalizes can panic, and the process then aborts (SIGABRT, exit 134) after it
    finished its work: a daemon or ``verify-archive`` would report a crash. At exit, after the
    event loop is gone, unreachable obstore objects are collected and the workers are given a
    moment to finish, before finalization starts.
    """
    if not _runtime_used:
        return
    gc.collect()
    time.sleep(EXIT_SETTLE_SECONDS)


atexit.register(_collect_before_exit)


@dataclass(frozen=True)
class ObjectStoreConfig:
    """What it takes to reach one bucket; built by ``orchestrator.wiring`` from [archive]."""

    url: ArchiveUrl
    endpoint: str | None = None
    region: str | None = None
    allow_http: bool = False
    # obstore configuration keys -> values (access keys, account names, key file paths).
    options: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Overrides of obstore's retry policy (tests shorten it).
    max_retries: int | None = None
    retry_timeout: dt.timedelta | None = None
    request_timeout: dt.timedelta | None = None
    part_bytes: int = PART_BYTES
    upload_concurrency: int = UPLOAD_CONCURRENCY

    def __repr__(self) -> str:
        return f"ObjectStoreConfig({self.url.url!r})"


def build_store(config: ObjectStoreConfig) -> ObjectStore:
    """The obstore store of ``config``; InvalidInput (no secret in it) when obstore refuses."""
    client: ClientConfig = {"allow_http": config.allow_http}
    if config.request_timeout is not None:
        client["timeout"] = config.request_timeout
    retry: RetryConfig = {}
    if config.max_retries is not None:
        retry["max_retries"] = config.max_retries
    if config.retry_timeout is not None:
        retry["retry_timeout"] = config.retry_timeout
    url = config.url
    options: dict[str, Any] = dict(config.options)
    if config.endpoint is not None:
        options["endpoint"] = config.endpoint
    prefix = url.prefix or None
    try:
        if url.scheme == "s3" and config.region is not None:
            options["region"] = config.region
        store_class = _STORES.get(url.scheme)
        if store_class is not None:
            store: ObjectStore = store_class(
                url.bucket,
                prefix=prefix,
                config=options,  # keys checked by obstore itself
                client_options=client,
                retry_config=retry or None,
            )
            return store
    except Exception as error:  # obstore raises its own tree (and ValueError) for bad options
        message = first_line(error)
        for value in config.options.values():
            # A parser may quote what it could not read: never a credential.
            if len(value) >= 4:
                message = message.replace(value, "[redacted]")
        raise InvalidInput("url", f"{url.url}: {message}") from None
    raise InvalidInput("url", f"{url.scheme}:// is not an object store")


def first_line(error: BaseException) -> str:
    """obstore's message without its debug dump: operation, URL, status."""
    text = str(error).split("\n\nDebug source", 1)[0].strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 400 else line[:397] + "..."


def _not_found(error: BaseException) -> bool:
    return isinstance(error, FileNotFoundError)


class _Abort(Exception):
    """Raised inside the chunk iterator so obstore aborts the multipart upload."""


class ObjectWriter(ArchiveWriter):
    """One object: buffered until it outgrows one part, then a streaming multipart upload."""

    def __init__(self, target: ObjectTarget, key: str) -> None:
        self._target = target
        self._key = key
        self._buffer = bytearray()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self._upload: asyncio.Task[None] | None = None
        self._aborted = False
        self._done = False

    async def write(self, chunk: bytes) -> None:
        if self._done:
            raise RuntimeError("the writer is closed")
        if self._upload is None:
            self._buffer += chunk
            if len(self._buffer) >= self._target.config.part_bytes:
                # Too big for one PUT: stream it, starting with what was buffered.
                self._upload = asyncio.create_task(self._multipart())
                first, self._buffer = bytes(self._buffer), bytearray()
                await self._send(first)
            return
        await self._send(chunk)

    async def commit(self, facts: VerifiedFile) -> None:
        if self._done:
            raise RuntimeError("the writer is closed")
        try:
            if self._upload is None:
                attributes = self._target.attributes()
                attributes["sha256"] = facts.sha256
                attributes["records"] = str(facts.record_count)
                try:
                    await obstore.put_async(
                        self._target.store,
                        self._key,
                        bytes(self._buffer),
                        attributes=attributes,
                        use_multipart=False,
                    )
                except Exception as error:  # obstore's tree: the service refused or failed
                    raise self._target.write_error(self._key, error) from None
            else:
                await self._send(None)
                await self._upload
        finally:
            self._done = True
            self._buffer = bytearray()

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._aborted = True
        self._buffer = bytearray()
        upload = self._upload
        if upload is None or upload.done():
            with contextlib.suppress(BaseException):
                if upload is not None:
                    upload.result()
            return
        # Wake the iterator (it may wait on an empty queue) so it raises and obstore aborts.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        done, _ = await asyncio.wait({upload}, timeout=ABORT_SECONDS)
        if not done:
            upload.cancel()
        with contextlib.suppress(BaseException):
            await upload

    async def _send(self, item: bytes | None) -> None:
        """Queue ``item`` for the upload; the upload's own error if it failed meanwhile."""
        upload = self._upload
        assert upload is not None
        put = asyncio.ensure_future(self._queue.put(item))
        try:
            await asyncio.wait({put, upload}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not put.done():
                put.cancel()
        if put.done() and not put.cancelled():
            return
        await upload  # raises the upload's error
        raise ArchiveWriteError(f"{self._target.location(self._key)}: the upload ended early")

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if self._aborted:
                raise _Abort
            if item is None:
                return
            yield item

    async def _multipart(self) -> None:
        config = self._target.config
        try:
            await obstore.put_async(
                self._target.store,
                self._key,
                self._chunks(),
                attributes=self._target.attributes(),
                use_multipart=True,
                chunk_size=config.part_bytes,
                max_concurrency=config.upload_concurrency,
            )
        except _Abort:
            raise
        except Exception as error:  # obstore's tree: the service refused or failed
            raise self._target.write_error(self._key, error) from None


class ObjectTarget(ArchiveTarget):
    """Day files as objects under ``config.url``'s bucket and prefix."""

    def __init__(self, config: ObjectStoreConfig, store: ObjectStore | None = None) -> None:
        global _runtime_used
        _runtime_used = True
        self.config = config
        self.store = store if store is not None else build_store(config)
        self._url = config.url.url

    def __repr__(self) -> str:
        return f"ObjectTarget({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    def _key(self, key: str) -> str:
        if key.startswith(f"{PROBE_DIRECTORY}/"):
            return check_probe_key(key)
        return check_relative(key).as_posix()

    def location(self, key: str) -> str:
        return f"{self._url}/{self._key(key)}"

    def key_of(self, location: str) -> str | None:
        head = f"{self._url}/"
        if not location.startswith(head):
            return None
        return location[len(head) :]

    def attributes(self) -> dict[str, str]:
        return {"Content-Type": CONTENT_TYPE, MARKER_KEY: MARKER_VALUE}

    def write_error(self, key: str, error: BaseException) -> ArchiveWriteError:
        return ArchiveWriteError(f"cannot upload {self.location(key)}: {first_line(error)}")

    def _read_error(self, key: str, error: BaseException) -> ArchiveReadError:
        return ArchiveReadError(f"cannot read {self.location(key)}: {first_line(error)}")

    async def open_writer(self, key: str) -> ArchiveWriter:
        return ObjectWriter(self, self._key(key))

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self._key(key)
        try:
            result = await obstore.get_async(self.store, path, options={"head": True})
        except Exception as error:  # obstore's tree
            if _not_found(error):
                return None
            raise self._read_error(path, error) from None
        attributes = {str(k): str(v) for k, v in result.attributes.items()}
        return ObjectInfo(
            size=int(result.meta["size"]),
            sha256=attributes.get("sha256"),
            ours=attributes.get(MARKER_KEY) == MARKER_VALUE,
            attributes=attributes,
        )

    async def read(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        path = self._key(key)
        try:
            result = await obstore.get_async(self.store, path)
            async for chunk in result.stream(min_chunk_size=chunk_size):
                yield bytes(chunk)
        except ArchiveError:
            raise
        except Exception as error:  # obstore's tree
            raise self._read_error(path, error) from None

    async def put_probe(self, key: str, data: bytes) -> None:
        path = check_probe_key(key)
        try:
            await obstore.put_async(
                self.store, path, data, attributes=self.attributes(), use_multipart=False
            )
        except Exception as error:  # obstore's tree
            raise self.write_error(path, error) from None

    async def delete_probe(self, key: str) -> None:
        path = check_probe_key(key)
        try:
            await obstore.delete_async(self.store, path)
        except Exception as error:  # obstore's tree
            raise ArchiveWriteError(
                f"cannot remove the probe {self.location(path)}: {first_line(error)}"
            ) from None
