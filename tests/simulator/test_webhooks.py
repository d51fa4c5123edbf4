"""Completion webhooks: called once per finished job, signed like Twilio signs them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from orchestrator.clock import ScaledClock
from orchestrator.simulator.webhooks import signature
from tests.simulator.conftest import serve


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[str, list[tuple[str, str, dict[str, str], str]]]]:
    """A tiny HTTP server on port 0 that records what it receives."""
    seen: list[tuple[str, str, dict[str, str], str]] = []

    async def hook(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        seen.append((request.method, str(request.url), form, request.headers["X-Twilio-Signature"]))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", seen
    finally:
        await runner.cleanup()


async def _wait_for(seen: Sequence[object], count: int) -> None:
    for _ in range(200):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.01)


async def test_post_webhook_is_called_once_and_signed(http: aiohttp.ClientSession) -> None:
    """A finished job's POST webhook carries its SID and a valid X-Twilio-Signature."""
    async with receiver() as (url, seen), serve(http) as api:
        body = await api.create("2024-03-01", "2024-03-01", WebhookUrl=url, WebhookMethod="POST")
        await api.create("2024-03-01", "2024-03-01", "no-hook")
        api.advance(3600)
        await api.call("GET", "/v1/Exports/Messages/Jobs")
        await _wait_for(seen, 1)
        await api.call("GET", "/v1/Exports/Messages/Jobs")
        await asyncio.sleep(0.05)
        assert len(seen) == 1
        method, called, form, signed = seen[0]
        assert method == "POST" and called == url
        assert form["JobSid"] == body["job_sid"]
        assert form["Status"] == "Completed"
        assert signed == signature(api.sim.settings.auth_token, url, form)
        assert api.sim.stats()["webhooks"][0]["status"] == 200


async def test_get_webhook_signs_the_full_url(http: aiohttp.ClientSession) -> None:
    """A GET webhook sends its parameters in the query and signs the full URL."""
    async with receiver() as (url, seen), serve(http) as api:
        await api.create("2024-03-01", "2024-03-01", WebhookUrl=url, WebhookMethod="GET")
        api.advance(3600)
        await api.call("GET", "/v1/Exports/Messages/Jobs")
        await _wait_for(seen, 1)
        method, called, form, signed = seen[0]
        assert method == "GET" and form == {}
        assert "JobSid=JS" in called
        assert signed == signature(api.sim.settings.auth_token, called, {})


async def test_scaled_clock_progresses_and_calls_webhooks_unpolled(
    http: aiohttp.ClientSession,
) -> None:
    """On a ScaledClock jobs finish in real time and webhooks fire without any polling."""
    async with receiver() as (url, seen), serve(http, clock=ScaledClock(speed=2000)) as api:
        await api.create("2024-03-01", "2024-03-02", WebhookUrl=url, WebhookMethod="POST")
        await _wait_for(seen, 1)
        assert len(seen) == 1
        assert api.sim.stats()["requests"] == {"POST /v1/Exports/{ResourceType}/Jobs": {"201": 1}}
