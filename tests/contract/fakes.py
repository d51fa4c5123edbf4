"""A tiny scripted HTTP server on 127.0.0.1 port 0 that records every request it gets.

Tests script answers per route (``server.on(...)``) and then look at ``server.requests``:
what went over the wire, not what a patched method was called with.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "authtoken-5e5e5e5e5e5e5e5e"
API_KEY_SID = "SK" + "fedcba9876543210" * 2
API_KEY_SECRET = "apisecret-7a7a7a7a7a7a7a7a"
SECRETS = (AUTH_TOKEN, API_KEY_SECRET)
JOB_SID = "JS" + "0123456789abcdef" * 2
OTHER_JOB_SID = "JS" + "abcdef0123456789" * 2


class FixedClock:
    """A clock standing still at ``now`` whose simulated seconds are real seconds."""

    def __init__(self, now: dt.datetime) -> None:
        self._now = now

    def now(self) -> dt.datetime:
        return self._now

    def real_seconds(self, simulated: dt.timedelta) -> float:
        return max(0.0, simulated.total_seconds())


NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    content_type: str
    headers: dict[str, str]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


@dataclass
class FakeServer:
    """Routes -> scripted handlers; every request is recorded before it is answered."""

    requests: list[Recorded] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _scripts: dict[tuple[str, str], list[Handler]] = field(default_factory=dict)
    _server: TestServer | None = None

    def on(self, method: str, path: str, *handlers: Handler) -> None:
        """Answer ``method path`` with ``handlers`` in turn; the last one repeats."""
        self._scripts[(method, path)] = list(handlers)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        )

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                form=form,
                content_type=request.headers.get("Content-Type", ""),
                headers=dict(request.headers),
            )
        )
        script = self._scripts.get((request.method, request.path))
        if not script:
            return web.json_response({"code": 20404, "message": "not scripted"}, status=404)
        handler = script.pop(0) if len(script) > 1 else script[0]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1


def reply(
    status: int = 200,
    body: Any = None,
    *,
    text: str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> Handler:
    """A handler answering ``status`` with a JSON ``body`` (or raw ``text``)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        payload = text if text is not None else ("" if body is None else json.dumps(body))
        return web.Response(
            status=status,
            text=payload,
            content_type=content_type if payload else None,
            headers=headers,
        )

    return handler


def drop() -> Handler:
    """A handler that closes the connection without answering (a reset mid-request)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        # Never answered: the client sees the connection die.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return handler


def hang() -> Handler:
    """A handler that never answers (the client's timeout must fire)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return handler


def job_json(job_sid: str = JOB_SID, **overrides: Any) -> dict[str, Any]:
    """A job as Twilio answers it."""
    job: dict[str, Any] = {
        "job_sid": job_sid,
        "friendly_name": "orch-Messages-20240101-20240102-a1",
        "resource_type": "Messages",
        "start_day": "2024-01-01",
        "end_day": "2024-01-02",
        "details": [],
        "webhook_url": None,
        "webhook_method": None,
        "email": None,
        "job_queue_position": "1",
        "estimated_completion_time": "2024-03-10 13:00:00",
        "url": f"https://bulkexports.twilio.com/v1/Exports/Jobs/{job_sid}",
    }
    job.update(overrides)
    return job


def jobs_page(*jobs: dict[str, Any]) -> Handler:
    """A handler answering a Jobs list of ``jobs`` in one page (none: an empty list)."""
    return reply(200, {"jobs": list(jobs), "meta": {"next_page_url": None, "page_size": 50}})


def created(job_sid: str, status: int = 201) -> Handler:
    """A handler answering a create with a job of ``job_sid`` named and ranged as requested."""

    async def handler(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        body = job_json(
            job_sid,
            friendly_name=str(form["FriendlyName"]),
            resource_type=request.path.split("/")[3],
            start_day=str(form["StartDay"]),
            end_day=str(form["EndDay"]),
        )
        return web.json_response(body, status=status)

    return handler
