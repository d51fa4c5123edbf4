"""Pre-signed day-file URLs and the S3-like endpoint that serves them (no Twilio auth).

Like S3, it refuses a request that carries an Authorization header as well as a signature,
answers XML errors, and judges expiry when a download starts (on the simulator's clock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.domain.model import ResourceType, parse_day
from orchestrator.errors import InvalidInput
from orchestrator.logs import get_logger
from orchestrator.simulator import keys
from orchestrator.simulator.faults import FaultKind
from orchestrator.simulator.files import file_spec, iter_file

log = get_logger(__name__)

FILE_ROUTE = "/_files/{ResourceType}/{Day}"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
# Above this size each chunk is made in a worker thread so the event loop stays responsive.
_THREAD_THRESHOLD_BYTES = 4 * 1024 * 1024


def _signature(secret: bytes, path: str, amz_date: str, expires: int) -> str:
    message = f"{path}\n{amz_date}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_url(
    origin: str,
    secret: bytes,
    resource_type: ResourceType,
    day: dt.date,
    now: dt.datetime,
    ttl: dt.timedelta,
) -> str:
    """A URL to the day's file that works without credentials until ``now + ttl``."""
    path = f"/_files/{resource_type.value}/{day.isoformat()}"
    amz_date = now.astimezone(dt.UTC).strftime(_AMZ_DATE)
    expires = max(1, int(ttl.total_seconds()))
    query = urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(expires),
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": _signature(secret, path, amz_date, expires),
        }
    )
    return f"{origin}{path}?{query}"


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>SIMULATOR</RequestId></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _check_signature(request: web.Request) -> web.Response | None:
    """An S3 error answer when the URL is not validly signed or has expired, else None."""
    secret = request.app[keys.URL_SECRET]
    query = request.query
    if "Authorization" in request.headers:
        return _s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
        )
    try:
        amz_date = query["X-Amz-Date"]
        expires = int(query["X-Amz-Expires"])
        given = query["X-Amz-Signature"]
        signed_at = dt.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return _s3_error(403, "AccessDenied", "Query-string authentication requires parameters")
    expected = _signature(secret, request.path, amz_date, expires)
    if not hmac.compare_digest(expected, given):
        return _s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    now = request.app[keys.ENGINE].now()
    if now > signed_at + dt.timedelta(seconds=expires):
        return _s3_error(403, "AccessDenied", "Request has expired")
    return None


async def _next_chunk(chunks: Iterator[bytes], threaded: bool) -> bytes | None:
    if threaded:
        return await asyncio.to_thread(next, chunks, None)
    return next(chunks, None)


async def serve_file(request: web.Request) -> web.StreamResponse:
    """GET /_files/{ResourceType}/{Day}: the gzip day file, streamed chunk by chunk."""
    refused = _check_signature(request)
    if refused is not None:
        return refused
    app = request.app
    try:
        resource_type = ResourceType.parse(request.match_info["ResourceType"])
        day = parse_day(request.match_info["Day"])
    except InvalidInput:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if app[keys.ENGINE].completed_day(resource_type, day) is None:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    spec = file_spec(app[keys.SETTINGS], resource_type, day)
    facts = await app[keys.CATALOG].facts(spec)
    faults = app[keys.FAULTS]
    limit = facts.size
    truncated = faults.applies_to(f"GET {FILE_ROUTE}") and faults.fires(FaultKind.TRUNCATED_FILE)
    if truncated:
        limit = facts.size // 2
        request[keys.FAULT] = FaultKind.TRUNCATED_FILE.value
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "ETag": f'"{facts.sha256[:32]}"',
        }
    )
    response.content_length = limit
    await response.prepare(request)
    threaded = spec.target_bytes is not None and spec.target_bytes > _THREAD_THRESHOLD_BYTES
    chunks = iter_file(spec)
    sent = 0
    while sent < limit:
        chunk = await _next_chunk(chunks, threaded)
        if chunk is None:
            break
        chunk = chunk[: limit - sent]
        await response.write(chunk)
        sent += len(chunk)
    await response.write_eof()
    log.debug(
        "simulator.file_served",
        resource_type=resource_type.value,
        day=day.isoformat(),
        size=sent,
        truncated=truncated,
    )
    return response
