"""The burst harness: the daemon's workflows against the simulator on one ManualClock.

The passes run on the daemon's own cadence, in simulated time, read from the daemon's own table
of passes (``orchestrator.wiring.PASSES``: wanted hourly, submit every minute, poll every
``initial_delay / 2``, cleanup every ``cleanup.interval``...), as the Ticker would run them on a
sped-up clock, in the table's order. Between passes the clock jumps straight to the next moment
something can happen (the next poll tick at or after the earliest stored ``next_poll_at``, the
next cleanup or wanted tick, a submit tick after something changed), so a two-day backfill runs
in seconds. The simulator computes its state lazily from the clock, so the state a poll sees
after a jump is the state at the jumped-to time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import random
import sys
import tempfile
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from orchestrator.clock import ManualClock
from orchestrator.config import Settings, load_settings
from orchestrator.domain.model import JobState
from orchestrator.logs import SecretRedactor, configure_logging
from orchestrator.simulator import RunningSimulator
from orchestrator.wiring import PASSES, open_workflow_context
from orchestrator.workflows.context import WorkflowContext

TOKEN = "bench-simulator-token-7c1e4d"
ACCOUNT = "AC" + "3" * 32
PREFIX = "orch-bench"
TOKEN_ENV = "BENCH_TWILIO_TOKEN"

ArchivePass = Callable[[WorkflowContext], Awaitable[object]]

# Jobs that still hold a place on Twilio or in our plans.
OPEN_STATES = (JobState.SUBMITTING, JobState.ACTIVE, JobState.FINISHED, JobState.DELETING)

# Simulator routes (as the recorder names them) -> request kinds of the economy report.
ROUTE_KINDS = {
    "POST /v1/Exports/{ResourceType}/Jobs": "create",
    "GET /v1/Exports/Jobs/{JobSid}": "fetch",
    "GET /v1/Exports/{ResourceType}/Jobs": "list",
    "GET /v1/Exports/{ResourceType}/Days": "list_days",
    "DELETE /v1/Exports/Jobs/{JobSid}": "delete",
    "GET /v1/Exports/{ResourceType}/Days/{Day}": "day",
    "GET /_files/{ResourceType}/{Day}": "download",
}
KINDS = ("create", "fetch", "list", "delete", "day", "download", "list_days", "other")


@contextlib.asynccontextmanager
async def scratch_postgres_database(url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh, empty database named ``prefix_<random>`` on ``url``'s server (its URL), dropped
    after, even while a process still holds a connection to it."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from orchestrator.store.engine import create_engine

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)

    async def run(statement: str) -> None:
        async with admin.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(sa.text(statement))

    try:
        await run(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


async def start_daemon(config: Path, *, stdout: Any) -> asyncio.subprocess.Process:
    """``orchestrator run --config CONFIG`` as a child process: the bench's token in its
    environment, systemd's variables out of it (a bench run under a unit must not notify it);
    ``stdout`` as for ``create_subprocess_exec``, stderr discarded."""
    env = {**os.environ, TOKEN_ENV: TOKEN}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        "--config",
        str(config),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.DEVNULL,
    )


def request_kinds(stats: dict[str, Any]) -> dict[str, int]:
    """Request counts of a simulator's stats, by kind."""
    counts = dict.fromkeys(KINDS, 0)
    for route, by_status in stats["requests"].items():
        counts[ROUTE_KINDS.get(route, "other")] += sum(by_status.values())
    return counts


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Warnings and errors only, to nowhere, for the block; the old structlog set-up after."""
    saved = structlog.get_config()
    configure_logging(redactor=SecretRedactor(), level="error", json=True, stream=io.StringIO())
    try:
        yield
    finally:
        structlog.configure(**saved)


def write_config(directory: Path, base_url: str, body: str, *, archive: bool) -> Path:
    """A daemon config for the simulator at ``base_url`` with ``body`` (jobs, exports...)."""
    path = directory / "config.toml"
    text = textwrap.dedent(
        f"""
        [twilio]
        account_sid = "{ACCOUNT}"
        auth_token_env = "{TOKEN_ENV}"
        base_url = "{base_url}"
        requests_per_second = 1000
        max_concurrent_requests = 8

        [state]
        directory = "{directory / "state"}"
        """
    ) + textwrap.dedent(body)
    if archive:
        text += f'\n[archive]\ndirectory = "{directory / "archive"}"\n'
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def workflow_context(
    sim: RunningSimulator, body: str, clock: ManualClock, *, archive: bool, seed: int = 7
) -> AsyncIterator[tuple[WorkflowContext, Settings]]:
    """The daemon's WorkflowContext (real store on SQLite, real client) for ``sim``, and the
    settings it was built from (a ``Burst`` reads the passes' cadences from them)."""
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        path = write_config(Path(tmp), sim.base_url, body, archive=archive)
        settings = load_settings(path, environ={TOKEN_ENV: TOKEN})
        async with open_workflow_context(
            settings, clock=clock, rand=random.Random(seed).random
        ) as ctx:
            yield ctx, settings


def _next_tick(origin: dt.datetime, every: dt.timedelta, after: dt.datetime) -> dt.datetime:
    """The first ``origin + k * every`` (k >= 0) strictly after ``after``."""
    if after < origin:
        return origin
    k = (after - origin) // every + 1
    return origin + k * every


def _tick_at_or_after(origin: dt.datetime, every: dt.timedelta, when: dt.datetime) -> dt.datetime:
    if when <= origin:
        return origin
    k = -((origin - when) // every)  # ceil((when - origin) / every)
    return origin + k * every


@dataclass
class BurstRun:
    """What one burst run did, in simulated time."""

    started_at: dt.datetime
    ended_at: dt.datetime
    completed: bool
    passes: dict[str, int] = field(default_factory=dict)


@dataclass
class Burst:
    """Runs the daemon's passes on its cadence in simulated time until the work is done."""

    ctx: WorkflowContext
    clock: ManualClock
    # The cadences of the passes come from these (as the daemon's do).
    settings: Settings
    archive: ArchivePass | None = None
    # None: the table's interval.
    archive_every: dt.timedelta | None = None

    async def run(self, *, limit: dt.timedelta) -> BurstRun:
        """Until every wanted day is final (archived, with archiving) and no job is open."""
        origin = self.clock.now()
        cadence: dict[str, tuple[dt.datetime, dt.timedelta]] = {}
        for spec in PASSES:
            # (first run, interval), as the daemon's Ticker sets them up, in simulated time.
            if spec.name == "archive" and self.archive is None:
                continue
            every = spec.every(self.settings)
            if spec.name == "archive" and self.archive_every is not None:
                every = self.archive_every
            cadence[spec.name] = (origin + every * spec.first_in, every)
        due = {name: first for name, (first, _) in cadence.items()}
        passes = dict.fromkeys(cadence, 0)
        busy = True  # something changed: the next submit tick may have work
        require_archived = self.archive is not None
        while True:
            now = self.clock.now()
            if now - origin > limit:
                return BurstRun(origin, now, False, passes)
            ran_busy = False
            for name in cadence:
                if due[name] > now:
                    continue
                first, every = cadence[name]
                due[name] = _next_tick(first, every, now)
                passes[name] += 1
                ran_busy |= await self._run_pass(name)
            if await self._done(require_archived):
                return BurstRun(origin, self.clock.now(), True, passes)
            busy = ran_busy
            wake = [due["wanted"], due["cleanup"], due["orphans"]]
            if busy:
                wake.append(due["submit"])
                if "archive" in due:
                    wake.append(due["archive"])
            earliest = await self._earliest_poll()
            if earliest is not None:
                first, every = cadence["poll"]
                tick = _tick_at_or_after(first, every, earliest)
                # A job still due after this moment's pass (a capped pass) waits for the next.
                wake.append(tick if tick > now else due["poll"])
            self.clock.set(max(min(wake), now))

    async def _run_pass(self, name: str) -> bool:
        """Run one pass; True when it did something (so a following submit may have work)."""
        ctx = self.ctx
        result: object
        if name == "archive":
            assert self.archive is not None
            result = await self.archive(ctx)
        else:
            result = await next(spec for spec in PASSES if spec.name == name).run(ctx)
        # A count, a list of what was done, or an ArchiveReport (a dataclass, always truthy:
        # what it did is its outcomes).
        return bool(getattr(result, "outcomes", result))

    async def _earliest_poll(self) -> dt.datetime | None:
        active = await self.ctx.store.list_jobs(states=[JobState.ACTIVE])
        times = [j.next_poll_at for j in active if j.next_poll_at is not None]
        return min(times, default=None)

    async def _done(self, require_archived: bool) -> bool:
        store = self.ctx.store
        if not await store.all_wanted_final(require_archived=require_archived):
            return False
        return not await store.list_jobs(states=OPEN_STATES)
