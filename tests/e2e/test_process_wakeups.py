"""Passes run when there is work, not on the minute: a real ``orchestrator run`` submits right
after start-up, resubmits a Failed day as soon as its resubmit delay ends, and archives a day
as soon as a poll finds it Completed (real time: the submit and archive ticks are a minute)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from orchestrator.domain.model import ResourceType
from orchestrator.simulator import FaultSettings, running_simulator
from tests.e2e.process_support import (
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    DaemonProcess,
    Event,
    daemon_process,
    shared_clock,
    simulator_settings,
    write_config,
)

# Real time: a minute's tick is a minute.
SPEED = 1.0
RESUBMIT_DELAY = 5.0
FAILING_DAY = dt.date(2026, 1, 2)

BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 4
max_live_jobs = 2
resubmit_delay = "{RESUBMIT_DELAY:g}s"

[polling]
initial_delay = "1s"
max_delay = "2s"

[[exports]]
name = "messages-two-days"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-02"
"""


async def seen_at(daemon: DaemonProcess, check: str, test: object, within: float) -> float:
    """The monotonic moment (to 0.05 s) an event passing ``test`` first shows in the log."""
    assert callable(test)

    def found(events: list[Event]) -> bool:
        return any(e.get("event") == check and test(e) for e in events)

    await daemon.wait_for(found, within=within)
    return time.monotonic()


async def test_submit_right_after_start_and_resubmit_when_the_delay_ends(tmp_path: Path) -> None:
    """First POST within seconds of start (not a minute later), the Failed day's second job
    within a few seconds of its not-before time, and each Completed day archived promptly."""
    clock = shared_clock(SPEED)
    faults = FaultSettings(
        fail_first_attempt_days=frozenset({(ResourceType.MESSAGES, FAILING_DAY)})
    )
    settings = simulator_settings(
        clock, faults=faults, job_base_seconds=1, day_seconds=(0.5, 1.0), retry_delay_seconds=1
    )
    async with running_simulator(settings) as sim:
        body = BODY + f'\n[archive]\ndirectory = "{tmp_path / "archive"}"\n'
        config = write_config(tmp_path, sim.base_url, body)
        async with daemon_process(
            config, clock, tmp_path / "logs", environ={TOKEN_ENV: TOKEN}
        ) as daemon:
            await daemon.wait_for("daemon.started", within=60)
            started = time.monotonic()
            first = await seen_at(daemon, "job.submitted", lambda e: e["attempt"] == 1, 60)
            completed = await seen_at(
                daemon, "day.status_changed", lambda e: e.get("to_status") == "Completed", 60
            )
            completed_day = next(
                e["day"]
                for e in daemon.events()
                if e.get("event") == "day.status_changed" and e.get("to_status") == "Completed"
            )
            archived = await seen_at(
                daemon, "archive.stored", lambda e: e.get("day") == completed_day, 60
            )
            failed = await seen_at(
                daemon,
                "day.status_changed",
                lambda e: e.get("to_status") == "Failed" and e.get("day") == str(FAILING_DAY),
                60,
            )
            resubmitted = await seen_at(daemon, "job.submitted", lambda e: e["attempt"] == 2, 90)

    # The 1-minute ticks would have made each of these wait up to 60 s.
    assert first - started < 10, f"first submit {first - started:.1f} s after start"
    assert archived - completed < 10, f"archived {archived - completed:.1f} s after the poll"
    not_before = failed + RESUBMIT_DELAY
    # The Failed status was seen within 0.05 s of its poll, so the delay ends at most then.
    assert resubmitted - not_before < 8, f"resubmitted {resubmitted - not_before:.1f} s late"
