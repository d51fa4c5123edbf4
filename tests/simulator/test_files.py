"""Day files: the 307 redirect, unauthenticated download, content, size, expiry, streaming."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import aiohttp

from orchestrator.domain.model import ResourceType
from orchestrator.simulator.files import file_spec, iter_file, measure
from tests.simulator.conftest import Api, make_settings, serve


async def _complete(api: Api, start: str, end: str, resource: str = "Messages") -> None:
    await api.create(start, end, resource=resource)
    api.advance(3600)


async def _download(api: Api, resource: str, day: str) -> tuple[bytes, int]:
    status, body = await api.call(
        "GET", f"/v1/Exports/{resource}/Days/{day}", allow_redirects=False
    )
    assert status == 307
    url = body["redirect_to"]
    async with api.http.get(url) as resp:
        assert resp.status == 200
        data = await resp.read()
    _, listed = await api.call("GET", f"/v1/Exports/{resource}/Days")
    size = next(d["size"] for d in listed["days"] if d["day"] == day)
    return data, size


async def test_day_redirects_to_a_file_that_needs_no_auth(api: Api) -> None:
    """Day fetch answers 307 with Location == redirect_to; the file is served without auth."""
    await _complete(api, "2024-03-01", "2024-03-01")
    url = f"{api.sim.base_url}/v1/Exports/Messages/Days/2024-03-01"
    async with api.http.get(url, headers=api.headers, allow_redirects=False) as resp:
        assert resp.status == 307
        body = await resp.json()
        assert resp.headers["Location"] == body["redirect_to"]
    assert set(body) == {"redirect_to"}
    data, size = await _download(api, "Messages", "2024-03-01")
    assert len(data) == size
    lines = gzip.decompress(data).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert 3 <= len(records) <= 8
    first = records[0]
    assert first["sid"].startswith("SM") and len(first["sid"]) == 34
    assert first["account_sid"] == api.sim.settings.account_sid
    assert {
        "from",
        "to",
        "body",
        "status",
        "date_sent",
        "direction",
        "num_segments",
        "price",
    } <= set(first)
    logged = api.sim.requests(route="/_files/{ResourceType}/{Day}")
    assert [(r.status, r.authorization) for r in logged] == [(200, False)]


async def test_calls_file_has_call_records(api: Api) -> None:
    """Calls files hold CA... records with duration and start_time."""
    await _complete(api, "2024-03-01", "2024-03-01", resource="Calls")
    data, size = await _download(api, "Calls", "2024-03-01")
    record = json.loads(gzip.decompress(data).splitlines()[0])
    assert record["sid"].startswith("CA")
    assert {"from", "to", "status", "duration", "start_time"} <= set(record)
    assert len(data) == size


async def test_file_with_authorization_header_is_refused_like_s3(api: Api) -> None:
    """Sending the Twilio Authorization header to the pre-signed URL gets S3's 400 XML."""
    await _complete(api, "2024-03-01", "2024-03-01")
    _, body = await api.call("GET", "/v1/Exports/Messages/Days/2024-03-01", allow_redirects=False)
    async with api.http.get(body["redirect_to"], headers=api.headers) as resp:
        assert resp.status == 400
        assert "<Code>InvalidArgument</Code>" in await resp.text()


async def test_file_url_expires(api: Api) -> None:
    """A pre-signed URL older than download_url_ttl answers 403 AccessDenied XML."""
    await _complete(api, "2024-03-01", "2024-03-01")
    _, body = await api.call("GET", "/v1/Exports/Messages/Days/2024-03-01", allow_redirects=False)
    api.advance(3601)
    async with api.http.get(body["redirect_to"]) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/xml"
        assert "Request has expired" in await resp.text()


async def test_tampered_file_url_is_refused(api: Api) -> None:
    """Changing the day in a signed URL breaks its signature: 403 SignatureDoesNotMatch."""
    await _complete(api, "2024-03-01", "2024-03-02")
    _, body = await api.call("GET", "/v1/Exports/Messages/Days/2024-03-01", allow_redirects=False)
    async with api.http.get(body["redirect_to"].replace("2024-03-01", "2024-03-02")) as resp:
        assert resp.status == 403
        assert "SignatureDoesNotMatch" in await resp.text()


async def test_empty_day_is_completed_empty_records_with_a_valid_empty_gzip(
    http: aiohttp.ClientSession,
) -> None:
    """A day with no records is CompletedEmptyRecords and its file is a valid empty gzip."""
    empty = frozenset({(ResourceType.MESSAGES, dt.date(2024, 3, 2))})
    async with serve(http, empty_days=empty) as api:
        sid = (await api.create("2024-03-01", "2024-03-02"))["job_sid"]
        api.advance(3600)
        assert await api.statuses(sid) == {
            "2024-03-01": "Completed",
            "2024-03-02": "CompletedEmptyRecords",
        }
        data, size = await _download(api, "Messages", "2024-03-02")
        assert gzip.decompress(data) == b""
        assert len(data) == size


async def test_target_size_file_streams_with_exact_size(http: aiohttp.ClientSession) -> None:
    """With day_target_bytes the file is about that big, streamed, and its size is exact."""
    async with serve(http, day_target_bytes=600_000, file_chunk_bytes=64 * 1024) as api:
        await _complete(api, "2024-03-01", "2024-03-01")
        data, size = await _download(api, "Messages", "2024-03-01")
        assert len(data) == size
        assert 600_000 <= size < 700_000
        lines = gzip.decompress(data).splitlines()
        assert all(json.loads(line)["sid"].startswith("SM") for line in lines)


def test_file_generation_is_chunked_and_deterministic() -> None:
    """The generator yields many chunks; the same seed gives the same bytes and facts."""
    settings = make_settings(day_target_bytes=300_000, file_chunk_bytes=16 * 1024)
    spec = file_spec(settings, ResourceType.CALLS, dt.date(2024, 3, 1))
    chunks = list(iter_file(spec))
    assert len(chunks) > 5
    assert max(len(c) for c in chunks) < 64 * 1024
    facts = measure(spec)
    assert facts.size == sum(len(c) for c in chunks)
    assert facts.records == len(gzip.decompress(b"".join(chunks)).splitlines())
    assert measure(spec) == facts
    other = file_spec(
        make_settings(seed=2, day_target_bytes=300_000, file_chunk_bytes=16 * 1024),
        ResourceType.CALLS,
        dt.date(2024, 3, 1),
    )
    assert measure(other).sha256 != facts.sha256
