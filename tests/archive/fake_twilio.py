"""A scriptable stand-in for the Bulk Exports day routes and the file host (port 0).

The simulator always serves valid files; this fake serves whatever a test scripts: odd Days
list entries (a path-traversal day string), a 404 day, a refused (expired) URL, a non-JSON
line, a body held half-way until the test lets it go. Faked on the wire, never by patching.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

EXPIRED_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
)


@dataclass
class FileReply:
    """One answer of the file host."""

    status: int = 200
    body: bytes = b""
    # Sent after the first half of the body; the rest waits for it (None: no wait).
    hold: asyncio.Event | None = None


@dataclass
class FakeTwilio:
    base_url: str = ""
    # Raw Days list entries per resource type (any JSON the test likes).
    day_entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # (resource type, day) -> answers, served in order; the last one repeats.
    files: dict[tuple[str, str], list[FileReply]] = field(default_factory=dict)
    # Days whose day resource answers 404 (Twilio no longer has the file).
    gone: set[tuple[str, str]] = field(default_factory=set)
    resolves: int = 0
    file_requests: int = 0
    file_authorization: list[str | None] = field(default_factory=list)
    file_order: list[str] = field(default_factory=list)
    streaming: int = 0
    max_streaming: int = 0

    def add_file(self, resource_type: str, day: dt.date, *replies: FileReply) -> None:
        self.files[(resource_type, day.isoformat())] = list(replies)

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/Exports/{rt}/Days", self._list_days)
        app.router.add_get("/v1/Exports/{rt}/Days/{day}", self._day)
        app.router.add_get("/files/{rt}/{day}", self._file)
        return app

    async def _list_days(self, request: web.Request) -> web.Response:
        entries = self.day_entries.get(request.match_info["rt"], [])
        return web.json_response({"days": entries, "meta": {"next_page_url": None}})

    async def _day(self, request: web.Request) -> web.Response:
        self.resolves += 1
        key = (request.match_info["rt"], request.match_info["day"])
        if key in self.gone or key not in self.files:
            return web.json_response(
                {"code": 20404, "message": "not found", "status": 404}, status=404
            )
        url = f"{self.base_url}/files/{key[0]}/{key[1]}?X-Amz-Signature={self.resolves}"
        return web.json_response({"redirect_to": url}, status=307, headers={"Location": url})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.file_requests += 1
        self.file_authorization.append(request.headers.get("Authorization"))
        self.file_order.append(request.match_info["day"])
        replies = self.files[(request.match_info["rt"], request.match_info["day"])]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.status != 200:
            return web.Response(status=reply.status, text=EXPIRED_XML, content_type="text/xml")
        response = web.StreamResponse()
        response.content_length = len(reply.body)
        await response.prepare(request)
        self.streaming += 1
        self.max_streaming = max(self.max_streaming, self.streaming)
        try:
            half = len(reply.body) // 2
            await response.write(reply.body[:half])
            if reply.hold is not None:
                await reply.hold.wait()
            await response.write(reply.body[half:])
            await response.write_eof()
        finally:
            self.streaming -= 1
        return response


@asynccontextmanager
async def running_fake() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    runner = web.AppRunner(fake.build(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        fake.base_url = f"http://{host}:{port}"
        yield fake
    finally:
        await runner.cleanup()
