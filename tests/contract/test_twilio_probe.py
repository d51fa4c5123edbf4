"""The client's probe (``check-config --connect``) on the wire against the simulator."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import AuthenticationError, TransportError
from orchestrator.simulator import RunningSimulator, SimulatorSettings, running_simulator
from orchestrator.twilio import BulkExportsClient, ClientSettings, Credentials

START = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "sim-auth-token-0000"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    settings = SimulatorSettings(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, seed=1, clock=ManualClock(START)
    )
    async with running_simulator(settings) as running:
        yield running


def client(
    base_url: str, session: aiohttp.ClientSession, token: str = AUTH_TOKEN
) -> BulkExportsClient:
    return BulkExportsClient(
        Credentials.from_auth_token(ACCOUNT_SID, token),
        session=session,
        settings=ClientSettings(base_url=base_url, max_attempts=1, request_timeout=5.0),
        clock=ManualClock(START),
    )


async def _log(sim: RunningSimulator, session: aiohttp.ClientSession) -> list[dict[str, object]]:
    async with session.get(f"{sim.base_url}/_simulator/stats") as response:
        log: list[dict[str, object]] = (await response.json())["request_log"]
    return log


async def test_probe_reads_one_page_of_one_job(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    """probe() is one authenticated GET of the Jobs list with PageSize=1, and no second page."""
    probing = client(sim.base_url, session)
    for day in ("2024-03-01", "2024-03-02"):
        await probing.create_job("Messages", day, day, f"orch-probe-{day}")
    before = len(await _log(sim, session))

    assert await probing.probe() == 1

    [request] = (await _log(sim, session))[before:]
    assert (request["method"], request["route"]) == ("GET", "/v1/Exports/{ResourceType}/Jobs")
    assert request["query"] == {"PageSize": "1"}
    assert request["authorization"] is True


async def test_probe_with_a_wrong_token_is_an_authentication_error(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    """A token the API rejects raises AuthenticationError (check-config --connect: exit 77)."""
    with pytest.raises(AuthenticationError):
        await client(sim.base_url, session, token="not-the-token-1234").probe()


async def test_probe_of_nothing_listening_is_a_transport_error(
    session: aiohttp.ClientSession,
) -> None:
    """No server at the base URL raises a TransportError (check-config --connect: exit 69)."""
    with pytest.raises(TransportError):
        await client("http://127.0.0.1:9", session).probe()
