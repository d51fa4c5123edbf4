"""The archive pass against the simulator: real files, the layout, and a whole backfill."""

from __future__ import annotations

import dataclasses
import datetime as dt

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.model import DayKey, DayStatus, JobState, ObservedBy, ResourceType
from orchestrator.simulator import FaultKind, FaultSettings, SimulatorSettings, running_simulator
from orchestrator.simulator.files import file_spec, measure
from orchestrator.wiring import run_cycle
from orchestrator.workflows.archive import archive_due_days
from orchestrator.workflows.verify_archive import verify_archive
from tests.archive.conftest import ACCOUNT, PREFIX, START, TOKEN, Env, MakeEnv

C = ResourceType.CALLS
DAYS = [dt.date(2026, 2, 1), dt.date(2026, 2, 2), dt.date(2026, 2, 3)]
EMPTY = DAYS[1]


def sim_settings(clock: ManualClock, **faults: object) -> SimulatorSettings:
    return SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=11,
        clock=clock,
        job_base_seconds=5,
        day_seconds=(5, 5),
        empty_day_fraction=0.0,
        empty_days=frozenset({(C, EMPTY)}),
        upper_case_status_fraction=0.0,
        faults=FaultSettings(**faults),  # type: ignore[arg-type]
    )


async def complete_on_simulator(env: Env, clock: ManualClock) -> None:
    """Run a real job on the simulator and record its statuses in the store."""
    job = await env.ctx.client.create_job(C, DAYS[0], DAYS[-1], f"{PREFIX}-x")
    clock.advance(dt.timedelta(minutes=5))
    remote = await env.ctx.client.fetch_job(job.job_sid)
    statuses = remote.day_statuses()
    assert statuses[EMPTY] is DayStatus.COMPLETED_EMPTY_RECORDS
    await env.succeed(C, DAYS, job_sid=job.job_sid, statuses=statuses)


async def test_days_are_archived_at_the_layout_path_with_matching_facts(
    make_env: MakeEnv,
) -> None:
    """Happy path and an empty day: files at {type}/{yyyy}/{mm}/{day}.json.gz, facts exact."""
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock)
        await complete_on_simulator(env, clock)
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
        file_requests = sim.requests(route="GET /_files/{ResourceType}/{Day}")
    assert sorted(report.stored, key=lambda k: k.day) == [DayKey(C, d) for d in DAYS]
    assert all("Authorization" not in r.headers for r in file_requests)
    for day in DAYS:
        stored = await env.store.get_day(DayKey(C, day))
        assert stored is not None and stored.archive is not None
        path = env.archive_dir / "Calls" / "2026" / "02" / f"{day.isoformat()}.json.gz"
        assert stored.archive.path == str(path)
        truth = measure(file_spec(sim.settings, C, day))
        assert (stored.archive.size, stored.archive.sha256) == (truth.size, truth.sha256)
        assert stored.archive.record_count == truth.records
        assert path.stat().st_size == truth.size
    empty = await env.store.get_day(DayKey(C, EMPTY))
    assert empty is not None and empty.archive is not None and empty.archive.record_count == 0
    events = [e for e in logs if e["event"] == "archive.stored"]
    assert {"resource_type", "day", "path", "bytes", "records", "sha256", "seconds"} <= set(
        events[0]
    )
    assert await env.store.all_wanted_final(require_archived=True)
    verified = await verify_archive(env.store, deep=True)
    assert (verified.checked, verified.ok, verified.exit_code) == (3, 3, 0)


async def test_a_truncated_gzip_is_retried_and_never_recorded_truncated(
    make_env: MakeEnv,
) -> None:
    """The file host serves a cut-short gzip once: the pass retries and keeps the whole file."""
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, max_concurrent=1)
        await complete_on_simulator(env, clock)
        sim.inject(FaultKind.TRUNCATED_FILE, 1)
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
    assert len(report.stored) == 3
    (retry,) = [e for e in logs if e["event"] == "archive.retrying"]
    assert retry["reason"] == "corrupt" and "truncated" in retry["error"]
    for day in DAYS:
        stored = await env.store.get_day(DayKey(C, day))
        assert stored is not None and stored.archive is not None
        assert stored.archive.sha256 == measure(file_spec(sim.settings, C, day)).sha256


async def test_verify_archive_reports_missing_and_changed_files(make_env: MakeEnv) -> None:
    """A deleted file is missing, an edited one changed; the exit code says so."""
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock)
        await complete_on_simulator(env, clock)
        await archive_due_days(env.ctx)
    gone = env.archive_dir / "Calls" / "2026" / "02" / "2026-02-01.json.gz"
    edited = env.archive_dir / "Calls" / "2026" / "02" / "2026-02-03.json.gz"
    gone.unlink()
    body = bytearray(edited.read_bytes())
    body[30] ^= 0xFF
    edited.write_bytes(bytes(body))
    report = await verify_archive(env.store)
    assert (report.checked, report.ok, report.missing, report.changed) == (3, 1, 1, 1)
    assert report.exit_code == 1
    assert {p.day for p in report.problems} == {DAYS[0], DAYS[2]}


BACKFILL = """
[[exports]]
name = "calls"
resource_type = "Calls"
start_day = "2026-02-01"
end_day = "2026-02-10"

[cleanup]
interval = "1m"
"""


async def test_a_backfill_with_archiving_ends_archived_and_tidy(make_env: MakeEnv) -> None:
    """Ten days reach final and archived; each job is deleted only after its files are safe."""
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, exports=BACKFILL)
        with structlog.testing.capture_logs() as logs:
            for _ in range(400):
                await run_cycle(env.ctx)
                await archive_due_days(env.ctx)
                await run_cycle(env.ctx)
                if await env.store.all_wanted_final(require_archived=True) and not [
                    j for j in await env.store.list_jobs() if j.state is not JobState.DELETED
                ]:
                    break
                clock.advance(dt.timedelta(minutes=1))
            else:
                raise AssertionError("the backfill never ended archived and tidy")
    days = await env.store.list_days()
    assert len(days) == 10 and all(d.archive is not None for d in days)
    for day in days:
        assert day.archive is not None
        truth = measure(file_spec(sim.settings, C, day.day))
        assert (day.archive.size, day.archive.sha256) == (truth.size, truth.sha256)
    stored_at = {e["day"]: i for i, e in enumerate(logs) if e["event"] == "archive.stored"}
    for i, event in enumerate(logs):
        if event["event"] != "job.deleted":
            continue
        job = await env.store.job_by_sid(event["job_sid"])
        assert job is not None
        for n in range(job.day_count):
            day = job.start_day + dt.timedelta(days=n)
            assert stored_at[day.isoformat()] < i, (day, job.friendly_name)


async def test_a_file_removed_by_twilio_is_made_again_and_archived(make_env: MakeEnv) -> None:
    """Archiving lagged past Twilio's seven days: the day goes back, a new job makes it again."""
    clock = ManualClock(START)
    exports = """
    [[exports]]
    name = "calls"
    resource_type = "Calls"
    start_day = "2026-02-01"
    end_day = "2026-02-01"
    """
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, exports=exports)
        # The archiver fell behind: the day completes while archiving does nothing.
        policies = env.ctx.policies
        lagging = dataclasses.replace(
            env.ctx,
            archive=None,
            policies=dataclasses.replace(
                policies, cleanup=dataclasses.replace(policies.cleanup, archive_enabled=False)
            ),
        )
        for _ in range(50):
            await run_cycle(lagging)
            if await env.store.all_wanted_final():
                break
            clock.advance(dt.timedelta(minutes=1))
        clock.advance(dt.timedelta(days=8))
        with structlog.testing.capture_logs() as logs:
            first = await archive_due_days(env.ctx)
            for _ in range(50):
                await run_cycle(env.ctx)
                await archive_due_days(env.ctx)
                if await env.store.all_wanted_final(require_archived=True):
                    break
                clock.advance(dt.timedelta(minutes=1))
    key = DayKey(C, dt.date(2026, 2, 1))
    assert first.gone == [key]
    assert [e["event"] for e in logs].count("archive.file_gone") == 1
    history = await env.store.day_history(key)
    assert [c.observed_by for c in history].count(ObservedBy.ARCHIVE) == 1
    day = await env.store.get_day(key)
    assert day is not None and day.archive is not None and day.attempts == 2
