"""Day file downloads against a fake file host: no credentials, streaming, error mapping."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from aiohttp import web

from orchestrator.domain.model import ResourceType
from orchestrator.errors import DownloadExpired, InvalidInput, NotFound, ServerError, TransportError
from tests.contract.conftest import ClientFactory
from tests.contract.fakes import SECRETS, FakeServer, Handler, reply

FILE = "/bucket/AC123/Messages/2024-01-01.json.gz"
SIGNED = "?X-Amz-Expires=300&X-Amz-Signature=deadbeefcafe"
CONTENT = gzip.compress(b"".join(b'{"sid": "SM%d"}\n' % i for i in range(5000)))

S3_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message><Expires>2024-01-01T00:00:00Z</Expires></Error>"
)


def file_reply(body: bytes = CONTENT, *, encoding: str | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/gzip"}
        if encoding:
            headers["Content-Encoding"] = encoding
        return web.Response(body=body, headers=headers)

    return handler


def partial_then(action: str, *, declared: int = 10_000) -> Handler:
    """Send a few bytes of a declared-larger body, then stall or close."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(declared)})
        await response.prepare(request)
        await response.write(b"x" * 100)
        if action == "close":
            assert request.transport is not None
            request.transport.close()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return handler


async def test_resolve_then_download_streams_without_credentials(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """The API call carries Basic auth; the file host gets no Authorization and the exact bytes."""
    file_url = fake.base_url + FILE + SIGNED
    fake.on(
        "GET",
        "/v1/Exports/Messages/Days/2024-01-01",
        reply(307, {"redirect_to": file_url}, headers={"Location": file_url}),
    )
    fake.on("GET", FILE, file_reply())
    client = make_client(download_chunk_size=4096)
    url = await client.resolve_day_url(ResourceType.MESSAGES, "2024-01-01")
    received = bytearray()
    async with client.open_download(url) as download:
        assert download.content_length == len(CONTENT)
        async for chunk in download.chunks():
            assert len(chunk) <= 4096
            received += chunk
    assert bytes(received) == CONTENT
    assert download.complete
    assert download.bytes_read == len(CONTENT)
    api, file_request = fake.requests
    assert api.authorization is not None
    assert file_request.authorization is None
    assert file_request.query == {"X-Amz-Expires": "300", "X-Amz-Signature": "deadbeefcafe"}
    # The signature is a credential too: it is not shown.
    assert "deadbeef" not in repr(download)


async def test_gzip_content_encoding_is_not_decoded(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A host that labels the file Content-Encoding: gzip still yields the stored gzip bytes."""
    fake.on("GET", FILE, file_reply(encoding="gzip"))
    async with make_client().open_download(fake.base_url + FILE) as download:
        body = b"".join([chunk async for chunk in download.chunks()])
    assert body == CONTENT
    assert download.content_encoding == "gzip"


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (reply(403, text=S3_EXPIRED, content_type="application/xml"), DownloadExpired),
        (
            reply(
                400, text="<Error><Code>ExpiredToken</Code></Error>", content_type="application/xml"
            ),
            DownloadExpired,
        ),
        (
            reply(
                404, text="<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml"
            ),
            NotFound,
        ),
    ],
)
async def test_download_refusals_map_and_are_not_retried(
    fake: FakeServer, make_client: ClientFactory, handler: Handler, error: type[Exception]
) -> None:
    """403/400 from the file host -> DownloadExpired, 404 -> NotFound, each after one request."""
    fake.on("GET", FILE, handler)
    with pytest.raises(error) as caught:
        async with make_client(max_attempts=4).open_download(fake.base_url + FILE + SIGNED):
            raise AssertionError("must not open")
    assert fake.count() == 1
    assert "deadbeef" not in str(caught.value)


async def test_expired_message_keeps_the_s3_code(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """The S3 XML code and message make the error message."""
    fake.on("GET", FILE, reply(403, text=S3_EXPIRED, content_type="application/xml"))
    with pytest.raises(DownloadExpired) as caught:
        async with make_client().open_download(fake.base_url + FILE):
            pass
    assert caught.value.status == 403
    assert "AccessDenied: Request has expired" in caught.value.message


async def test_download_open_retries_server_errors(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A 503 SlowDown when opening is retried; then the file streams."""
    fake.on(
        "GET",
        FILE,
        reply(503, text="<Error><Code>SlowDown</Code></Error>", content_type="application/xml"),
        file_reply(),
    )
    async with make_client().open_download(fake.base_url + FILE) as download:
        body = b"".join([chunk async for chunk in download.chunks()])
    assert body == CONTENT
    assert fake.count() == 2


async def test_download_open_gives_up_after_max_attempts(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A file host that keeps failing raises ServerError after max_attempts requests."""
    fake.on("GET", FILE, reply(500, text="oops", content_type="text/plain"))
    with pytest.raises(ServerError):
        async with make_client(max_attempts=3).open_download(fake.base_url + FILE):
            pass
    assert fake.count() == 3


@pytest.mark.parametrize("action", ["stall", "close"])
async def test_broken_stream_raises_transport_error(
    fake: FakeServer, make_client: ClientFactory, action: str
) -> None:
    """A body that stalls past download_read_timeout or is cut short raises TransportError."""
    fake.on("GET", FILE, partial_then(action))
    client = make_client(download_read_timeout=0.05)
    async with client.open_download(fake.base_url + FILE) as download:
        with pytest.raises(TransportError) as caught:
            async for _ in download.chunks():
                pass
    assert download.bytes_read == 100
    assert not download.complete
    assert "100 bytes" in str(caught.value)


async def test_no_total_timeout_on_downloads(fake: FakeServer, make_client: ClientFactory) -> None:
    """A download slower in total than request_timeout still completes (only reads time out)."""

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(6):
            await response.write(b"y" * 10)
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    fake.on("GET", FILE, slow)
    client = make_client(request_timeout=0.05, connect_timeout=0.05, download_read_timeout=1.0)
    async with client.open_download(fake.base_url + FILE) as download:
        body = b"".join([chunk async for chunk in download.chunks()])
    assert body == b"y" * 60


async def test_leaving_early_closes_the_response(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """Leaving the block mid-file closes the response; chunks cannot be read twice."""
    fake.on("GET", FILE, file_reply())
    client = make_client()
    async with client.open_download(fake.base_url + FILE) as download:
        async for _ in download.chunks(1024):
            break
        with pytest.raises(RuntimeError):
            async for _ in download.chunks():
                pass
    assert not download.complete
    # The client still works afterwards.
    async with client.open_download(fake.base_url + FILE) as again:
        assert len(b"".join([c async for c in again.chunks()])) == len(CONTENT)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/x.gz",
        "https://user:pw@files.example.com/x.gz",
        "/relative/x.gz",
        "",
    ],
)
async def test_bad_download_urls_send_nothing(
    fake: FakeServer, make_client: ClientFactory, url: str
) -> None:
    """A non-http(s), relative or credentialed URL raises InvalidInput before any request."""
    with pytest.raises(InvalidInput) as caught:
        async with make_client().open_download(url):
            pass
    assert caught.value.field == "url"
    assert "pw" not in str(caught.value)
    assert fake.requests == []
    for secret in SECRETS:
        assert secret not in str(caught.value)
