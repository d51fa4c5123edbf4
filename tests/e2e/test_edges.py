"""At the edges the workflows bound themselves: unclear creates, one bad item among many, and
a long queue that is progress, not staleness. Workflows on a ManualClock against a scripted
server or the simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.model import JobState
from orchestrator.domain.plan import budget_window
from orchestrator.domain.settlement import settle_poll, start_deleting
from orchestrator.errors import StoreError
from orchestrator.simulator import SimulatorSettings, running_simulator
from orchestrator.store.repository import Decision, Settlement, Store
from orchestrator.wiring import run_cycle, submit_pass
from orchestrator.workflows.archive import Outcome, archive_due_days
from orchestrator.workflows.poll import poll_due_jobs
from orchestrator.workflows.wanted import record_wanted_days
from tests.contract.fakes import FakeServer, created, jobs_page, reply
from tests.e2e.conftest import ACCOUNT, PREFIX, TOKEN, MakeHarness

FIRST = dt.date(2026, 1, 1)
LAST = dt.date(2026, 1, 5)
MINUTE = dt.timedelta(minutes=1)
CREATE_PATH = "/v1/Exports/Messages/Jobs"
SID_A = "JS" + "a" * 32
SID_B = "JS" + "b" * 32

CONFIG = f"""
[jobs]
name_prefix = "{PREFIX}"

[[exports]]
name = "messages"
resource_type = "Messages"
start_day = "{FIRST}"
end_day = "{LAST}"
"""


def _events(logs: Sequence[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == name]


async def test_unclear_creates_are_bounded_counted_and_resume_the_next_utc_day(
    make_harness: MakeHarness,
) -> None:
    """201 with an unreadable body and a job list that never shows the job: at most 3 creates
    of the range that UTC day, all counted in the budget, one error event, creates again the
    next UTC day."""
    start = dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.UTC)
    clock = ManualClock(start)
    server = FakeServer()
    server.on("POST", CREATE_PATH, reply(201, text="<html>gateway says hi</html>"))
    server.on("GET", CREATE_PATH, jobs_page())
    await server.start()
    try:
        harness = await make_harness(server.base_url, CONFIG, clock)
        midnight = budget_window(start)[1]
        posts_by_midnight = 0
        with structlog.testing.capture_logs() as logs:
            while clock.now() < midnight + dt.timedelta(minutes=30):
                await run_cycle(harness.ctx)
                if clock.now() < midnight:
                    posts_by_midnight = server.count("POST", CREATE_PATH)
                clock.advance(MINUTE)
        store = harness.ctx.store
        first_day = await store.requested_days_since(budget_window(start)[0])
        next_day = await store.requested_days_since(midnight)
    finally:
        await server.close()
    assert posts_by_midnight == 3
    assert server.count("POST", CREATE_PATH) > posts_by_midnight
    # The three unclear creates (5 days each) count against the first day's budget.
    assert first_day - next_day == 3 * 5
    assert next_day >= 5
    # Once for the first UTC day (the next day, bounded again, has its own).
    suspensions = _events(logs, "job.creates_suspended")
    [suspended] = [e for e in suspensions if e["until"] == midnight.isoformat()]
    assert suspended["log_level"] == "error" and len(suspensions) <= 2
    assert "duplicate" in str(suspended["action"])
    # Each unclear job was looked for more than once before it was given up.
    abandoned = _events(logs, "job.abandoned")
    assert len(abandoned) >= 3 and all(e["lookups"] == 3 for e in abandoned)


class FlakyStore(Store):
    """The real store, except that one decision of one job fails as a database would."""

    def __init__(self, inner: Store, job_id: int, decision: object) -> None:
        super().__init__(inner._engine, inner.account_sid)
        self.job_id = job_id
        self.decision = decision

    async def settle_job(self, job_id: int, decide: Decision) -> Settlement:
        if job_id == self.job_id and getattr(decide, "func", None) is self.decision:
            raise StoreError("settle job failed: OperationalError: disk I/O error")
        return await super().settle_job(job_id, decide)


async def test_a_sid_the_store_cannot_save_stops_only_its_own_job(
    make_harness: MakeHarness,
) -> None:
    """Twilio answers two creates with one SID: the second job's save fails (UNIQUE), it is
    logged with its name and looked up later, and the third job is still created."""
    clock = ManualClock(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
    server = FakeServer()
    server.on("POST", CREATE_PATH, created(SID_A), created(SID_A), created(SID_B))
    server.on("GET", CREATE_PATH, jobs_page())
    await server.start()
    try:
        config = CONFIG.replace("[jobs]", "[jobs]\nmax_days_per_job = 2")
        harness = await make_harness(server.base_url, config, clock)
        await record_wanted_days(harness.ctx)
        with structlog.testing.capture_logs() as logs:
            await submit_pass(harness.ctx)
        jobs = sorted(await harness.ctx.store.list_jobs(), key=lambda j: j.id)
    finally:
        await server.close()
    assert server.count("POST", CREATE_PATH) == 3
    assert [(j.state, j.job_sid) for j in jobs] == [
        (JobState.ACTIVE, SID_A),
        (JobState.SUBMITTING, None),
        (JobState.ACTIVE, SID_B),
    ]
    [failed] = _events(logs, "job.record_failed")
    assert failed["friendly_name"] == jobs[1].friendly_name and failed["job_sid"] == SID_A
    assert "UNIQUE" in str(failed["error"]) or "unique" in str(failed["error"])
    # Its backoff: looked for on Twilio later, not at the next pass.
    assert jobs[1].next_lookup_at is not None and jobs[1].next_lookup_at > clock.now()


def _simulator(clock: ManualClock, **overrides: object) -> SimulatorSettings:
    settings = SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=5,
        clock=clock,
        job_base_seconds=30,
        day_seconds=(5, 10),
    )
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


async def test_one_jobs_failed_poll_write_does_not_fail_the_others(
    make_harness: MakeHarness,
) -> None:
    """A store error settling one job's poll is logged with its SID and backs it off; the other
    jobs of the pass are polled and written."""
    clock = ManualClock(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
    async with running_simulator(_simulator(clock)) as sim:
        config = CONFIG.replace("[jobs]", "[jobs]\nmax_days_per_job = 2")
        harness = await make_harness(sim.base_url, config, clock)
        await run_cycle(harness.ctx)
        jobs = sorted(await harness.ctx.store.list_jobs(), key=lambda j: j.id)
        assert len(jobs) == 3
        bad = jobs[1]
        ctx = dataclasses.replace(
            harness.ctx, store=FlakyStore(harness.ctx.store, bad.id, settle_poll)
        )
        clock.advance(dt.timedelta(minutes=10))
        with structlog.testing.capture_logs() as logs:
            assert await poll_due_jobs(ctx) == 3
        after = {j.id: j for j in await harness.ctx.store.list_jobs()}
    for job in (jobs[0], jobs[2]):
        assert after[job.id].last_polled_at == clock.now()
    [error] = _events(logs, "job.poll_error")
    assert error["job_sid"] == bad.job_sid and error["error_type"] == "StoreError"
    failed = after[bad.id]
    assert failed.last_error is not None and "disk I/O" in failed.last_error
    assert failed.next_poll_at is not None and failed.next_poll_at > clock.now()


async def test_one_jobs_failed_delete_write_does_not_stop_the_other_deletes(
    make_harness: MakeHarness,
) -> None:
    """Finished jobs are deleted; one whose deleting state cannot be written is logged with its
    SID and left for the next pass, and the others are deleted."""
    clock = ManualClock(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
    async with running_simulator(_simulator(clock)) as sim:
        config = CONFIG.replace("[jobs]", "[jobs]\nmax_days_per_job = 2")
        harness = await make_harness(sim.base_url, config, clock)
        await run_cycle(harness.ctx)
        jobs = sorted(await harness.ctx.store.list_jobs(), key=lambda j: j.id)
        bad = jobs[0]
        ctx = dataclasses.replace(
            harness.ctx, store=FlakyStore(harness.ctx.store, bad.id, start_deleting)
        )
        with structlog.testing.capture_logs() as logs:
            for _ in range(120):
                await run_cycle(ctx)
                states = {j.id: j.state for j in await ctx.store.list_jobs()}
                if states[jobs[1].id] is JobState.DELETED and states[jobs[2].id] is (
                    JobState.DELETED
                ):
                    break
                clock.advance(MINUTE)
    assert states[bad.id] is JobState.FINISHED
    assert states[jobs[1].id] is JobState.DELETED and states[jobs[2].id] is JobState.DELETED
    errors = _events(logs, "job.delete_error")
    assert errors and {e["job_sid"] for e in errors} == {bad.job_sid}


async def test_one_days_unexpected_archive_error_does_not_cancel_the_others(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """An unexpected error writing one day's file is logged with the day and its traceback and
    counted for that day (a backoff); the other days' files are stored."""
    clock = ManualClock(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
    archive = tmp_path / "archive"
    config = CONFIG + f'\n[archive]\ndirectory = "{archive}"\nmax_concurrent_downloads = 2\n'
    async with running_simulator(_simulator(clock)) as sim:
        harness = await make_harness(sim.base_url, config, clock)
        for _ in range(60):
            await record_wanted_days(harness.ctx)
            await submit_pass(harness.ctx)
            await poll_due_jobs(harness.ctx)
            days = await harness.ctx.store.list_days()
            if all(d.status.is_success for d in days):
                break
            clock.advance(MINUTE)
        bad_day = "2026-01-03"

        def opener(path: Path):  # type: ignore[no-untyped-def]
            if bad_day in str(path):
                raise RuntimeError("a bug in the writer")
            return path.open("xb")

        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(harness.ctx, opener=opener)
        days = {d.day.isoformat(): d for d in await harness.ctx.store.list_days()}
        attempts = await harness.ctx.store.archive_attempts(days[bad_day].key)
    assert len(report.stored) == 4 and [k.day.isoformat() for k in report.failed] == [bad_day]
    assert report.outcomes[days[bad_day].key] is Outcome.FAILED
    [error] = _events(logs, "archive.error")
    assert error["day"] == bad_day and isinstance(error["exc_info"], RuntimeError)
    assert all(d.archive is not None for k, d in days.items() if k != bad_day)
    assert attempts is not None and attempts.attempts == 1
    assert attempts.next_attempt_at is not None and attempts.next_attempt_at > clock.now()
