"""A daemon's workflows wired to the simulator and a real SQLite store, on a manual clock."""

from __future__ import annotations

import datetime as dt
import random
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import stamina
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.clock import ManualClock
from orchestrator.config import load_settings
from orchestrator.daemon import client_credentials, client_settings, run_cycle
from orchestrator.store.engine import create_engine
from orchestrator.store.migration import upgrade_to_head
from orchestrator.store.repository import Store
from orchestrator.twilio import BulkExportsClient, new_http_session
from orchestrator.workflows.context import ApiHealth, WorkflowContext

TOKEN = "e2e-simulator-token-5f3a9c"
ACCOUNT = "AC" + "1" * 32
PREFIX = "orch-e2e"


@dataclass
class Harness:
    ctx: WorkflowContext
    clock: ManualClock
    base_url: str

    async def run_until_final(self, *, step: dt.timedelta, max_cycles: int) -> int:
        """Run every pass, advance the clock, repeat until all wanted days are final."""
        for cycle in range(max_cycles):
            await run_cycle(self.ctx)
            if await self.ctx.store.all_wanted_final():
                return cycle
            self.clock.advance(step)
        raise AssertionError(f"not all days final after {max_cycles} cycles")


def write_config(tmp_path: Path, base_url: str, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "{ACCOUNT}"
            auth_token_env = "E2E_TWILIO_TOKEN"
            base_url = "{base_url}"
            requests_per_second = 1000
            max_concurrent_requests = 8

            [state]
            directory = "{tmp_path / "state"}"
            """
        )
        + textwrap.dedent(body)
    )
    return path


# (base_url, config body, clock, token=TOKEN) -> Harness
MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture(autouse=True)
def _no_retry_waits() -> None:
    """Retries happen, but without sleeping."""
    stamina.set_testing(True, attempts=3)


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[MakeHarness]:
    """Build a Harness for a config body against a simulator base URL."""
    made: list[tuple[BulkExportsClient, aiohttp.ClientSession, AsyncEngine]] = []

    async def factory(base_url: str, body: str, clock: ManualClock, token: str = TOKEN) -> Harness:
        path = write_config(tmp_path, base_url, body)
        settings = load_settings(path, environ={"E2E_TWILIO_TOKEN": token})
        settings.state.directory.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.state.database_url.get_secret_value())
        await upgrade_to_head(engine)
        session = new_http_session(client_settings(settings))
        client = BulkExportsClient(
            client_credentials(settings),
            session=session,
            settings=client_settings(settings),
            clock=clock,
        )
        made.append((client, session, engine))
        ctx = WorkflowContext(
            store=Store(engine, ACCOUNT),
            client=client,
            clock=clock,
            settings=settings,
            health=ApiHealth(),
            random=random.Random(7).random,
        )
        return Harness(ctx=ctx, clock=clock, base_url=base_url)

    yield factory
    for client, session, engine in made:
        await client.aclose()
        await session.close()
        await engine.dispose()
