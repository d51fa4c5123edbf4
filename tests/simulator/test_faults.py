"""Each injected fault in isolation, the daily quota, and stuck/failed jobs."""

from __future__ import annotations

import datetime as dt
import time

import aiohttp
import pytest

from orchestrator.domain.model import ResourceType
from orchestrator.simulator import FaultKind, FaultSettings
from tests.simulator.conftest import Api, serve

JOBS = "/v1/Exports/Messages/Jobs"
CREATE = {"StartDay": "2024-03-01", "EndDay": "2024-03-02", "FriendlyName": "x"}


async def test_rate_limit_answers_429_with_retry_after(http: aiohttp.ClientSession) -> None:
    """A 429 fault answers Twilio's 20429 body and a Retry-After header, then passes."""
    async with serve(http, faults=FaultSettings(rate_limit_next=1, retry_after_seconds=3)) as api:
        async with api.http.get(api.sim.base_url + JOBS, headers=api.headers) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "3"
            body = await resp.json()
        assert body["code"] == 20429 and body["status"] == 429
        assert (await api.call("GET", JOBS))[0] == 200


async def test_rate_limit_without_retry_after(http: aiohttp.ClientSession) -> None:
    """retry_after_seconds=None sends a 429 with no Retry-After header."""
    faults = FaultSettings(rate_limit_fraction=1.0, retry_after_seconds=None)
    async with serve(http, faults=faults) as api:
        async with api.http.post(api.sim.base_url + JOBS, data=CREATE, headers=api.headers) as r:
            assert r.status == 429
            assert "Retry-After" not in r.headers
        assert api.sim.stats()["jobs_created"] == 0


async def test_server_errors_come_as_json_or_html(http: aiohttp.ClientSession) -> None:
    """5xx faults answer 500 or 503, some with Twilio JSON and some with proxy HTML."""
    async with serve(http, faults=FaultSettings(server_error_fraction=1.0)) as api:
        seen: set[tuple[int, str]] = set()
        for _ in range(20):
            async with api.http.get(api.sim.base_url + JOBS, headers=api.headers) as resp:
                seen.add((resp.status, resp.content_type))
        assert {s for s, _ in seen} == {500, 503}
        assert {c for _, c in seen} == {"application/json", "text/html"}


async def test_slow_answer_is_delayed_after_processing(http: aiohttp.ClientSession) -> None:
    """A slow fault delays the answer by real seconds; the create still happens."""
    async with serve(http, faults=FaultSettings(slow_next=1, slow_seconds=0.2)) as api:
        began = time.monotonic()
        await api.create("2024-03-01", "2024-03-01")
        assert time.monotonic() - began >= 0.2
        assert api.sim.faults.fired[FaultKind.SLOW] == 1


async def test_dropped_connection_before_processing(http: aiohttp.ClientSession) -> None:
    """A drop closes the connection with no answer and creates nothing."""
    async with serve(http, faults=FaultSettings(drop_next=1)) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.call("POST", JOBS, data=CREATE)
        stats = api.sim.stats()
        assert stats["jobs_created"] == 0
        assert stats["requests"]["POST /v1/Exports/{ResourceType}/Jobs"] == {"dropped": 1}


async def test_dropped_connection_after_processing_created_the_job(
    http: aiohttp.ClientSession,
) -> None:
    """A drop after processing leaves the client without an answer but the job exists."""
    async with serve(http, faults=FaultSettings(drop_after_next=1)) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.call("POST", JOBS, data=CREATE)
        _, listed = await api.call("GET", JOBS)
        assert [j["friendly_name"] for j in listed["jobs"]] == ["x"]


async def test_malformed_json_body(http: aiohttp.ClientSession) -> None:
    """A malformed-JSON fault cuts a 2xx JSON body so it no longer parses."""
    async with serve(http, faults=FaultSettings(malformed_json_next=1)) as api:
        async with api.http.get(api.sim.base_url + JOBS, headers=api.headers) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            with pytest.raises(ValueError):
                await resp.json()
        assert (await api.call("GET", JOBS))[0] == 200


async def test_truncated_file_fault(http: aiohttp.ClientSession) -> None:
    """A truncated-file fault serves fewer bytes than Day.size: a broken gzip."""
    async with serve(http, faults=FaultSettings(truncated_file_next=1)) as api:
        await api.create("2024-03-01", "2024-03-01")
        api.advance(3600)
        _, body = await api.call(
            "GET", "/v1/Exports/Messages/Days/2024-03-01", allow_redirects=False
        )
        async with api.http.get(body["redirect_to"]) as resp:
            data = await resp.read()
        _, listed = await api.call("GET", "/v1/Exports/Messages/Days")
        assert len(data) < listed["days"][0]["size"]
        async with api.http.get(body["redirect_to"]) as resp:
            assert len(await resp.read()) == listed["days"][0]["size"]


async def test_http_faults_can_target_one_route(http: aiohttp.ClientSession) -> None:
    """http_fault_routes limits HTTP faults to the named route templates."""
    faults = FaultSettings(
        rate_limit_fraction=1.0,
        http_fault_routes=frozenset({"POST /v1/Exports/{ResourceType}/Jobs"}),
    )
    async with serve(http, faults=faults) as api:
        assert (await api.call("GET", JOBS))[0] == 200
        assert (await api.call("POST", JOBS, data=CREATE))[0] == 429


async def test_faults_injected_at_runtime(api: Api) -> None:
    """POST /_simulator/faults queues faults for the next requests."""
    status, pending = await api.call(
        "POST", "/_simulator/faults", json={"rate_limit": 2}, headers={}
    )
    assert status == 200 and pending["rate_limit"] == 2
    assert [(await api.call("GET", JOBS))[0] for _ in range(3)] == [429, 429, 200]
    status, _ = await api.call("POST", "/_simulator/faults", json={"nope": 1}, headers={})
    assert status == 400


async def test_daily_quota_rejects_with_a_clear_400(http: aiohttp.ClientSession) -> None:
    """Creates past N requested days per UTC day answer 400 naming the limit; it resets."""
    async with serve(http, faults=FaultSettings(daily_day_quota=10)) as api:
        await api.create("2024-03-01", "2024-03-07")
        status, body = await api.call(
            "POST", JOBS, data={**CREATE, "StartDay": "2024-02-01", "EndDay": "2024-02-04"}
        )
        assert status == 400
        assert body["code"] == 20400
        assert "at most 10 days" in body["message"]
        await api.create("2024-02-01", "2024-02-03")
        api.advance(dt.timedelta(hours=12).total_seconds())
        await api.create("2024-02-01", "2024-02-04")


async def test_stuck_first_jobs_never_progress(http: aiohttp.ClientSession) -> None:
    """The first N jobs stay Submitted forever without blocking later jobs."""
    async with serve(http, faults=FaultSettings(stuck_first_jobs=1), max_running_jobs=1) as api:
        stuck = (await api.create("2024-03-01", "2024-03-01", "a"))["job_sid"]
        fine = (await api.create("2024-03-02", "2024-03-02", "b"))["job_sid"]
        api.advance(dt.timedelta(days=2).total_seconds())
        assert await api.statuses(stuck) == {"2024-03-01": "Submitted"}
        assert await api.statuses(fine) == {"2024-03-02": "Completed"}
        _, body = await api.job(stuck)
        assert body["estimated_completion_time"] is None
        assert body["job_queue_position"] == "1"
        assert api.sim.stats()["jobs"][0]["stuck"] is True


async def test_stuck_fraction_one_stalls_every_job(http: aiohttp.ClientSession) -> None:
    """stuck_job_fraction=1.0 makes every job stall."""
    async with serve(http, faults=FaultSettings(stuck_job_fraction=1.0)) as api:
        sid = (await api.create("2024-03-01", "2024-03-01"))["job_sid"]
        api.advance(86400)
        assert await api.statuses(sid) == {"2024-03-01": "Submitted"}


async def test_failed_day_fraction_fails_days_after_retries(http: aiohttp.ClientSession) -> None:
    """failed_day_fraction=1.0: each day shows ErrorDuringRun while retried, then Failed."""
    faults = FaultSettings(failed_day_fraction=1.0)
    async with serve(http, faults=faults, max_day_attempts=2) as api:
        sid = (await api.create("2024-03-01", "2024-03-01"))["job_sid"]
        api.advance(20)  # start-up 10 s + first attempt 10 s
        assert await api.statuses(sid) == {"2024-03-01": "ErrorDuringRun"}
        api.advance(3600)
        assert await api.statuses(sid) == {"2024-03-01": "Failed"}
        _, days = await api.call("GET", "/v1/Exports/Messages/Days")
        assert days["days"] == []


async def test_error_during_run_day_then_completes(http: aiohttp.ClientSession) -> None:
    """An error_during_run day shows ErrorDuringRun once, then completes."""
    day = (ResourceType.MESSAGES, dt.date(2024, 3, 1))
    async with serve(http, faults=FaultSettings(error_during_run_days=frozenset({day}))) as api:
        sid = (await api.create("2024-03-01", "2024-03-02"))["job_sid"]
        api.advance(20)
        assert (await api.statuses(sid))["2024-03-01"] == "ErrorDuringRun"
        api.advance(3600)
        assert await api.statuses(sid) == dict.fromkeys(["2024-03-01", "2024-03-02"], "Completed")


async def test_fail_first_attempt_days_fail_once_then_succeed(
    http: aiohttp.ClientSession,
) -> None:
    """A listed day fails in the first job covering it and completes when resubmitted."""
    day = (ResourceType.MESSAGES, dt.date(2024, 3, 2))
    faults = FaultSettings(fail_first_attempt_days=frozenset({day}))
    async with serve(http, faults=faults) as api:
        first = (await api.create("2024-03-01", "2024-03-03"))["job_sid"]
        api.advance(3600)
        assert await api.statuses(first) == {
            "2024-03-01": "Completed",
            "2024-03-02": "Failed",
            "2024-03-03": "Completed",
        }
        again = (await api.create("2024-03-02", "2024-03-02"))["job_sid"]
        api.advance(3600)
        assert await api.statuses(again) == {"2024-03-02": "Completed"}


async def test_always_fail_days_fail_every_time(http: aiohttp.ClientSession) -> None:
    """A day in always_fail_days is Failed in every job."""
    day = (ResourceType.CALLS, dt.date(2024, 3, 1))
    async with serve(http, faults=FaultSettings(always_fail_days=frozenset({day}))) as api:
        for _ in range(2):
            sid = (await api.create("2024-03-01", "2024-03-01", resource="Calls"))["job_sid"]
            api.advance(3600)
            assert await api.statuses(sid) == {"2024-03-01": "Failed"}


def test_fault_settings_validate() -> None:
    """Out-of-range fractions and negative counters are refused."""
    with pytest.raises(ValueError, match="rate_limit_fraction"):
        FaultSettings(rate_limit_fraction=1.5)
    with pytest.raises(ValueError, match="drop_next"):
        FaultSettings(drop_next=-1)
