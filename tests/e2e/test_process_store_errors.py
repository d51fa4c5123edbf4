"""A pass that meets a store error of its own (the database answers, but with an error) is one
``pass.store_failed`` event naming the pass, not a traceback, and the daemon goes on: once the
cause is gone the backfill ends as usual."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from pathlib import Path

import structlog

from orchestrator.daemon import Daemon
from orchestrator.simulator import running_simulator
from tests.e2e.process_support import (
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    shared_clock,
    simulator_settings,
    write_config,
)

SPEED = 600.0
BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 4
max_live_jobs = 2

[polling]
initial_delay = "20s"
max_delay = "1m"

[cleanup]
interval = "2m"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-08"
"""


def events_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


async def wait_until(stream: io.StringIO, run: asyncio.Task[int], check: object) -> None:
    assert callable(check)
    deadline = time.monotonic() + 60
    while not check(events_of(stream)):
        assert not run.done(), stream.getvalue()[-3000:]
        assert time.monotonic() < deadline, stream.getvalue()[-3000:]
        await asyncio.sleep(0.05)


def rename(database: Path, old: str, new: str) -> None:
    with sqlite3.connect(database, timeout=30) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


async def test_a_store_error_in_a_pass_is_one_event_and_the_daemon_goes_on(
    tmp_path: Path,
) -> None:
    """The jobs table gone for a while: pass.store_failed events (no scheduler.pass_failed
    traceback, no store.unavailable: the database answers); back, and every day ends final."""
    clock = shared_clock(SPEED)
    stream = io.StringIO()
    database = tmp_path / "state" / "orchestrator.sqlite"
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, BODY)
        daemon = Daemon(
            config,
            clock=clock,
            environ={TOKEN_ENV: TOKEN},
            log_stream=stream,
            exit_when_done=True,
        )
        run = asyncio.create_task(daemon.run())
        try:
            await wait_until(stream, run, lambda es: any(e["event"] == "job.submitted" for e in es))
            await asyncio.to_thread(rename, database, "jobs", "jobs_gone")
            await wait_until(
                stream,
                run,
                lambda es: sum(1 for e in es if e["event"] == "pass.store_failed") >= 2,
            )
            await asyncio.to_thread(rename, database, "jobs_gone", "jobs")
            assert await asyncio.wait_for(run, 120) == 0
        finally:
            daemon.request_stop()
            structlog.reset_defaults()
    events = events_of(stream)
    failed = [e for e in events if e["event"] == "pass.store_failed"]
    assert all("no such table" in str(e["error"]) and e["name"] for e in failed)
    assert not [e for e in events if e["event"] == "scheduler.pass_failed"]
    assert not [e for e in events if e["event"] == "store.unavailable"]
    assert "Traceback" not in stream.getvalue()
    assert any(e["event"] == "daemon.all_days_final" for e in events)
