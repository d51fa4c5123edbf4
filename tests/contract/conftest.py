"""Fixtures of the contract tests: a scripted fake server, a client wired to it, no long sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import stamina

from orchestrator.twilio import BulkExportsClient, ClientSettings, Credentials, new_http_session
from tests.contract.fakes import ACCOUNT_SID, AUTH_TOKEN, NOW, FakeServer, FixedClock


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """stamina's test mode: waits become 0; cap=True keeps each test's own max_attempts."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def credentials() -> Credentials:
    return Credentials.from_auth_token(ACCOUNT_SID, AUTH_TOKEN)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    http = new_http_session()
    yield http
    await http.close()


ClientFactory = Callable[..., BulkExportsClient]


@pytest.fixture
def make_client(
    fake: FakeServer, credentials: Credentials, session: aiohttp.ClientSession
) -> ClientFactory:
    """A client on the fake server; keyword arguments override ClientSettings fields."""

    def make(
        *, creds: Credentials | None = None, clock: Any = None, **overrides: Any
    ) -> BulkExportsClient:
        fields: dict[str, Any] = {
            "base_url": fake.base_url,
            "max_attempts": 3,
            "request_timeout": 2.0,
            "connect_timeout": 1.0,
            "requests_per_second": 1000.0,
            "max_concurrent_requests": 20,
        }
        fields.update(overrides)
        return BulkExportsClient(
            creds or credentials,
            session=session,
            settings=ClientSettings(**fields),
            clock=clock or FixedClock(NOW),
        )

    return make
