"""Signals to a real ``orchestrator run`` process: SIGTERM drains and exits 0; SIGHUP reloads a
good config and keeps the old one, whole, on a bad one."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
import structlog

from orchestrator.daemon import Daemon
from orchestrator.simulator import FaultKind, FaultSettings, RunningSimulator, running_simulator
from tests.e2e.process_support import (
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    chain_problems,
    daemon_process,
    day_statuses,
    read_histories,
    shared_clock,
    simulator_settings,
    wait_until_final,
    write_config,
)

SPEED = 600.0
ENV = {TOKEN_ENV: TOKEN}

JOBS = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 4
max_live_jobs = 2

[polling]
initial_delay = "20s"
max_delay = "1m"

[cleanup]
interval = "2m"
"""
MESSAGES = """
[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-16"
"""
CALLS = """
[[exports]]
name = "calls-recent"
resource_type = "Calls"
last_days = 5
"""


async def wait_for_slow_request(sim: RunningSimulator) -> None:
    """Until the simulator has started holding back an answer."""
    deadline = time.monotonic() + 10
    while sim.faults.fired[FaultKind.SLOW] == 0:
        assert time.monotonic() < deadline, "no request met the slow fault"
        await asyncio.sleep(0.01)


CONFERENCES = """
[[exports]]
name = "conferences-recent"
resource_type = "Conferences"
last_days = 3
"""


async def wait_for_line(stream: io.StringIO, text: str) -> None:
    """Until the in-process daemon's log holds ``text``."""
    deadline = time.monotonic() + 10
    while text not in stream.getvalue():
        assert time.monotonic() < deadline, f"no {text!r} in the log"
        await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_sigterm_drains_exits_zero_and_a_restart_completes(tmp_path: Path) -> None:
    """SIGTERM mid-request: exit 0 within 10 s, daemon.stopped drained=true; a restart finishes."""
    clock = shared_clock(SPEED)
    faults = FaultSettings(slow_seconds=1.5)
    async with running_simulator(simulator_settings(clock, faults=faults)) as sim:
        config = write_config(tmp_path, sim.base_url, JOBS + MESSAGES)
        database = tmp_path / "state" / "orchestrator.sqlite"
        async with daemon_process(config, clock, tmp_path / "logs", environ=ENV) as daemon:
            await daemon.wait_for("job.submitted", within=20)
            # The next answers come 1.5 s late: SIGTERM lands while a pass waits on one.
            sim.inject(FaultKind.SLOW, 3)
            await wait_for_slow_request(sim)
            began = time.monotonic()
            daemon.signal(signal.SIGTERM)
            code = await daemon.wait(10)
            took = time.monotonic() - began
            assert 0.5 < took < 10, took
            assert code == 0
            stopped = daemon.named("daemon.stopped")
            assert [(e["drained"], e["exit_code"]) for e in stopped] == [(True, 0)]
            assert daemon.stderr.read_text() == ""
        # Not everything was done at SIGTERM, and what was recorded is consistent.
        statuses, history = await read_histories(database)
        assert set(statuses.values()) - {"Completed", "CompletedEmptyRecords"}
        assert not chain_problems(statuses, history)
        async with daemon_process(
            config, clock, tmp_path / "logs", exit_when_done=True, environ=ENV
        ) as again:
            assert await again.wait(30) == 0
        statuses, history = await read_histories(database)
        assert len(statuses) == 16
        assert set(statuses.values()) <= {"Completed", "CompletedEmptyRecords"}
        assert not chain_problems(statuses, history)


@pytest.mark.slow
async def test_sighup_with_a_good_config_adds_the_new_export(tmp_path: Path) -> None:
    """SIGHUP after adding an export: config.reloaded, then the new export's days get done."""
    clock = shared_clock(SPEED)
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, JOBS + MESSAGES)
        database = tmp_path / "state" / "orchestrator.sqlite"
        async with daemon_process(config, clock, tmp_path / "logs", environ=ENV) as daemon:
            await daemon.wait_for("daemon.started", within=20)
            write_config(tmp_path, sim.base_url, JOBS + MESSAGES + CALLS)
            daemon.signal(signal.SIGHUP)
            events = await daemon.wait_for("config.reloaded", within=10)
            assert [e["exports"] for e in events if e["event"] == "config.reloaded"] == [2]
            calls = await wait_until_final(
                database, daemon, resource_type="Calls", at_least=5, within=30
            )
            assert len(calls) >= 5
            await wait_until_final(database, daemon, at_least=16 + 5, within=30)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(10) == 0
            assert not daemon.named("config.reload_failed")


@pytest.mark.slow
async def test_sighup_with_a_bad_config_keeps_the_old_one(tmp_path: Path) -> None:
    """SIGHUP with a syntax error, then a bad key: one-line config.reload_failed each, the old
    config keeps working to the end, and SIGTERM still exits 0."""
    clock = shared_clock(SPEED)
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, JOBS + MESSAGES)
        good = config.read_text()
        database = tmp_path / "state" / "orchestrator.sqlite"
        async with daemon_process(config, clock, tmp_path / "logs", environ=ENV) as daemon:
            await daemon.wait_for("job.submitted", within=20)
            # Both bad versions also add an export: it must never be applied.
            config.write_text(good + CALLS + "\n[jobs\n")
            daemon.signal(signal.SIGHUP)
            await daemon.wait_for("config.reload_failed", within=10)
            config.write_text(
                good.replace("max_live_jobs = 2", "max_live_jobs = 2\nmax_live_jobz = 3") + CALLS
            )
            daemon.signal(signal.SIGHUP)
            events = await daemon.wait_for(
                lambda es: sum(e["event"] == "config.reload_failed" for e in es) == 2, within=10
            )
            failed = [e for e in events if e["event"] == "config.reload_failed"]
            assert failed[0]["error"].startswith(f"{config}: invalid TOML")
            assert failed[1]["error"].startswith(f"{config}:jobs.max_live_jobz: unknown key")
            assert all("\n" not in e["error"] and e["kept"] == str(config) for e in failed)
            assert all(e["level"] == "error" for e in failed)

            statuses = await wait_until_final(database, daemon, at_least=16, within=30)
            assert {rt for rt, _ in statuses} == {"Messages"}
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(10) == 0
            assert not daemon.named("config.reloaded")
        assert {rt for rt, _ in await day_statuses(database)} == {"Messages"}


@pytest.mark.slow
async def test_sighup_while_a_pass_talks_to_twilio_does_not_break_it(tmp_path: Path) -> None:
    """A reload while a submit pass waits on its first create: the pass goes on, nothing fails."""
    clock = shared_clock(SPEED)
    faults = FaultSettings(
        slow_next=1,
        slow_seconds=1.0,
        http_fault_routes=frozenset({"POST /v1/Exports/{ResourceType}/Jobs"}),
    )
    async with running_simulator(simulator_settings(clock, faults=faults)) as sim:
        config = write_config(tmp_path, sim.base_url, JOBS + MESSAGES)
        database = tmp_path / "state" / "orchestrator.sqlite"
        async with daemon_process(config, clock, tmp_path / "logs", environ=ENV) as daemon:
            await wait_for_slow_request(sim)
            daemon.signal(signal.SIGHUP)
            await daemon.wait_for("config.reloaded", within=10)
            await wait_until_final(database, daemon, at_least=16, within=30)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(10) == 0
        events = daemon.events()
        assert [e for e in events if e["level"] == "error"] == []
        assert not [e for e in events if e["event"] in ("job.abandoned", "job.adopted")]


async def test_a_sighup_during_a_reload_is_not_lost(tmp_path: Path) -> None:
    """A second SIGHUP while the first reload is still running applies the newer file too."""
    clock = shared_clock(SPEED)
    stream = io.StringIO()
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, JOBS + MESSAGES)
        daemon = Daemon(config, clock=clock, environ={TOKEN_ENV: TOKEN}, log_stream=stream)
        run = asyncio.create_task(daemon.run())
        try:
            await wait_for_line(stream, "daemon.started")
            write_config(tmp_path, sim.base_url, JOBS + MESSAGES + CALLS)
            daemon.request_reload()
            # The reload has read the file and now waits on the database ...
            await asyncio.sleep(0)
            # ... when the operator edits again and signals again.
            write_config(tmp_path, sim.base_url, JOBS + MESSAGES + CALLS + CONFERENCES)
            daemon.request_reload()
            await wait_for_line(stream, '"exports": 3')
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(run, 10) == 0
            structlog.reset_defaults()
        reloads = [
            e
            for e in map(json.loads, stream.getvalue().splitlines())
            if e["event"] == "config.reloaded"
        ]
        assert [e["exports"] for e in reloads] == [2, 3]


async def test_signals_during_start_up_are_kept_for_when_it_runs(tmp_path: Path) -> None:
    """SIGHUP and SIGTERM arriving before the daemon runs (e.g. during migrations) neither kill
    the process nor get lost: the file is read again once running, then the daemon stops."""
    clock = shared_clock(SPEED)
    stream = io.StringIO()
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, JOBS + MESSAGES)
        daemon = Daemon(config, clock=clock, environ={TOKEN_ENV: TOKEN}, log_stream=stream)
        run = asyncio.create_task(daemon.run())
        try:
            await asyncio.sleep(0)  # run() has read the config and is migrating the database
            assert "daemon.started" not in stream.getvalue()
            write_config(tmp_path, sim.base_url, JOBS + MESSAGES + CALLS)
            os.kill(os.getpid(), signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGTERM)
            assert await asyncio.wait_for(run, 10) == 0
        finally:
            daemon.request_stop()
            structlog.reset_defaults()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    names = [e["event"] for e in events]
    assert names.index("daemon.stopping") < names.index("daemon.migrated")  # during start-up
    assert names.index("daemon.started") < names.index("config.reloaded")
    assert [e["exports"] for e in events if e["event"] == "config.reloaded"] == [2]
    assert names[-1] == "daemon.stopped"
    assert [e for e in events if e["level"] == "error"] == []
