"""The read-only endpoint against a real store (SQLite always, PostgreSQL when
ORCHESTRATOR_TEST_POSTGRES_URL is set), served on port 0 by aiohttp's test server.

``endpoint`` gives a running app over a store holding a known scene (``populate``): two
exports, one finished and one active job, one day at risk, one archived, a job whose last
error holds markup, and a config whose auth token is the recognisable ``FAKE_TOKEN``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.clock import ManualClock
from orchestrator.config import Settings, load_settings
from orchestrator.domain.model import (
    ArchiveFacts,
    DayKey,
    DayStatus,
    JobRequest,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_failed_poll, settle_report
from orchestrator.domain.wanted import wanted_days
from orchestrator.http import Sources, make_app
from orchestrator.metrics import Metrics
from orchestrator.store import Store
from orchestrator.twilio import new_http_session
from orchestrator.wiring import PASSES, all_secrets, make_client, workflow_context
from orchestrator.workflows.context import ApiHealth, WorkflowContext
from tests.store.conftest import ACCOUNT, Database, database, engine, store

__all__ = ["Database", "database", "engine", "store"]

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
# Printable, 36 characters, and found nowhere else: grep every answer for it.
FAKE_TOKEN = "FakeTok3n-http-tests-9f8e7d6c5b4a3210"
TOKEN_ENV = "HTTP_TEST_TWILIO_TOKEN"
MARKUP = '<script>alert("x")</script> & <b>bold</b>'
SID_A = "JS" + "a" * 32
SID_B = "JS" + "b" * 32

CONFIG = """
[twilio]
account_sid = "{account}"
auth_token_env = "{env}"

[state]
directory = "{state}"

[archive]
directory = "{archive}"

[[exports]]
name = "calls-may"
resource_type = "Calls"
start_day = 2024-05-20
end_day = 2024-05-29

[[exports]]
name = "recent-messages"
resource_type = "Messages"
last_days = 3
"""


def write_settings(tmp_path: Path) -> Settings:
    """The scene's settings, with FAKE_TOKEN as the auth token."""
    path = tmp_path / "config.toml"
    path.write_text(
        CONFIG.format(
            account=ACCOUNT, env=TOKEN_ENV, state=tmp_path / "state", archive=tmp_path / "archive"
        )
    )
    return load_settings(path, environ={TOKEN_ENV: FAKE_TOKEN})


async def populate(store: Store, settings: Settings) -> None:
    """The scene: every wanted day Pending since NOW - 7 d; job A (Calls 05-20..22) made its
    files 6 days ago (05-20 Completed, at risk; 05-21 CompletedEmptyRecords, archived; 05-22
    Failed); job B (Calls 05-23..25) submitted an hour ago, its last poll failed with markup."""
    week_ago = NOW - dt.timedelta(days=7)
    keys = [
        DayKey(rtype, day)
        for rtype, days in wanted_days(settings.export_specs(), NOW).items()
        for day in sorted(days)
    ]
    await store.upsert_wanted_days(keys, week_ago)
    resubmit = ResubmitPolicy(3, dt.timedelta(minutes=1))
    made = NOW - dt.timedelta(days=6)
    calls = ResourceType.CALLS
    a_first, a_last = dt.date(2024, 5, 20), dt.date(2024, 5, 22)
    job_a = await store.claim_days(
        JobRequest(calls, a_first, a_last, 1, friendly_name("t", calls, a_first, a_last, 1)), made
    )
    await store.record_job_sid(job_a.id, SID_A, made, made)
    await store.settle_job(
        job_a.id,
        functools.partial(
            settle_report,
            reported={
                a_first: DayStatus.COMPLETED,
                dt.date(2024, 5, 21): DayStatus.COMPLETED_EMPTY_RECORDS,
                a_last: DayStatus.FAILED,
            },
            resubmit=resubmit,
            now=made,
            observed_by=ObservedBy.POLL,
        ),
    )
    await store.record_archive(
        DayKey(calls, dt.date(2024, 5, 21)),
        ArchiveFacts("Calls/2024-05-21.json.gz", 20, "0" * 64, 0, made + dt.timedelta(hours=1)),
    )
    hour_ago = NOW - dt.timedelta(hours=1)
    b_first, b_last = dt.date(2024, 5, 23), dt.date(2024, 5, 25)
    job_b = await store.claim_days(
        JobRequest(calls, b_first, b_last, 1, friendly_name("t", calls, b_first, b_last, 1)),
        hour_ago,
    )
    await store.record_job_sid(job_b.id, SID_B, hour_ago, hour_ago)
    await store.settle_job(
        job_b.id,
        functools.partial(
            settle_failed_poll,
            error=MARKUP,
            poll=settings.policies.poll,
            rand=0.0,
            now=NOW - dt.timedelta(minutes=5),
        ),
    )


@dataclass
class Endpoint:
    """A served app, its client, and what it reads."""

    client: TestClient[aiohttp.web.Request, aiohttp.web.Application]
    store: Store
    settings: Settings
    ctx: WorkflowContext
    metrics: Metrics
    clock: ManualClock

    @property
    def secrets(self) -> list[str]:
        return [FAKE_TOKEN, *all_secrets(self.settings)]


@pytest.fixture
async def endpoint(store: Store, tmp_path: Path) -> AsyncIterator[Endpoint]:
    """The app over the scene, served on a free port."""
    settings = write_settings(tmp_path)
    await populate(store, settings)
    clock = ManualClock(NOW)
    metrics = Metrics(passes=[spec.name for spec in PASSES], version="9.9.9-test")
    async with new_http_session() as session:
        ctx = workflow_context(
            settings,
            store=store,
            client=make_client(settings, session=session, clock=clock, observer=metrics),
            clock=clock,
            health=ApiHealth(),
            rand=lambda: 0.0,
        )
        holder = {"ctx": ctx}
        app = make_app(Sources(store=store, metrics=metrics, context=lambda: holder["ctx"]))
        async with TestClient(TestServer(app, port=0)) as client:
            yield Endpoint(client, store, settings, ctx, metrics, clock)
