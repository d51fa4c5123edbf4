"""A daemon's workflows wired to the simulator and a real SQLite store, on a manual clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import stamina

from orchestrator.clock import ManualClock
from orchestrator.config import load_settings
from orchestrator.wiring import open_workflow_context, run_cycle
from orchestrator.workflows.context import WorkflowContext

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
    async with contextlib.AsyncExitStack() as stack:

        async def factory(
            base_url: str, body: str, clock: ManualClock, token: str = TOKEN
        ) -> Harness:
            path = write_config(tmp_path, base_url, body)
            settings = load_settings(path, environ={"E2E_TWILIO_TOKEN": token})
            ctx = await stack.enter_async_context(
                open_workflow_context(settings, clock=clock, rand=random.Random(7).random)
            )
            return Harness(ctx=ctx, clock=clock, base_url=base_url)

        yield factory
