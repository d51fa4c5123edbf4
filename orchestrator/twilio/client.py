"""The Bulk Exports API client: HTTP in, domain values out.

One ``aiohttp.ClientSession`` serves the whole process; it carries no auth (aiohttp re-applies a
session-level ``auth=`` on redirects, which would hand the Twilio credentials to the file host).
The ``Authorization`` header is added to each API request only. All API requests share one
requests/second limiter and one concurrency cap; downloads have their own cap and never touch
the limiter (they go to the file host, not to Twilio).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from aiolimiter import AsyncLimiter

from orchestrator.clock import Clock, SystemClock
from orchestrator.domain.model import RemoteDay, RemoteJob, ResourceType, check_job_sid
from orchestrator.errors import (
    AmbiguousCreateError,
    InvalidInput,
    MalformedResponse,
    NotFound,
    ServerError,
    TransportError,
)
from orchestrator.logs import REDACTED, get_logger
from orchestrator.twilio.credentials import Credentials
from orchestrator.twilio.download import Download
from orchestrator.twilio.errors_mapping import (
    download_error_from_response,
    error_from_response,
    parse_retry_after,
)
from orchestrator.twilio.parsing import (
    Page,
    ParseNote,
    decode_json,
    parse_day_redirect,
    parse_days_page,
    parse_job,
    parse_jobs_page,
)
from orchestrator.twilio.retry import RequestNotSent, call_with_retries, is_retryable
from orchestrator.twilio.settings import ClientSettings
from orchestrator.twilio.validation import (
    check_day,
    check_email,
    check_friendly_name,
    check_http_url,
    check_range,
    check_resource_type,
    check_webhook,
    safe_url,
)

T = TypeVar("T")

# Route templates, exactly as the OpenAPI spec names them (also the ``route`` log key).
ROUTE_JOBS = "/v1/Exports/{ResourceType}/Jobs"
ROUTE_JOB = "/v1/Exports/Jobs/{JobSid}"
ROUTE_DAYS = "/v1/Exports/{ResourceType}/Days"
ROUTE_DAY = "/v1/Exports/{ResourceType}/Days/{Day}"
_PATH_PREFIX = "/v1/Exports/"
# At most this much of a file host's error body is read.
_MAX_ERROR_BODY = 64 * 1024
# Distinct parse oddities remembered for log de-duplication (bounded: the daemon runs for months).
_MAX_REMEMBERED_NOTES = 1024

_log = get_logger("orchestrator.twilio")


class DeleteOutcome(enum.StrEnum):
    """What a DELETE of a job achieved."""

    DELETED = "deleted"  # 204: Twilio removed it now
    ALREADY_GONE = "already_gone"  # 404: unknown, expired, or removed by an earlier attempt


class RequestObserver(Protocol):
    """Told of every API request attempt (``orchestrator.metrics.Metrics`` is one).

    ``route`` is a route template (``ROUTE_*``); ``status`` the answer's HTTP status, or
    ``not_sent`` / ``timeout`` / ``transport_error`` when none came; ``reason`` is the retry
    reason of ``retry.is_retryable``. Never a SID, a day or a URL: these become labels.
    """

    def observe_request(self, route: str, status: str, seconds: float) -> None: ...

    def observe_retry(self, route: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    content_type: str | None
    location: str | None


def new_http_session(settings: ClientSettings | None = None) -> aiohttp.ClientSession:
    """The process's one ClientSession: explicit timeouts, no auth, no redirects of auth.

    Call it inside the running event loop; close it with ``await session.close()`` at
    shutdown (or let a client that created it close it).
    """
    settings = settings or ClientSettings()
    return aiohttp.ClientSession(
        # Per-request timeouts are always passed too; these are the safety net.
        timeout=aiohttp.ClientTimeout(
            total=settings.request_timeout,
            connect=settings.connect_timeout,
        ),
        connector=aiohttp.TCPConnector(
            limit=settings.max_concurrent_requests + settings.max_concurrent_downloads,
        ),
        headers={"User-Agent": settings.user_agent},
        raise_for_status=False,
        # No proxies or .netrc from the environment: .netrc would attach credentials.
        trust_env=False,
    )


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    # An error page of the file host can be large; its first bytes say enough.
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(8192):
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def _check_session(session: aiohttp.ClientSession) -> None:
    if session.auth is not None or "Authorization" in session.headers:
        # aiohttp would send it on redirects and to the file host.
        raise InvalidInput("session", "must not carry auth; the client adds it per API request")


class BulkExportsClient:
    """Typed access to the Twilio Bulk Exports v1 API.

    ``session``: the process's ClientSession (see ``new_http_session``); when None the client
    makes one on first use and closes it in ``aclose()``. ``clock`` decides which end days are
    eligible and reads Retry-After dates. ``rand`` and ``monotonic`` feed the retry policy.
    ``gate`` is called right before every request leaves (each attempt, each download) and
    raises to stop it: the daemon's leadership check (``errors.NotLeader``), so a leader that
    can no longer tell it leads sends Twilio nothing more.
    Use as ``async with BulkExportsClient(...) as client:`` or call ``aclose()``.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        session: aiohttp.ClientSession | None = None,
        settings: ClientSettings | None = None,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        observer: RequestObserver | None = None,
        gate: Callable[[], None] | None = None,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise InvalidInput("credentials", "must be a Credentials instance")
        if session is not None:
            _check_session(session)
        self._credentials = credentials
        self._settings = settings or ClientSettings()
        self._clock: Clock = clock or SystemClock()
        self._rand = rand
        self._monotonic = monotonic
        self._session = session
        self._owns_session = session is None
        self._closed = False
        rps = self._settings.requests_per_second
        # aiolimiter needs max_rate >= 1 to let one request through; below 1/s stretch the period.
        self._limiter = AsyncLimiter(rps, 1.0) if rps >= 1 else AsyncLimiter(1, 1.0 / rps)
        self._semaphore = asyncio.Semaphore(self._settings.max_concurrent_requests)
        self._download_semaphore = asyncio.Semaphore(self._settings.max_concurrent_downloads)
        self._api_timeout = aiohttp.ClientTimeout(
            total=self._settings.request_timeout,
            connect=self._settings.connect_timeout,
        )
        self._download_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._settings.connect_timeout,
            sock_read=self._settings.download_read_timeout,
        )
        self._noted: set[tuple[str, str, str]] = set()
        self._observer = observer
        self._gate = gate

    @property
    def settings(self) -> ClientSettings:
        return self._settings

    @property
    def account_sid(self) -> str:
        return self._credentials.account_sid

    def __repr__(self) -> str:
        return f"BulkExportsClient(base_url={self._settings.base_url!r}, {self._credentials!r})"

    async def __aenter__(self) -> BulkExportsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this client made it; a caller's session stays open."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ API operations

    async def create_job(
        self,
        resource_type: ResourceType | str,
        start_day: dt.date | str,
        end_day: dt.date | str,
        friendly_name: str,
        *,
        webhook_url: str | None = None,
        webhook_method: str | None = None,
        email: str | None = None,
    ) -> RemoteJob:
        """POST /v1/Exports/{ResourceType}/Jobs. Everything is validated before sending.

        A 429 or a failed connect is retried (Twilio processed nothing). A timeout, reset, 5xx
        or a malformed 2xx answer raises AmbiguousCreateError: look the job up by
        ``friendly_name`` (``list_jobs``) before creating it again.
        """
        rtype = check_resource_type(resource_type)
        start, end = check_range(start_day, end_day, now=self._clock.now())
        name = check_friendly_name(friendly_name)
        webhook = check_webhook(webhook_url, webhook_method)
        checked_email = check_email(email)
        form = {"StartDay": start.isoformat(), "EndDay": end.isoformat(), "FriendlyName": name}
        if webhook is not None:
            form["WebhookUrl"], form["WebhookMethod"] = webhook
        if checked_email is not None:
            form["Email"] = checked_email
        url = self._url(f"/v1/Exports/{quote(rtype.value)}/Jobs")
        try:
            answer = await self._call(
                "POST", url, ROUTE_JOBS, expect=(200, 201), data=form, idempotent=False
            )
        except RequestNotSent:
            raise
        except (ServerError, TransportError) as exc:
            raise AmbiguousCreateError(name, str(exc)) from exc
        notes: list[ParseNote] = []
        try:
            job = parse_job(decode_json(answer.body, what="job"), resource_type=rtype, notes=notes)
        except MalformedResponse as exc:
            # A 2xx means Twilio made the job; only the answer is unreadable.
            raise AmbiguousCreateError(
                name, f"created, but the answer is malformed: {exc}"
            ) from exc
        self._log_notes(notes)
        return job

    async def fetch_job(self, job_sid: str) -> RemoteJob:
        """GET /v1/Exports/Jobs/{JobSid}. NotFound when Twilio does not (or no longer) know it."""
        sid = check_job_sid(job_sid)
        answer = await self._call("GET", self._url(f"/v1/Exports/Jobs/{sid}"), ROUTE_JOB)
        notes: list[ParseNote] = []
        job = parse_job(decode_json(answer.body, what="job"), notes=notes)
        self._log_notes(notes)
        if job.job_sid != sid:
            raise MalformedResponse(f"asked for job {sid}, got {job.job_sid}")
        return job

    async def list_jobs(self, resource_type: ResourceType | str) -> list[RemoteJob]:
        """GET /v1/Exports/{ResourceType}/Jobs, every page."""
        rtype = check_resource_type(resource_type)
        notes: list[ParseNote] = []

        def parse(data: object) -> Page[RemoteJob]:
            return parse_jobs_page(data, resource_type=rtype, notes=notes)

        jobs = await self._all_pages(f"/v1/Exports/{quote(rtype.value)}/Jobs", ROUTE_JOBS, parse)
        self._log_notes(notes)
        return jobs

    async def probe(self, resource_type: ResourceType | str = ResourceType.MESSAGES) -> int:
        """One cheap authenticated read: the first page, of one job, of the Jobs list
        (``GET /v1/Exports/{ResourceType}/Jobs?PageSize=1``); no further page is fetched.

        For ``check-config --connect``: returns how many jobs that page held (0 or 1); a wrong
        credential raises ``AuthenticationError``, an unreachable API a ``TransportError``.
        """
        rtype = check_resource_type(resource_type)
        url = self._url(f"/v1/Exports/{quote(rtype.value)}/Jobs") + "?PageSize=1"
        answer = await self._call("GET", url, ROUTE_JOBS)
        page = parse_jobs_page(decode_json(answer.body, what=ROUTE_JOBS), resource_type=rtype)
        return len(page.items)

    async def delete_job(self, job_sid: str) -> DeleteOutcome:
        """DELETE /v1/Exports/Jobs/{JobSid}: DELETED on 204, ALREADY_GONE on 404."""
        sid = check_job_sid(job_sid)
        url = self._url(f"/v1/Exports/Jobs/{sid}")
        try:
            await self._call("DELETE", url, ROUTE_JOB, expect=(200, 202, 204))
        except NotFound:
            return DeleteOutcome.ALREADY_GONE
        return DeleteOutcome.DELETED

    async def list_days(self, resource_type: ResourceType | str) -> list[RemoteDay]:
        """GET /v1/Exports/{ResourceType}/Days, every page: the day files Twilio has ready."""
        rtype = check_resource_type(resource_type)

        def parse(data: object) -> Page[RemoteDay]:
            return parse_days_page(data, resource_type=rtype)

        return await self._all_pages(f"/v1/Exports/{quote(rtype.value)}/Days", ROUTE_DAYS, parse)

    async def resolve_day_url(self, resource_type: ResourceType | str, day: dt.date | str) -> str:
        """GET /v1/Exports/{ResourceType}/Days/{Day} without following its 307: the file URL.

        The URL is pre-signed and short-lived; download it soon with ``open_download``.
        """
        rtype = check_resource_type(resource_type)
        checked = check_day(day, field="day")
        url = self._url(f"/v1/Exports/{quote(rtype.value)}/Days/{checked.isoformat()}")
        answer = await self._call("GET", url, ROUTE_DAY, expect=(200, 301, 302, 303, 307, 308))
        return parse_day_redirect(answer.body, answer.location)

    @contextlib.asynccontextmanager
    async def open_download(self, url: str) -> AsyncIterator[Download]:
        """Stream a day file from its pre-signed ``url``; no Twilio credentials are sent.

        Opening (up to the response headers) is retried like a GET; see ``download.py`` for
        the errors. The response is closed when the block exits.
        """
        checked = check_http_url(url, field="url")
        shown = safe_url(checked)
        async with self._download_semaphore:
            response = await call_with_retries(
                lambda: self._open_download_once(checked, shown),
                settings=self._settings,
                idempotent=True,
                log=_log,
                log_fields={"method": "GET", "route": "download", "url": shown},
                monotonic=self._monotonic,
                rand=self._rand,
            )
            download = Download(
                response,
                url=shown,
                chunk_size=self._settings.download_chunk_size,
                read_timeout=self._settings.download_read_timeout,
            )
            _log.debug("twilio.download_opened", url=shown, content_length=download.content_length)
            try:
                yield download
            finally:
                download._close()

    # ------------------------------------------------------------------ plumbing

    def _url(self, path: str) -> str:
        return self._settings.base_url + path

    def _session_in_use(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            self._session = new_http_session(self._settings)
        return self._session

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": self._credentials.authorization_header(),
            "Accept": "application/json",
            "User-Agent": self._settings.user_agent,
        }

    def _scrub(self, text: str) -> str:
        for secret in self._credentials.secret_values():
            text = text.replace(secret, REDACTED)
        return text

    def _retry_after(self, value: str | None) -> float | None:
        return parse_retry_after(value, now=self._clock.now(), real_seconds=self._real_seconds)

    def _real_seconds(self, gap: dt.timedelta) -> float:
        return self._clock.real_seconds(gap)

    async def _call(
        self,
        method: str,
        url: str,
        route: str,
        *,
        expect: Collection[int] = (200,),
        data: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> _Answer:
        """One API call with the retry policy; an unexpected status raises from errors.py."""
        failed: list[BaseException] = []

        async def attempt() -> _Answer:
            if failed and self._observer is not None:
                # Only reached when the retry policy chose to try again after the last failure.
                self._observer.observe_retry(
                    route, is_retryable(failed[-1], idempotent=idempotent)[1]
                )
            try:
                return await self._send_once(method, url, route, expect=expect, data=data)
            except Exception as exc:
                failed.append(exc)
                raise

        return await call_with_retries(
            attempt,
            settings=self._settings,
            idempotent=idempotent,
            log=_log,
            log_fields={"method": method, "route": route},
            monotonic=self._monotonic,
            rand=self._rand,
        )

    async def _send_once(
        self,
        method: str,
        url: str,
        route: str,
        *,
        expect: Collection[int],
        data: Mapping[str, str] | None,
    ) -> _Answer:
        session = self._session_in_use()
        async with self._semaphore:
            # The token is taken last, right before sending, so a wait for a slot does not
            # turn into a burst afterwards.
            await self._limiter.acquire()
            if self._gate is not None:
                self._gate()
            started = self._monotonic()
            try:
                async with session.request(
                    method,
                    url,
                    headers=self._headers(),
                    data=dict(data) if data is not None else None,
                    timeout=self._api_timeout,
                    allow_redirects=False,
                ) as response:
                    body = await response.read()
                    answer = _Answer(
                        status=response.status,
                        body=body,
                        content_type=response.headers.get("Content-Type"),
                        location=response.headers.get("Location"),
                    )
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                self._observe(route, "not_sent", started)
                raise RequestNotSent(
                    f"{method} {route}: could not connect ({type(exc).__name__})"
                ) from exc
            except TimeoutError as exc:
                self._observe(route, "timeout", started)
                raise TransportError(
                    f"{method} {route}: no answer within {self._settings.request_timeout:g} s"
                ) from exc
            except aiohttp.ClientError as exc:
                self._observe(route, "transport_error", started)
                raise TransportError(f"{method} {route}: {type(exc).__name__}") from exc
        self._observe(route, str(answer.status), started)
        _log.debug(
            "twilio.request",
            method=method,
            route=route,
            status=answer.status,
            elapsed=round(self._monotonic() - started, 3),
        )
        if answer.status in expect:
            return answer
        if 300 <= answer.status < 400:
            raise MalformedResponse(f"{method} {route}: unexpected redirect {answer.status}")
        raise error_from_response(
            answer.status,
            answer.body,
            content_type=answer.content_type,
            retry_after=self._retry_after(retry_after),
            scrub=self._scrub,
        )

    def _observe(self, route: str, status: str, started: float) -> None:
        if self._observer is not None:
            self._observer.observe_request(route, status, self._monotonic() - started)

    async def _open_download_once(self, url: str, shown: str) -> aiohttp.ClientResponse:
        session = self._session_in_use()
        if self._gate is not None:
            self._gate()
        try:
            # No Authorization header: the signature in the URL is the credential.
            response = await session.get(
                url,
                headers={"Accept": "*/*", "User-Agent": self._settings.user_agent},
                timeout=self._download_timeout,
                auto_decompress=False,
                allow_redirects=True,
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise RequestNotSent(f"download of {shown}: could not connect") from exc
        except TimeoutError as exc:
            raise TransportError(f"download of {shown}: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"download of {shown}: {type(exc).__name__}") from exc
        if response.status == 200:
            return response
        try:
            body = await _read_capped(response, _MAX_ERROR_BODY)
        except (TimeoutError, aiohttp.ClientError):
            body = b""
        finally:
            response.close()
        raise download_error_from_response(
            response.status,
            body,
            content_type=response.headers.get("Content-Type"),
            retry_after=self._retry_after(response.headers.get("Retry-After")),
        )

    async def _all_pages(
        self, path: str, route: str, parse: Callable[[object], Page[T]]
    ) -> list[T]:
        """Follow ``meta.next_page_url`` to the end; requests always go to our base URL."""
        url = self._url(path)
        if self._settings.page_size is not None:
            url += f"?PageSize={self._settings.page_size}"
        items: list[T] = []
        seen: set[str] = set()
        for _ in range(self._settings.max_pages):
            seen.add(url)
            answer = await self._call("GET", url, route)
            page = parse(decode_json(answer.body, what=route))
            items.extend(page.items)
            if page.next_page_url is None:
                return items
            url = self._next_url(page.next_page_url, route)
            if url in seen:
                raise MalformedResponse(f"GET {route}: next_page_url repeats a page")
        raise MalformedResponse(f"GET {route}: more than {self._settings.max_pages} pages")

    def _next_url(self, next_page_url: str, route: str) -> str:
        # Only the path and query are taken: the credentials go to our base URL, never to a
        # host named in an answer.
        parts = urlsplit(next_page_url)
        if not parts.path.startswith(_PATH_PREFIX):
            raise MalformedResponse(f"GET {route}: next_page_url is not a Bulk Exports path")
        return self._url(parts.path) + (f"?{parts.query}" if parts.query else "")

    def _log_notes(self, notes: list[ParseNote]) -> None:
        for note in notes:
            key = (note.event, note.field, note.value)
            if key in self._noted:
                continue
            if len(self._noted) < _MAX_REMEMBERED_NOTES:
                self._noted.add(key)
            fields: dict[str, Any] = {"field": note.field, "value": note.value}
            if note.job_sid is not None:
                fields["job_sid"] = note.job_sid
            _log.warning(note.event, **fields)
