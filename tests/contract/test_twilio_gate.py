"""The client's gate: a daemon that cannot confirm it leads sends Twilio nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from orchestrator.domain.model import ResourceType
from orchestrator.errors import NotLeader
from orchestrator.twilio import BulkExportsClient, ClientSettings, Credentials
from tests.contract.fakes import JOB_SID, NOW, FakeServer, FixedClock, job_json, reply

JOB = f"/v1/Exports/Jobs/{JOB_SID}"


def _client(
    fake: FakeServer,
    credentials: Credentials,
    session: aiohttp.ClientSession,
    allowed: list[bool],
) -> BulkExportsClient:
    def gate() -> None:
        if not allowed[0]:
            raise NotLeader("not leading")

    return BulkExportsClient(
        credentials,
        session=session,
        settings=ClientSettings(base_url=fake.base_url, max_attempts=3, request_timeout=2.0),
        clock=FixedClock(NOW),
        gate=gate,
    )


async def test_a_closed_gate_stops_every_kind_of_request_before_it_leaves(
    fake: FakeServer, credentials: Credentials, session: aiohttp.ClientSession
) -> None:
    """Create, fetch, delete, list and download all raise NotLeader; the server sees nothing."""
    fake.on("GET", JOB, reply(200, job_json()))
    client = _client(fake, credentials, session, [False])
    day = NOW.date() - dt.timedelta(days=5)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.create_job(ResourceType.MESSAGES, day, day, "orch-x"),
        lambda: client.fetch_job(JOB_SID),
        lambda: client.delete_job(JOB_SID),
        lambda: client.list_jobs(ResourceType.MESSAGES),
    ]
    for call in calls:
        with pytest.raises(NotLeader):
            await call()
    with pytest.raises(NotLeader):
        async with client.open_download(fake.base_url + "/file.json.gz"):
            pass
    assert fake.requests == []


async def test_an_open_gate_lets_requests_through_and_is_asked_at_each_attempt(
    fake: FakeServer, credentials: Credentials, session: aiohttp.ClientSession
) -> None:
    """The gate is asked right before each attempt: closed between retries, no retry leaves."""
    allowed = [True]
    fake.on("GET", JOB, reply(200, job_json()))
    client = _client(fake, credentials, session, allowed)
    assert (await client.fetch_job(JOB_SID)).job_sid == JOB_SID
    assert fake.count("GET", JOB) == 1

    unavailable = reply(503, {"code": 20500, "message": "try again"})

    async def close_then_fail(request: web.Request) -> web.StreamResponse:
        allowed[0] = False
        return await unavailable(request)

    fake.on("GET", JOB, close_then_fail)
    with pytest.raises(NotLeader):
        await client.fetch_job(JOB_SID)
    assert fake.count("GET", JOB) == 2
