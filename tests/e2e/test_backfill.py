"""End to end against the simulator: declared ranges reach all-final, and the account stays tidy."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    JobState,
    ResourceType,
    friendly_name,
)
from orchestrator.simulator import FaultSettings, SimulatorSettings, running_simulator
from tests.e2e.conftest import ACCOUNT, PREFIX, TOKEN, MakeHarness

START = dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.UTC)
FIXED_FIRST = dt.date(2026, 1, 1)
FIXED_LAST = dt.date(2026, 2, 14)  # 45 days
FAILING_DAY = dt.date(2026, 2, 5)  # in the second Messages job (the first is stuck)

CONFIG = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 31
max_live_jobs = 6
max_resubmits = 2
resubmit_delay = "5m"
daily_day_budget = 50
stale_after = "2h"

[polling]
initial_delay = "30s"
max_delay = "10m"

[[exports]]
name = "messages-q1"
resource_type = "Messages"
start_day = "{FIXED_FIRST}"
end_day = "{FIXED_LAST}"

[[exports]]
name = "calls-recent"
resource_type = "Calls"
last_days = 10
"""


def simulator_settings(clock: ManualClock) -> SimulatorSettings:
    return SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=3,
        clock=clock,
        max_running_jobs=2,
        job_base_seconds=60,
        day_seconds=(5, 30),
        faults=FaultSettings(
            fail_first_attempt_days=frozenset({(ResourceType.MESSAGES, FAILING_DAY)}),
            # The foreign job, the orphan and our first job never progress: cleanup must
            # delete ours as stale and leave the foreign one alone, stuck or not.
            stuck_first_jobs=3,
        ),
    )


async def test_backfill_reaches_all_final_and_keeps_the_account_tidy(
    make_harness: MakeHarness,
) -> None:
    """45 fixed days + a 10-day sliding window complete despite a Failed day and a stuck job."""
    clock = ManualClock(START)
    async with running_simulator(simulator_settings(clock)) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        client = harness.ctx.client
        # Someone else's job, and an orphan of ours (named by us, unknown to our store).
        foreign = await client.create_job(
            ResourceType.MESSAGES, FIXED_FIRST, FIXED_FIRST, "finance-team-export"
        )
        orphan_name = friendly_name(PREFIX, ResourceType.CALLS, FIXED_FIRST, FIXED_FIRST, 7)
        orphan = await client.create_job(ResourceType.CALLS, FIXED_FIRST, FIXED_FIRST, orphan_name)

        with structlog.testing.capture_logs() as logs:
            cycles = await harness.run_until_final(step=dt.timedelta(minutes=2), max_cycles=3000)
        store = harness.ctx.store
        stats = sim.stats()

    days = await store.list_days()
    # The sliding window may advance past midnight: a day once wanted stays wanted.
    assert 45 + 10 <= len(days) <= 45 + 12
    assert {d.status for d in days} <= {DayStatus.COMPLETED, DayStatus.COMPLETED_EMPTY_RECORDS}

    remote = {job["job_sid"]: job for job in stats["jobs"]}
    # Only our jobs are ever deleted: the foreign one stays, the orphan goes.
    assert remote[foreign.job_sid]["deleted"] is False
    assert remote[orphan.job_sid]["deleted"] is True

    jobs = await store.list_jobs()
    # The stuck first job was deleted as stale and its days done by another job.
    ours = {j.job_sid: j for j in jobs}
    stuck = [sid for sid, job in remote.items() if job["stuck"] and sid in ours]
    assert len(stuck) == 1
    assert ours[stuck[0]].state is JobState.DELETED
    stale_deletes = [e for e in logs if e["event"] == "job.deleted" and e.get("reason") == "stale"]
    assert [e["job_sid"] for e in stale_deletes] == [stuck[0]]

    # The Failed day was resubmitted alone, once, and completed.
    history = await store.day_history(DayKey(ResourceType.MESSAGES, FAILING_DAY))
    assert DayStatus.FAILED in [c.to_status for c in history]
    assert history[-1].to_status.is_success
    alone = [
        j
        for j in jobs
        if j.resource_type is ResourceType.MESSAGES and j.start_day == j.end_day == FAILING_DAY
    ]
    assert len(alone) == 1
    failed_day = next(
        d for d in days if d.resource_type is ResourceType.MESSAGES and d.day == FAILING_DAY
    )
    assert failed_day.resubmits == 1

    # The daily budget held on every UTC day.
    per_day = Counter[dt.date]()
    for job in jobs:
        per_day[job.created_at.date()] += job.day_count
    assert per_day and max(per_day.values()) <= 50
    # Few, large jobs: far fewer jobs than days.
    assert len(jobs) <= 10

    # Every transition was logged as one day.status_changed event.
    changed = [e for e in logs if e["event"] == "day.status_changed"]
    transitions = 0
    for d in days:
        transitions += len(await store.day_history(DayKey(d.resource_type, d.day)))
    # Each day's first transition (None -> Pending) is recorded when it is first wanted.
    assert len(changed) == transitions - len(days)
    assert cycles > 0
