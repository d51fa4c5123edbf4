"""A long queue is progress: a job moving up Twilio's queue is not stale; one that does not
move for ``stale_after`` is. Workflows against the simulator (one running slot) on a
ManualClock."""

from __future__ import annotations

import datetime as dt
import itertools

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.model import DayStatus, JobState
from orchestrator.simulator import FaultSettings, SimulatorSettings, running_simulator
from tests.e2e.conftest import ACCOUNT, PREFIX, TOKEN, MakeHarness

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
STALE_AFTER = dt.timedelta(hours=2)

CONFIG = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 1
stale_after = "2h"

[polling]
initial_delay = "30s"
max_delay = "5m"

[[exports]]
name = "messages"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-05"
"""


async def test_jobs_moving_up_a_long_queue_are_kept_and_a_stuck_one_is_deleted(
    make_harness: MakeHarness,
) -> None:
    """One running slot, jobs of 70 minutes: the last ones wait over 2 h (stale_after) with no
    day change while their queue position falls, and are kept; the stuck job, whose position
    never falls, is deleted as stale."""
    clock = ManualClock(START)
    settings = SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=3,
        clock=clock,
        max_running_jobs=1,
        job_base_seconds=70 * 60,
        day_seconds=(60, 60),
        faults=FaultSettings(stuck_first_jobs=1),
    )
    async with running_simulator(settings) as sim:
        harness = await make_harness(sim.base_url, CONFIG, clock)
        with structlog.testing.capture_logs() as logs:
            await harness.run_until_final(step=dt.timedelta(minutes=2), max_cycles=400)
        stats = sim.stats()
        store = harness.ctx.store
        jobs = await store.list_jobs()
        # (job SID, time from Submitted to the day's next change) for every job a day was in.
        waits: list[tuple[str | None, dt.timedelta]] = []
        for day in await store.list_days():
            history = await store.day_history(day.key)
            for change, following in itertools.pairwise(history):
                if change.to_status is DayStatus.SUBMITTED:
                    waits.append((change.job_sid, following.observed_at - change.observed_at))
    stuck_sid = stats["jobs"][0]["job_sid"]
    stale = [e for e in logs if e["event"] == "job.deleted" and e["reason"] == "stale"]
    assert [e["job_sid"] for e in stale] == [stuck_sid]
    # Some jobs waited in the queue, with no day change, longer than stale_after: kept.
    assert sum(wait > STALE_AFTER for sid, wait in waits if sid != stuck_sid) >= 2
    by_sid = {j.job_sid: j for j in jobs}
    assert by_sid[stuck_sid].state is JobState.DELETED
    assert all(j.state is not JobState.LOST for j in jobs)
