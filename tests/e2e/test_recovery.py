"""Recovery paths of the daemon's workflows, end to end against the simulator on a manual clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.cleanup import CleanupReason
from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    Job,
    JobRequest,
    JobState,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.polling import PollFacts
from orchestrator.domain.settlement import start_deleting
from orchestrator.simulator import (
    FaultSettings,
    RunningSimulator,
    SimulatorSettings,
    running_simulator,
)
from orchestrator.wiring import run_cycle
from orchestrator.workflows.cleanup import clean_up
from orchestrator.workflows.poll import poll_due_jobs
from orchestrator.workflows.submit import submit_planned_jobs
from orchestrator.workflows.wanted import record_wanted_days
from tests.e2e.conftest import ACCOUNT, PREFIX, TOKEN, MakeHarness

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
FIRST = dt.date(2026, 1, 1)
LAST = dt.date(2026, 1, 5)
STEP = dt.timedelta(minutes=1)
CREATE_ROUTE = "POST /v1/Exports/{ResourceType}/Jobs"

CONFIG = f"""
[jobs]
name_prefix = "{PREFIX}"
max_resubmits = 1
resubmit_delay = "2m"
stale_after = "2h"

[polling]
initial_delay = "30s"
max_delay = "5m"

[[exports]]
name = "messages"
resource_type = "Messages"
start_day = "{FIRST}"
end_day = "{LAST}"
"""


def _create_statuses(sim: RunningSimulator) -> list[int | None]:
    return [r.status for r in sim.requests("/v1/Exports/{ResourceType}/Jobs", "POST")]


def simulator(clock: ManualClock, faults: FaultSettings | None = None) -> SimulatorSettings:
    return SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=11,
        clock=clock,
        job_base_seconds=30,
        day_seconds=(5, 10),
        faults=faults or FaultSettings(),
    )


async def test_an_ambiguous_create_is_adopted_not_duplicated(make_harness: MakeHarness) -> None:
    """A create whose answer was lost is found by friendly name; Twilio gets one job."""
    clock = ManualClock(START)
    faults = FaultSettings(drop_after_next=1, http_fault_routes=frozenset({CREATE_ROUTE}))
    async with running_simulator(simulator(clock, faults)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        with structlog.testing.capture_logs() as logs:
            await run_cycle(harness.ctx)
            [job] = await harness.ctx.store.list_jobs()
            assert job.state is JobState.SUBMITTING and job.job_sid is None
            clock.advance(STEP)
            await harness.run_until_final(step=STEP, max_cycles=200)
        stats = sim.stats()
    events = [e["event"] for e in logs]
    assert events.index("job.submit_ambiguous") < events.index("job.adopted")
    assert stats["jobs_created"] == 1
    [adopted] = await harness.ctx.store.list_jobs()
    assert adopted.job_sid == stats["jobs"][0]["job_sid"]
    assert adopted.friendly_name == job.friendly_name


async def test_refused_creates_pause_submits_until_twilio_takes_them_again(
    make_harness: MakeHarness,
) -> None:
    """Twilio's day quota refuses a create: its days stay Pending, creates pause (2, 4, 8 min)
    and resume once the quota resets at 00:00 UTC; a refused job uses none of our own budget."""
    late = dt.datetime(2026, 3, 1, 23, 50, tzinfo=dt.UTC)
    clock = ManualClock(late)
    config = CONFIG.replace('stale_after = "2h"', 'stale_after = "2h"\nmax_days_per_job = 2')
    async with running_simulator(simulator(clock, FaultSettings(daily_day_quota=4))) as sim:
        harness = await make_harness(sim.base_url, config, clock)
        store = harness.ctx.store
        with structlog.testing.capture_logs() as logs:
            await run_cycle(harness.ctx)  # 2 + 2 days accepted, the last day refused
            assert _create_statuses(sim) == [201, 201, 400]
            for _ in range(3):  # 23:51, 23:52, 23:53: one retry, at 23:52
                clock.advance(STEP)
                await run_cycle(harness.ctx)
            assert _create_statuses(sim) == [201, 201, 400, 400]
            assert harness.ctx.submits.hold.until == late + 2 * STEP + 4 * STEP
            # 23:56 is refused again (pause to 00:04); then the quota is fresh.
            await harness.run_until_final(step=STEP, max_cycles=300)
    refused = [e for e in logs if e["event"] == "job.submit_failed"]
    assert [e["refusals"] for e in refused] == [1, 2, 3]
    assert refused[0]["code"] is not None
    assert refused[-1]["next_try_at"] == "2026-03-02T00:04:00+00:00"
    assert [e["after_refusals"] for e in logs if e["event"] == "job.submits_resumed"] == [3]
    assert _create_statuses(sim) == [201, 201, 400, 400, 400, 201]
    days = await store.list_days()
    assert len(days) == 5 and all(d.status.is_success for d in days)
    # The three refused 1-day jobs count for nothing against the daemon's own daily budget.
    assert await store.requested_days_since(late.replace(hour=0, minute=0)) == 2 + 2 + 1


async def test_a_crash_between_claim_and_post_resubmits_under_a_new_name(
    make_harness: MakeHarness,
) -> None:
    """A job row whose POST never happened is abandoned; its days go out once, as attempt 2."""
    clock = ManualClock(START)
    async with running_simulator(simulator(clock)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        store = harness.ctx.store
        keys = [DayKey(ResourceType.MESSAGES, FIRST + dt.timedelta(days=i)) for i in range(5)]
        await store.upsert_wanted_days(keys, clock.now())
        name = friendly_name(PREFIX, ResourceType.MESSAGES, FIRST, LAST, 1)
        # The daemon died right after writing its intent: the row exists, the POST never left.
        crashed = await store.claim_days(
            JobRequest(ResourceType.MESSAGES, FIRST, LAST, 1, name), clock.now()
        )
        with structlog.testing.capture_logs() as logs:
            await harness.run_until_final(step=STEP, max_cycles=200)
        stats = sim.stats()
    assert "job.abandoned" in [e["event"] for e in logs]
    assert (await store.get_job(crashed.id)).state is JobState.LOST
    assert [j["friendly_name"] for j in stats["jobs"]] == [
        friendly_name(PREFIX, ResourceType.MESSAGES, FIRST, LAST, 2)
    ]


async def test_days_of_a_job_deleted_by_someone_else_are_done_again(
    make_harness: MakeHarness,
) -> None:
    """When another party deletes our job, its unfinished days go back and complete later."""
    clock = ManualClock(START)
    async with running_simulator(simulator(clock)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        await run_cycle(harness.ctx)
        [job] = await harness.ctx.store.list_jobs()
        assert job.job_sid is not None
        await harness.ctx.client.delete_job(job.job_sid)
        await harness.run_until_final(step=STEP, max_cycles=300)
        stats = sim.stats()
    store = harness.ctx.store
    # Seen either as its days going RunningToBeDeleted/DeletedByUserRequest, or as a 404.
    assert (await store.get_job(job.id)).state in (JobState.DELETED, JobState.LOST)
    assert stats["jobs_created"] == 2
    deleted_statuses = {DayStatus.RUNNING_TO_BE_DELETED, DayStatus.DELETED_BY_USER_REQUEST}
    for day in await store.list_days():
        assert day.status.is_success
        assert day.resubmits == 0  # not the day's failure: no resubmit counted
        history = [c.to_status for c in await store.day_history(day.key)]
        assert history.count(DayStatus.SUBMITTED) == 2
        if (await store.get_job(job.id)).state is JobState.DELETED:
            assert deleted_statuses & set(history)


async def test_a_stale_job_is_deleting_before_its_delete_and_deleted_on_the_next_pass(
    make_harness: MakeHarness,
) -> None:
    """Intent before effect: a failed DELETE leaves the job deleting, holding its days; the next
    pass sends it again, and only then are the days free for a new job."""
    clock = ManualClock(START)
    async with running_simulator(simulator(clock, FaultSettings(stuck_first_jobs=1))) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        store = harness.ctx.store
        await run_cycle(harness.ctx)
        [job] = await store.list_jobs()
        clock.advance(dt.timedelta(hours=2, minutes=1))
        sim.inject("server_error", 3)  # every attempt of the next request fails
        with structlog.testing.capture_logs() as logs:
            assert await clean_up(harness.ctx) == []
        assert "job.delete_failed" in [e["event"] for e in logs]
        deleting = await store.get_job(job.id)
        assert (deleting.state, deleting.next_poll_at) == (JobState.DELETING, None)
        assert {d.job_id for d in await store.list_days()} == {job.id}
        assert await store.pending_days(clock.now()) == []
        assert await submit_planned_jobs(harness.ctx) == []
        [resumed] = await clean_up(harness.ctx)
        assert (resumed.reason, resumed.job_id) == (CleanupReason.RESUME, job.id)
        assert (await store.get_job(job.id)).state is JobState.DELETED
        assert len(await store.pending_days(clock.now())) == 5
        await harness.run_until_final(step=STEP, max_cycles=300)
        stats = sim.stats()
    deletes = [r.status for r in sim.requests("/v1/Exports/Jobs/{JobSid}", "DELETE")]
    assert (
        deletes[:4] == [500, 500, 500, 204]
        or deletes[:4] == [503, 503, 503, 204]
        or (len(deletes) >= 4 and set(deletes[:3]) <= {500, 503} and deletes[3] == 204)
    )
    assert stats["jobs_created"] == 2


async def test_a_delete_that_reached_twilio_before_a_crash_is_sent_again_and_recorded(
    make_harness: MakeHarness,
) -> None:
    """A job left deleting whose DELETE did go through is resumed: the second DELETE confirms
    it (204 or 404), its days go back once, and nothing else is deleted."""
    clock = ManualClock(START)
    async with running_simulator(simulator(clock, FaultSettings(stuck_first_jobs=1))) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        store = harness.ctx.store
        await run_cycle(harness.ctx)
        [job] = await store.list_jobs()
        assert job.job_sid is not None
        # The daemon recorded its intent, sent the DELETE, and died before recording the answer.
        await store.settle_job(
            job.id, functools.partial(start_deleting, now=clock.now(), reason="cleanup: stale")
        )
        await harness.ctx.client.delete_job(job.job_sid)
        with structlog.testing.capture_logs() as logs:
            [resumed] = await clean_up(harness.ctx)
        assert resumed.reason is CleanupReason.RESUME
        [deleted] = [e for e in logs if e["event"] == "job.deleted"]
        assert (deleted["job_sid"], deleted["reason"]) == (job.job_sid, "resume")
        assert (await store.get_job(job.id)).state is JobState.DELETED
        pending = await store.pending_days(clock.now())
        assert len(pending) == 5
        for day in pending:
            history = await store.day_history(day.key)
            assert [c.to_status for c in history][-2:] == [DayStatus.SUBMITTED, DayStatus.PENDING]
        assert await clean_up(harness.ctx) == []


async def test_a_day_that_keeps_failing_gives_up_and_retry_brings_it_back(
    make_harness: MakeHarness,
) -> None:
    """After max_resubmits the day is GaveUp (logged at error); retry returns it to Pending."""
    clock = ManualClock(START)
    bad = DayKey(ResourceType.MESSAGES, dt.date(2026, 1, 3))
    faults = FaultSettings(always_fail_days=frozenset({(bad.resource_type, bad.day)}))
    async with running_simulator(simulator(clock, faults)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        store = harness.ctx.store
        with structlog.testing.capture_logs() as logs:
            await harness.run_until_final(step=STEP, max_cycles=300)
        day = await store.get_day(bad)
        assert day is not None and day.status is DayStatus.GAVE_UP
        gave_up = [
            e for e in logs if e["event"] == "day.status_changed" and e["to_status"] == "GaveUp"
        ]
        assert [(e["day"], e["log_level"]) for e in gave_up] == [("2026-01-03", "error")]
        # Tried twice: the first job and one resubmission of the day alone.
        assert [c.to_status for c in await store.day_history(bad)].count(DayStatus.FAILED) == 2

        await store.retry_days([bad], clock.now())
        day = await store.get_day(bad)
        assert day is not None and day.status is DayStatus.PENDING and day.resubmits == 0
        await run_cycle(harness.ctx)
        day = await store.get_day(bad)
        assert day is not None and day.status is DayStatus.SUBMITTED
        assert sim.stats()["jobs_created"] == 3


async def test_rejected_credentials_stop_all_calls_to_twilio(make_harness: MakeHarness) -> None:
    """After a 401 the workflows stop calling Twilio instead of hammering it."""
    clock = ManualClock(START)
    async with running_simulator(simulator(clock)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock, token="wrong-token-123456")
        with structlog.testing.capture_logs() as logs:
            for _ in range(20):
                await run_cycle(harness.ctx)
                clock.advance(STEP)
        stats = sim.stats()
    assert not harness.ctx.health.healthy
    assert [e["event"] for e in logs].count("twilio.auth_failed") == 1
    refused = sum(counts.get("401", 0) for counts in stats["requests"].values())
    assert refused == 1
    # Nothing was lost: the days wait, Pending, in no job.
    days = await harness.ctx.store.list_days()
    assert len(days) == 5 and {d.status for d in days} == {DayStatus.PENDING}
    assert all(d.job_id is None for d in days)


async def test_the_poll_strategy_of_the_policies_decides_every_next_poll(
    make_harness: MakeHarness,
) -> None:
    """Another ``PollStrategy`` in the context's policies chooses the first poll after a submit
    and every later one, seeing the job and this poll's facts."""
    clock = ManualClock(START)
    seen: list[tuple[int, PollFacts]] = []

    class InTwentySeconds:
        def next_poll_at(
            self, job: Job, facts: PollFacts, now: dt.datetime, rand: float
        ) -> dt.datetime:
            seen.append((job.id, facts))
            return now + dt.timedelta(seconds=20)

    async with running_simulator(simulator(clock)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        ctx = dataclasses.replace(
            harness.ctx, policies=dataclasses.replace(harness.ctx.policies, poll=InTwentySeconds())
        )
        await record_wanted_days(ctx)
        await submit_planned_jobs(ctx)
        [job] = await ctx.store.list_jobs()
        assert job.next_poll_at == clock.now() + dt.timedelta(seconds=20)
        clock.set(job.next_poll_at)  # the first poll: the job is still working
        assert await poll_due_jobs(ctx) == 1
        [polled] = await ctx.store.list_jobs()
    assert [job_id for job_id, _ in seen] == [job.id, job.id]
    facts = seen[1][1]
    assert facts.eta is not None and facts.submitted_at == job.submitted_at
    assert polled.next_poll_at == clock.now() + dt.timedelta(seconds=20)
