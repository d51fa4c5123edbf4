"""What wraps every request: recording, Twilio's basic auth, and injected HTTP faults."""

from __future__ import annotations

import asyncio
import base64
import hmac
import uuid

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from orchestrator.logs import get_logger
from orchestrator.simulator import keys
from orchestrator.simulator.background import settle
from orchestrator.simulator.faults import FaultKind
from orchestrator.simulator.recorder import RecordedRequest
from orchestrator.simulator.routes import error_response

log = get_logger(__name__)

API_PREFIX = "/v1/"
REQUEST_ID_HEADER = "Twilio-Request-Id"
INSPECTION_PREFIX = "/_simulator"
_FORM_TYPE = "application/x-www-form-urlencoded"
_PROXY_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def route_template(request: web.Request) -> str:
    """The route as registered (e.g. /v1/Exports/Jobs/{JobSid}); the raw path when unmatched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _drop(request: web.Request) -> web.Response:
    # Closing the transport leaves the client with a connection closed before any answer.
    request[keys.DROPPED] = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


def new_request_id() -> str:
    """A Twilio request id: RQ and 32 lower-case hex digits."""
    return "RQ" + uuid.uuid4().hex


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Give every /v1 answer, errors and injected faults included, a Twilio-Request-Id.

    Runs on ``on_response_prepare``, so it also reaches answers aiohttp builds from raised
    HTTP exceptions. Day files (the S3 stand-in) and the inspection routes get none, as S3 and
    a test helper would not send one.
    """
    if request.path.startswith(API_PREFIX) and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = new_request_id()


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log every request outside the inspection routes with what it got back."""
    if request.path.startswith(INSPECTION_PREFIX):
        return await handler(request)
    form: tuple[tuple[str, str], ...] = ()
    if request.method == "POST" and request.content_type == _FORM_TYPE:
        posted = await request.post()
        form = tuple((name, str(value)) for name, value in posted.items())
    status: int | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        engine = request.app[keys.ENGINE]
        request.app[keys.RECORDER].record(
            RecordedRequest(
                method=request.method,
                path=request.path,
                route=route_template(request),
                query=tuple((k, v) for k, v in request.query.items()),
                form=form,
                content_type=request.headers.get(hdrs.CONTENT_TYPE, ""),
                status=None if request.get(keys.DROPPED) else status,
                authorization=hdrs.AUTHORIZATION in request.headers,
                fault=request.get(keys.FAULT),
                at=engine.settings.clock.now().isoformat(),
            )
        )


def _authorized(request: web.Request) -> bool:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return False
    credentials = _decode_basic(header)
    if credentials is None:
        return False
    login, password = credentials
    expected = request.app[keys.SETTINGS].credentials().get(login)
    return expected is not None and hmac.compare_digest(expected.encode(), password.encode())


def _decode_basic(header: str) -> tuple[str, str] | None:
    # Decoded by hand: aiohttp 3.14 deprecates BasicAuth, and its warning would fail the tests.
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


@web.middleware
async def require_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Twilio's basic auth on /v1: Account SID + Auth Token, or API key SID + secret."""
    if request.path.startswith(API_PREFIX) and not _authorized(request):
        response = error_response(401, 20003, "Authenticate")
        response.headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="Twilio API"'
        return response
    return await handler(request)


def _rate_limited(request: web.Request) -> web.Response:
    response = error_response(429, 20429, "Too many requests")
    after = request.app[keys.FAULTS].settings.retry_after_seconds
    if after is not None:
        response.headers[hdrs.RETRY_AFTER] = str(int(after)) if after == int(after) else str(after)
    return response


def _server_error(request: web.Request) -> web.Response:
    faults = request.app[keys.FAULTS]
    status = faults.server_error_status()
    reason = "Service Unavailable" if status == 503 else "Internal Server Error"
    if faults.html_server_error():
        body = _PROXY_HTML.format(status=status, reason=reason)
        return web.Response(status=status, text=body, content_type="text/html")
    return error_response(status, 20500, "An internal server error has occurred")


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer /v1 requests with the faults the settings ask for, before or after processing."""
    faults = request.app[keys.FAULTS]
    route = f"{request.method} {route_template(request)}"
    if not request.path.startswith(API_PREFIX) or not faults.applies_to(route):
        return await handler(request)
    for kind in (FaultKind.DROP, FaultKind.RATE_LIMIT, FaultKind.SERVER_ERROR):
        if faults.fires(kind):
            request[keys.FAULT] = kind.value
            log.info("simulator.fault_injected", fault=kind.value, route=route)
            if kind is FaultKind.DROP:
                return _drop(request)
            if kind is FaultKind.RATE_LIMIT:
                return _rate_limited(request)
            return _server_error(request)
    response = await handler(request)
    if faults.fires(FaultKind.SLOW):
        request[keys.FAULT] = FaultKind.SLOW.value
        log.info("simulator.fault_injected", fault="slow", route=route)
        await asyncio.sleep(faults.settings.slow_seconds)
    if faults.fires(FaultKind.DROP_AFTER):
        request[keys.FAULT] = FaultKind.DROP_AFTER.value
        log.info("simulator.fault_injected", fault="drop_after", route=route)
        return _drop(request)
    if (
        isinstance(response, web.Response)
        and response.content_type == "application/json"
        and 200 <= response.status < 300
        and response.body is not None
        and faults.fires(FaultKind.MALFORMED_JSON)
    ):
        request[keys.FAULT] = FaultKind.MALFORMED_JSON.value
        log.info("simulator.fault_injected", fault="malformed_json", route=route)
        text = response.text or ""
        return web.Response(
            status=response.status,
            headers={k: v for k, v in response.headers.items() if k != hdrs.CONTENT_LENGTH},
            text=text[: max(1, len(text) // 2)],
        )
    return response


@web.middleware
async def twilio_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown /v1 paths and methods answer Twilio's JSON, not aiohttp's text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if not request.path.startswith(API_PREFIX):
            raise
        return error_response(404, 20404, f"The requested resource {request.path} was not found")
    except web.HTTPMethodNotAllowed:
        if not request.path.startswith(API_PREFIX):
            raise
        return error_response(405, 20004, "Method not allowed")


@web.middleware
async def settle_after_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After each request, size new large files and call webhooks of finished jobs."""
    try:
        return await handler(request)
    finally:
        settle(request.app)
