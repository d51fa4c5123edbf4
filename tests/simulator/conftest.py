"""Shared set-up for the simulator's own tests: a ManualClock, settings and a small HTTP helper."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from orchestrator.clock import ManualClock
from orchestrator.simulator import RunningSimulator, SimulatorSettings, running_simulator

START = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
API_KEY_SID = "SK" + "1" * 32
API_KEY_SECRET = "key-secret-for-tests"


def make_settings(clock: ManualClock | None = None, **overrides: Any) -> SimulatorSettings:
    """Predictable timings: 10 s start-up per job, 10 s per day, no noise, no empty days."""
    base = SimulatorSettings(
        account_sid="AC" + "a" * 32,
        auth_token="auth-token-for-tests",
        api_keys={API_KEY_SID: API_KEY_SECRET},
        seed=1,
        clock=clock or ManualClock(START),
        max_running_jobs=2,
        job_base_seconds=10,
        day_seconds=(10, 10),
        retry_delay_seconds=30,
        eta_noise=0.0,
        upper_case_status_fraction=0.0,
        empty_details_on_create_fraction=0.0,
        empty_day_fraction=0.0,
        records_per_day=(3, 8),
    )
    return dataclasses.replace(base, **overrides)


class Api:
    """Thin calls to a running simulator with the account's credentials."""

    def __init__(self, sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.http = http
        settings = sim.settings
        self.headers = {
            "Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)
        }

    @property
    def clock(self) -> ManualClock:
        clock = self.sim.settings.clock
        assert isinstance(clock, ManualClock)
        return clock

    def advance(self, seconds: float) -> None:
        self.clock.advance(dt.timedelta(seconds=seconds))

    async def call(
        self, method: str, path: str, *, data: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.sim.base_url + path
        headers = kwargs.pop("headers", self.headers)
        async with self.http.request(method, url, data=data, headers=headers, **kwargs) as resp:
            text = await resp.text()
            body: Any = None
            if text and resp.content_type == "application/json":
                body = await resp.json()
            elif text:
                body = text
            return resp.status, body

    async def create(
        self, start: str, end: str, name: str = "job", resource: str = "Messages", **extra: str
    ) -> dict[str, Any]:
        status, body = await self.call(
            "POST",
            f"/v1/Exports/{resource}/Jobs",
            data={"StartDay": start, "EndDay": end, "FriendlyName": name, **extra},
        )
        assert status == 201, body
        assert isinstance(body, dict)
        return body

    async def job(self, sid: str) -> tuple[int, Any]:
        return await self.call("GET", f"/v1/Exports/Jobs/{sid}")

    async def statuses(self, sid: str) -> dict[str, str]:
        status, body = await self.job(sid)
        assert status == 200, body
        return {day: group["status"] for group in body["details"] for day in group["days"]}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def settings(clock: ManualClock) -> SimulatorSettings:
    return make_settings(clock)


@pytest.fixture
async def api(settings: SimulatorSettings, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    async with running_simulator(settings) as sim:
        yield Api(sim, http)


@asynccontextmanager
async def serve(http: aiohttp.ClientSession, **overrides: Any) -> AsyncIterator[Api]:
    """A simulator with ``make_settings(**overrides)`` and an Api bound to it."""
    async with running_simulator(make_settings(**overrides)) as sim:
        yield Api(sim, http)
