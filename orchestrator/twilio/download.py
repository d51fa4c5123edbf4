"""Streaming a day file from its pre-signed URL.

The file host (S3-like) authenticates by the URL's signature: no Twilio credentials are sent
(S3 rejects a request that carries both). There is no total timeout, only ``sock_read`` between
two reads, and bytes arrive as they are stored (no transparent gzip decoding).

Use it through ``BulkExportsClient.open_download``::

    async with client.open_download(url) as download:
        expected = download.content_length      # None when the host sent no Content-Length
        async for chunk in download.chunks():
            sink.write(chunk)
        assert download.complete

Errors: an expired or refused URL (400/403) raises ``DownloadExpired`` when opening; 404 raises
``NotFound``; 5xx/429/connection failures are retried when opening, then raised as
``ServerError``/``RateLimited``/``TransportError``; a failure while streaming (reset, stall
longer than ``download_read_timeout``, truncated body) raises ``TransportError`` and the whole
download should be started again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from orchestrator.errors import TransportError


class Download:
    """An open response of the file host, read by ``chunks()``; made by ``open_download``."""

    __slots__ = (
        "_chunk_size",
        "_read_timeout",
        "_response",
        "_started",
        "bytes_read",
        "complete",
        "content_encoding",
        "content_length",
        "content_type",
        "status",
        "url",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        url: str,
        chunk_size: int,
        read_timeout: float,
    ) -> None:
        self._response = response
        self._chunk_size = chunk_size
        self._read_timeout = read_timeout
        self._started = False
        # ``url`` has no query string: the signature is not kept or shown anywhere.
        self.url = url
        self.status = response.status
        self.content_length: int | None = response.content_length
        self.content_type: str | None = response.headers.get("Content-Type")
        self.content_encoding: str | None = response.headers.get("Content-Encoding")
        self.bytes_read = 0
        # True once the body was read to its end without error.
        self.complete = False

    async def chunks(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives, at most ``chunk_size`` bytes a chunk; readable once."""
        if self._started:
            raise RuntimeError("a download's chunks can be read only once")
        self._started = True
        size = chunk_size or self._chunk_size
        try:
            async for chunk in self._response.content.iter_chunked(size):
                self.bytes_read += len(chunk)
                yield chunk
        except TimeoutError:
            raise TransportError(
                f"download of {self.url} stalled: no data for {self._read_timeout:g} s "
                f"after {self.bytes_read} bytes"
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"download of {self.url} broke after {self.bytes_read} bytes: {type(exc).__name__}"
            ) from exc
        self.complete = True

    def _close(self) -> None:
        if self.complete:
            self._response.release()
        else:
            # Unread bytes left: the connection cannot go back to the pool.
            self._response.close()

    def __repr__(self) -> str:
        return (
            f"Download(url={self.url!r}, status={self.status}, "
            f"content_length={self.content_length}, bytes_read={self.bytes_read}, "
            f"complete={self.complete})"
        )
