"""The archive workflow wired to a real SQLite store and a client, on a manual clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gzip
import json
import random
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import stamina

from orchestrator.archive.target import ArchiveTarget
from orchestrator.clock import ManualClock
from orchestrator.config import Settings, load_settings
from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    JobRequest,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_report
from orchestrator.store.repository import Store
from orchestrator.wiring import open_workflow_context
from orchestrator.workflows.context import WorkflowContext
from tests.archive.s3_support import S3Bucket

TOKEN = "archive-test-token-8d1e"
ACCOUNT = "AC" + "2" * 32
PREFIX = "orch-arch"
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Env:
    ctx: WorkflowContext
    clock: ManualClock
    archive_dir: Path
    settings: Settings | None = None

    @property
    def target(self) -> ArchiveTarget:
        assert self.ctx.archive is not None
        return self.ctx.archive.archive_target()

    @property
    def store(self) -> Store:
        return self.ctx.store

    async def succeed(
        self,
        resource_type: ResourceType,
        days: Iterable[dt.date],
        *,
        job_sid: str = "JS" + "a" * 32,
        statuses: dict[dt.date, DayStatus] | None = None,
    ) -> int:
        """Put contiguous ``days`` through a job in the store, ending in success; the job id."""
        wanted = sorted(days)
        now = self.clock.now()
        await self.store.upsert_wanted_days([DayKey(resource_type, d) for d in wanted], now)
        name = friendly_name(PREFIX, resource_type, wanted[0], wanted[-1], 1)
        job = await self.store.claim_days(
            JobRequest(resource_type, wanted[0], wanted[-1], 1, name), now
        )
        await self.store.record_job_sid(job.id, job_sid, now, now)
        reported = dict.fromkeys(wanted, DayStatus.COMPLETED) | (statuses or {})
        await self.store.settle_job(
            job.id,
            functools.partial(
                settle_report,
                reported=reported,
                resubmit=ResubmitPolicy(2, dt.timedelta(minutes=1)),
                now=now,
                observed_by=ObservedBy.POLL,
            ),
        )
        return job.id


# Only the end-to-end tests run the planner; the rest put days in the store themselves.
DEFAULT_EXPORTS = """
[[exports]]
name = "messages"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-01"
"""

MakeEnv = Callable[..., Awaitable[Env]]


def config_text(tmp_path: Path, base_url: str, archive: str, exports: str = "") -> str:
    return (
        textwrap.dedent(
            f"""
        [twilio]
        account_sid = "{ACCOUNT}"
        auth_token_env = "ARCHIVE_TWILIO_TOKEN"
        base_url = "{base_url}"
        requests_per_second = 1000
        max_concurrent_requests = 8

        [state]
        directory = "{tmp_path / "state"}"

        [jobs]
        name_prefix = "{PREFIX}"
        max_resubmits = 2
        resubmit_delay = "1m"

        [polling]
        initial_delay = "30s"
        max_delay = "2m"
        """
        )
        + textwrap.dedent(archive)
        + textwrap.dedent(exports)
    )


@pytest.fixture(autouse=True)
def _no_retry_waits() -> None:
    """Retries happen, but without sleeping."""
    stamina.set_testing(True, attempts=2)


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[MakeEnv]:
    """Build an Env against a base URL (the simulator or the scriptable fake)."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(
            base_url: str,
            clock: ManualClock,
            *,
            max_concurrent: int = 2,
            template: str | None = None,
            exports: str = DEFAULT_EXPORTS,
            s3: S3Bucket | None = None,
        ) -> Env:
            archive_dir = tmp_path / "archive"
            where = (
                f'directory = "{archive_dir}"'
                if s3 is None
                else s3.archive_toml(tmp_path / "credentials")
            )
            archive = f"""
            [archive]
            max_concurrent_downloads = {max_concurrent}
            """ + textwrap.indent(where, "            ")
            if template is not None:
                archive += f'path_template = "{template}"\n'
            path = tmp_path / "config.toml"
            path.write_text(config_text(tmp_path, base_url, archive, exports))
            settings = load_settings(path, environ={"ARCHIVE_TWILIO_TOKEN": TOKEN})
            archive_dir.mkdir(exist_ok=True)
            ctx = await stack.enter_async_context(
                open_workflow_context(settings, clock=clock, rand=random.Random(5).random)
            )
            return Env(ctx=ctx, clock=clock, archive_dir=archive_dir, settings=settings)

        yield factory


def gzip_lines(*records: object, raw: bytes = b"") -> bytes:
    """A gzip day file of JSON lines (and ``raw`` bytes appended to the text)."""
    text = b"".join(json.dumps(r).encode() + b"\n" for r in records) + raw
    return gzip.compress(text, mtime=0)
