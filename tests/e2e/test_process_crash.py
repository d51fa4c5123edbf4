"""SIGKILL at random moments of real ``orchestrator run`` processes, then restart: never two live
Twilio jobs for one day, no duplicate friendly names, and no recorded transition lost."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import json
import random
import time
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
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
from orchestrator.simulator import FaultSettings, SimulatorSettings, running_simulator
from orchestrator.store.engine import create_engine
from orchestrator.store.migration import upgrade_to_head
from orchestrator.store.repository import Store
from tests.e2e.process_support import (
    ACCOUNT,
    PREFIX,
    START,
    TOKEN,
    TOKEN_ENV,
    DaemonProcess,
    History,
    InvariantWatch,
    chain_problems,
    double_booked,
    duplicate_names,
    read_histories,
    shared_clock,
    shrunk,
    simulator_settings,
    write_config,
)

SEEDS = range(10)
# Seeds run two at a time: most of a seed's time is spent waiting on simulated time.
PARALLEL = 2
SPEED = 800.0
FINAL_STATUSES = {"Completed", "CompletedEmptyRecords", "GaveUp"}

CONFIG = f"""
[jobs]
# Faults and SIGKILLs make unclear creates common; the per-day bound is tested in test_edges.py.
max_ambiguous_creates_per_day = 50
name_prefix = "{PREFIX}"
max_days_per_job = 5
max_live_jobs = 4
max_resubmits = 6
resubmit_delay = "1m"
stale_after = "15m"

[polling]
initial_delay = "20s"
max_delay = "2m"

[cleanup]
interval = "1m"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-24"

[[exports]]
name = "calls-recent"
resource_type = "Calls"
last_days = 6
"""


FAULTS = FaultSettings(
    failed_day_fraction=0.08,
    error_during_run_fraction=0.1,
    stuck_first_jobs=1,
    rate_limit_fraction=0.03,
    server_error_fraction=0.02,
    drop_fraction=0.01,
    drop_after_fraction=0.02,
)


async def crash_and_recover(seed: int, tmp_path: Path) -> dict[str, float]:
    """One seed: 2-4 SIGKILLs at random moments, checks after each, then a clean final run."""
    rand = random.Random(seed)
    clock = shared_clock(SPEED)
    settings = simulator_settings(
        clock,
        seed=seed,
        faults=FAULTS,
        max_running_jobs=2,
        day_seconds=(3, 12),
        job_base_seconds=20,
    )
    async with running_simulator(settings) as sim:
        config = write_config(tmp_path, sim.base_url, CONFIG)
        database = tmp_path / "state" / "orchestrator.sqlite"
        logs = tmp_path / "logs"
        environ = {TOKEN_ENV: TOKEN}
        seen: History = {}
        kills = rand.randint(2, 4)
        early = 0
        async with InvariantWatch(sim) as watch:
            for kill in range(kills):
                daemon = await DaemonProcess.start(config, clock, logs, environ=environ)
                try:
                    await asyncio.sleep(rand.uniform(0.4, 1.8))
                finally:
                    await daemon.kill()
                assert daemon.proc.returncode is not None
                assert not watch.violations, f"seed {seed} kill {kill}: {watch.violations[0]}"
                if not any(e["event"] == "daemon.started" for e in daemon.events()):
                    early += 1
                if not database.exists() or not daemon.named("daemon.migrated"):
                    continue
                statuses, history = await read_histories(database)
                problems = chain_problems(statuses, history)
                assert not problems, (seed, kill, problems)
                assert not shrunk(seen, history), (seed, kill, shrunk(seen, history))
                seen = history
            daemon = await DaemonProcess.start(
                config, clock, logs, exit_when_done=True, environ=environ
            )
            try:
                code = await daemon.wait(45)
            finally:
                await daemon.kill()
            assert code == 0, daemon.stderr.read_text()
        assert not watch.violations, f"seed {seed}: {watch.violations[0]}"
        assert not duplicate_names(sim), f"seed {seed}: {duplicate_names(sim)}"
        stats = sim.stats()
    statuses, history = await read_histories(database)
    assert statuses and set(statuses.values()) <= FINAL_STATUSES, (seed, statuses)
    assert not chain_problems(statuses, history), (
        seed,
        chain_problems(statuses, history),
    )
    assert not shrunk(seen, history), (seed, shrunk(seen, history))
    assert {rt for rt, _ in statuses} == {ResourceType.MESSAGES.value, ResourceType.CALLS.value}
    events = [e for path in sorted(logs.glob("run-*.out")) for e in _events(path)]
    return {
        "kills": kills,
        "kills_in_start_up": early,
        "adopted": sum(e["event"] == "job.adopted" for e in events),
        "abandoned": sum(e["event"] == "job.abandoned" for e in events),
        "samples": watch.samples,
        "jobs": stats["jobs_created"],
    }


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.slow
async def test_sigkill_at_random_moments_keeps_one_live_job_per_day(tmp_path: Path) -> None:
    """Many seeds of SIGKILL-and-restart never double-book a day nor lose a transition."""
    began = time.monotonic()
    lanes = asyncio.Semaphore(PARALLEL)

    async def one(seed: int) -> dict[str, float]:
        async with lanes:
            return await crash_and_recover(seed, tmp_path / f"seed-{seed}")

    results = await asyncio.gather(*(one(seed) for seed in SEEDS))
    print(results, f"{time.monotonic() - began:.1f} s")
    # The crash-recovery paths were taken: creates were found again or given up on.
    assert sum(r["adopted"] + r["abandoned"] for r in results) > 0


async def test_the_double_booking_check_sees_two_live_jobs_for_one_day() -> None:
    """The invariant check is not vacuous: two live simulator jobs on one day are reported."""
    settings = SimulatorSettings(account_sid=ACCOUNT, auth_token=TOKEN, clock=ManualClock(START))
    async with running_simulator(settings) as sim:
        day = dt.date(2026, 1, 3)
        first = sim.engine.create(ResourceType.CALLS, day, day, "a")
        assert double_booked(sim) == {}
        second = sim.engine.create(ResourceType.CALLS, day - dt.timedelta(days=1), day, "a")
        assert double_booked(sim) == {("Calls", day): [first.job_sid, second.job_sid]}
        assert duplicate_names(sim) == ["a"]
        sim.engine.delete(first.job_sid)
        assert double_booked(sim) == {}


async def test_a_batch_writes_each_days_steps_in_order(tmp_path: Path) -> None:
    """Two days failing in one poll from different statuses keep their history in chain order."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        await upgrade_to_head(engine)
        store = Store(engine, ACCOUNT)
        first, second = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
        now = START
        await store.upsert_wanted_days(
            [DayKey(ResourceType.MESSAGES, d) for d in (first, second)], now
        )
        name = friendly_name(PREFIX, ResourceType.MESSAGES, first, second, 1)
        request = JobRequest(ResourceType.MESSAGES, first, second, 1, name)
        job = await store.claim_days(request, now)
        await store.record_job_sid(job.id, "JS" + "a" * 32, now, now)

        async def report(statuses: dict[dt.date, DayStatus]) -> None:
            await store.settle_job(
                job.id,
                functools.partial(
                    settle_report,
                    reported=statuses,
                    resubmit=ResubmitPolicy(3, dt.timedelta(minutes=1)),
                    now=now,
                    observed_by=ObservedBy.POLL,
                ),
            )

        await report({first: DayStatus.RUNNING, second: DayStatus.ERROR_DURING_RUN})
        await report({first: DayStatus.FAILED, second: DayStatus.FAILED})
        for day in (first, second):
            history = await store.day_history(DayKey(ResourceType.MESSAGES, day))
            steps = [(c.from_status, c.to_status) for c in history]
            assert all(a[1] == b[0] for a, b in itertools.pairwise(steps)), steps
    finally:
        await engine.dispose()
