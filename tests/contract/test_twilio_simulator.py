"""The client against the simulator: spec-exact requests, a whole job lifecycle, faults.

The expected routes, parameter names and content types below are copied from Twilio's
Bulk Exports v1 OpenAPI spec (hardcoded on purpose: the tests must not read the spec file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from orchestrator.clock import ManualClock
from orchestrator.domain.model import DayStatus, ResourceType
from orchestrator.errors import (
    AmbiguousCreateError,
    AuthenticationError,
    DownloadExpired,
    MalformedResponse,
    NotFound,
)
from orchestrator.simulator import (
    FaultSettings,
    RunningSimulator,
    SimulatorSettings,
    running_simulator,
)
from orchestrator.twilio import BulkExportsClient, ClientSettings, Credentials, DeleteOutcome

START = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "sim-auth-token-0000"
API_KEY_SID = "SK" + "d" * 32
API_KEY_SECRET = "sim-api-key-secret-1111"
D1, D2, D3 = dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)

FORM = "application/x-www-form-urlencoded"
LIST_QUERY = frozenset({"PageSize", "Page", "PageToken"})
# (method, route template) -> (allowed query names, required form names, optional form names)
SPEC: dict[tuple[str, str], tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    ("POST", "/v1/Exports/{ResourceType}/Jobs"): (
        frozenset(),
        frozenset({"StartDay", "EndDay", "FriendlyName"}),
        frozenset({"WebhookUrl", "WebhookMethod", "Email"}),
    ),
    ("GET", "/v1/Exports/{ResourceType}/Jobs"): (LIST_QUERY, frozenset(), frozenset()),
    ("GET", "/v1/Exports/Jobs/{JobSid}"): (frozenset(), frozenset(), frozenset()),
    ("DELETE", "/v1/Exports/Jobs/{JobSid}"): (frozenset(), frozenset(), frozenset()),
    ("GET", "/v1/Exports/{ResourceType}/Days"): (LIST_QUERY, frozenset(), frozenset()),
    ("GET", "/v1/Exports/{ResourceType}/Days/{Day}"): (frozenset(), frozenset(), frozenset()),
}
FILE_ROUTE = "/_files/{ResourceType}/{Day}"


def sim_settings(clock: ManualClock, **overrides: Any) -> SimulatorSettings:
    """Predictable timings (10 s per job start and per day) with every rendering quirk on."""
    base = SimulatorSettings(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        api_keys={API_KEY_SID: API_KEY_SECRET},
        seed=1,
        clock=clock,
        job_base_seconds=10,
        day_seconds=(10, 10),
        retry_delay_seconds=30,
        eta_noise=0.0,
        string_queue_position_fraction=1.0,
        upper_case_status_fraction=1.0,
        empty_details_on_create_fraction=1.0,
        empty_day_fraction=0.0,
        records_per_day=(3, 8),
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with running_simulator(sim_settings(clock)) as running:
        yield running


def client_for(
    sim: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    *,
    creds: Credentials | None = None,
    **overrides: Any,
) -> BulkExportsClient:
    fields: dict[str, Any] = {"base_url": sim.base_url, "max_attempts": 3, "request_timeout": 2.0}
    fields.update(overrides)
    return BulkExportsClient(
        creds or Credentials.from_auth_token(ACCOUNT_SID, AUTH_TOKEN),
        session=session,
        settings=ClientSettings(**fields),
        clock=clock,
    )


async def recorded(sim: RunningSimulator, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    """The simulator's request log, read over HTTP from its inspection endpoint."""
    async with session.get(f"{sim.base_url}/_simulator/stats") as response:
        stats = await response.json()
    log: list[dict[str, Any]] = stats["request_log"]
    return log


def assert_spec_conformant(log: list[dict[str, Any]]) -> None:
    """Every API request used a spec route, its parameter names, content type and auth."""
    assert log
    for entry in log:
        if entry["route"] == FILE_ROUTE:
            assert entry["authorization"] is False, entry
            continue
        key = (entry["method"], entry["route"])
        assert key in SPEC, entry
        query_names, required, optional = SPEC[key]
        assert set(entry["query"]) <= query_names, entry
        assert entry["authorization"] is True, entry
        if entry["method"] == "POST":
            assert entry["content_type"].startswith(FORM), entry
            assert required <= set(entry["form"]) <= required | optional, entry
        else:
            assert entry["form"] == {}, entry


async def test_full_lifecycle_on_the_simulator(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Create, poll to completion, list, resolve, download without auth, delete: all per spec."""
    client = client_for(sim, session, clock)
    created = await client.create_job(
        ResourceType.MESSAGES,
        D1,
        D3,
        "orch-Messages-20240301-20240303-a1",
        webhook_url="https://hooks.example.com/x",
        webhook_method="POST",
        email="ops@example.com",
    )
    assert created.details == ()  # the simulator answers this create with empty details
    assert created.friendly_name == "orch-Messages-20240301-20240303-a1"

    seen: list[dict[dt.date, DayStatus]] = []
    for _ in range(20):
        job = await client.fetch_job(created.job_sid)
        statuses = job.day_statuses()
        seen.append(statuses)
        if statuses and all(s is DayStatus.COMPLETED for s in statuses.values()):
            break
        clock.advance(dt.timedelta(seconds=10))
    assert seen[-1] == dict.fromkeys((D1, D2, D3), DayStatus.COMPLETED)
    # Upper-case statuses were parsed; Running was observed on the way.
    assert any(DayStatus.RUNNING in s.values() for s in seen)
    assert all(g.raw_status.isupper() for g in job.details)

    [listed] = await client.list_jobs(ResourceType.MESSAGES)
    assert listed.job_sid == created.job_sid
    days = await client.list_days(ResourceType.MESSAGES)
    assert [d.day for d in days] == [D1, D2, D3]

    for remote_day in days:
        url = await client.resolve_day_url(ResourceType.MESSAGES, remote_day.day)
        async with client.open_download(url) as download:
            body = b"".join([chunk async for chunk in download.chunks()])
        assert download.complete
        assert len(body) == remote_day.size == download.content_length
        lines = gzip.decompress(body).splitlines()
        assert lines and all(json.loads(line) for line in lines)

    assert await client.delete_job(created.job_sid) is DeleteOutcome.DELETED
    clock.advance(dt.timedelta(minutes=5))
    assert await client.delete_job(created.job_sid) is DeleteOutcome.ALREADY_GONE
    with pytest.raises(NotFound):
        await client.fetch_job(created.job_sid)

    log = await recorded(sim, session)
    assert_spec_conformant(log)
    routes = {(e["method"], e["route"]) for e in log}
    assert routes == set(SPEC) | {("GET", FILE_ROUTE)}
    [create] = [e for e in log if e["method"] == "POST"]
    assert create["form"] == {
        "StartDay": "2024-03-01",
        "EndDay": "2024-03-03",
        "FriendlyName": "orch-Messages-20240301-20240303-a1",
        "WebhookUrl": "https://hooks.example.com/x",
        "WebhookMethod": "POST",
        "Email": "ops@example.com",
    }


async def test_list_paging_on_the_simulator(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Five jobs with PageSize=2 come back whole over three pages."""
    client = client_for(sim, session, clock, page_size=2)
    sids = {(await client.create_job("Calls", D1, D1, f"orch-Calls-{n}")).job_sid for n in range(5)}
    jobs = await client.list_jobs("Calls")
    assert {j.job_sid for j in jobs} == sids
    assert len(jobs) == 5
    log = await recorded(sim, session)
    pages = [e for e in log if e["method"] == "GET" and e["route"].endswith("/Jobs")]
    assert len(pages) == 3
    assert all(e["query"].get("PageSize") == "2" for e in pages)
    assert_spec_conformant(log)


async def test_api_key_and_bad_credentials(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """An API key authenticates; a wrong token is AuthenticationError after one request."""
    key = Credentials.from_api_key(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET)
    assert await client_for(sim, session, clock, creds=key).list_jobs("Messages") == []
    wrong = Credentials.from_auth_token(ACCOUNT_SID, "not-the-token-xyz")
    with pytest.raises(AuthenticationError) as caught:
        await client_for(sim, session, clock, creds=wrong).list_jobs("Messages")
    assert caught.value.code == 20003
    assert "not-the-token-xyz" not in repr(caught.value)
    assert sum(1 for e in await recorded(sim, session) if e["status"] == 401) == 1


async def test_lost_create_answer_is_ambiguous_and_job_is_findable(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A create whose answer is lost raises AmbiguousCreateError; the job is found by name."""
    client = client_for(sim, session, clock)
    sim.inject("drop_after")
    with pytest.raises(AmbiguousCreateError) as caught:
        await client.create_job("Messages", D1, D2, "orch-Messages-lost-a1")
    assert caught.value.friendly_name == "orch-Messages-lost-a1"
    found = [
        j
        for j in await client.list_jobs("Messages")
        if j.friendly_name == caught.value.friendly_name
    ]
    assert len(found) == 1
    assert sim.stats()["jobs_created"] == 1


async def test_rate_limited_create_is_retried_once_created(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Two 429s on create are retried; exactly one job exists."""
    client = client_for(sim, session, clock, max_attempts=3)
    sim.inject("rate_limit", 2)
    await client.create_job("Messages", D1, D2, "orch-Messages-429-a1")
    assert sim.stats()["jobs_created"] == 1
    statuses = [e["status"] for e in await recorded(sim, session) if e["method"] == "POST"]
    assert statuses == [429, 429, 201]


async def test_server_errors_and_drops_on_reads_are_retried(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A 5xx (JSON or HTML) and a dropped connection on GET are retried to success."""
    client = client_for(sim, session, clock, max_attempts=4)
    job = await client.create_job("Messages", D1, D1, "orch-Messages-r-a1")
    sim.inject("server_error", 2)
    sim.inject("drop", 1)
    assert (await client.fetch_job(job.job_sid)).job_sid == job.job_sid
    fetches = [e["status"] for e in await recorded(sim, session) if e["route"].endswith("{JobSid}")]
    assert fetches[-1] == 200
    assert len(fetches) == 4


async def test_truncated_json_is_malformed(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A 200 whose JSON is cut short raises MalformedResponse (and is not retried)."""
    client = client_for(sim, session, clock)
    job = await client.create_job("Messages", D1, D1, "orch-Messages-m-a1")
    sim.inject("malformed_json")
    with pytest.raises(MalformedResponse):
        await client.fetch_job(job.job_sid)


async def test_expired_download_url(
    sim: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A pre-signed URL used after it expired raises DownloadExpired; a fresh one works."""
    client = client_for(sim, session, clock)
    job = await client.create_job("Messages", D1, D1, "orch-Messages-e-a1")
    for _ in range(10):
        clock.advance(dt.timedelta(seconds=10))
        if (await client.fetch_job(job.job_sid)).day_statuses().get(D1) is DayStatus.COMPLETED:
            break
    url = await client.resolve_day_url("Messages", D1)
    clock.advance(dt.timedelta(hours=2))
    with pytest.raises(DownloadExpired) as caught:
        async with client.open_download(url):
            pass
    assert caught.value.status == 403
    assert "expired" in caught.value.message
    fresh = await client.resolve_day_url("Messages", D1)
    async with client.open_download(fresh) as download:
        assert len(b"".join([c async for c in download.chunks()])) == download.content_length
    assert_spec_conformant(await recorded(sim, session))


async def test_simulator_with_default_faults_is_spec_conformant(
    clock: ManualClock, session: aiohttp.ClientSession
) -> None:
    """Under seeded random faults every request the client sends still matches the spec."""
    faults = FaultSettings(rate_limit_fraction=0.2, server_error_fraction=0.1, drop_fraction=0.05)
    async with running_simulator(sim_settings(clock, faults=faults, seed=7)) as sim:
        client = client_for(sim, session, clock, max_attempts=8)
        for n in range(3):
            # A fault may make a create ambiguous; the wire format is what is checked here.
            with contextlib.suppress(AmbiguousCreateError):
                await client.create_job("Conferences", D1, D2, f"orch-Conferences-{n}")
        for job in await client.list_jobs("Conferences"):
            await client.fetch_job(job.job_sid)
        await client.list_days("Conferences")
        assert_spec_conformant(await recorded(sim, session))
