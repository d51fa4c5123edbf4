"""The client tells its observer of every attempt and retry, on the wire (a scripted server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.errors import TransportError
from orchestrator.metrics import Metrics
from orchestrator.twilio import (
    ROUTE_JOB,
    BulkExportsClient,
    ClientSettings,
    Credentials,
    new_http_session,
)
from tests.contract.fakes import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    JOB_SID,
    NOW,
    FakeServer,
    FixedClock,
    job_json,
    reply,
)


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """stamina's test mode: waits become 0, each test keeps its max_attempts."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    """A scripted server on port 0."""
    server = FakeServer()
    await server.start()
    yield server
    await server.close()


def _values(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_retried_fetch_counts_each_attempt_and_the_retry(fake: FakeServer) -> None:
    """429 then 200: two requests by status under the route template, one rate_limited retry;
    no SID in any label."""
    path = f"/v1/Exports/Jobs/{JOB_SID}"
    fake.on("GET", path, reply(429, {"code": 20429, "message": "Too many"}), reply(200, job_json()))
    metrics = Metrics()
    async with new_http_session() as session:
        client = BulkExportsClient(
            Credentials.from_auth_token(ACCOUNT_SID, AUTH_TOKEN),
            session=session,
            settings=ClientSettings(
                base_url=fake.base_url, max_attempts=3, requests_per_second=1000.0
            ),
            clock=FixedClock(NOW),
            observer=metrics,
        )
        job = await client.fetch_job(JOB_SID)
    assert job.job_sid == JOB_SID
    assert fake.count("GET", path) == 2
    found = _values(metrics)
    route = frozenset({("route", ROUTE_JOB)})
    assert found[("orchestrator_twilio_requests_total", route | {("status", "429")})] == 1
    assert found[("orchestrator_twilio_requests_total", route | {("status", "200")})] == 1
    assert found[("orchestrator_twilio_request_duration_seconds_count", route)] == 2
    assert (
        found[("orchestrator_twilio_retries_total", frozenset({("reason", "rate_limited")}))] == 1
    )
    assert not any(JOB_SID in value for key in found for _, value in key[1])


async def test_a_refused_connection_is_counted_as_not_sent() -> None:
    """Nothing listening: each attempt is counted with status not_sent, the retries too."""
    metrics = Metrics()
    async with new_http_session() as session:
        client = BulkExportsClient(
            Credentials.from_auth_token(ACCOUNT_SID, AUTH_TOKEN),
            session=session,
            # Port 9 (discard) on loopback: refused at once on a test machine.
            settings=ClientSettings(base_url="http://127.0.0.1:9", max_attempts=2),
            clock=FixedClock(NOW),
            observer=metrics,
        )
        with pytest.raises(TransportError):
            await client.fetch_job(JOB_SID)
    found = _values(metrics)
    route = frozenset({("route", ROUTE_JOB)})
    assert found[("orchestrator_twilio_requests_total", route | {("status", "not_sent")})] == 2
    assert found[("orchestrator_twilio_retries_total", frozenset({("reason", "not_sent")}))] == 1


def test_the_leader_gauge_follows_the_role() -> None:
    """orchestrator_leader is 0 until the daemon leads, 1 while it leads, 0 again after."""
    metrics = Metrics()
    leader = ("orchestrator_leader", frozenset())
    assert _values(metrics)[leader] == 0
    metrics.set_leader(True)
    assert _values(metrics)[leader] == 1
    metrics.set_leader(False)
    assert _values(metrics)[leader] == 0
