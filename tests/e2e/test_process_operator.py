"""Operator commands run as their own processes while ``orchestrator run`` writes the same
SQLite database: they answer, and neither side fails with "database is locked"."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from orchestrator.simulator import running_simulator
from tests.e2e.process_support import (
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    child_environ,
    daemon_process,
    shared_clock,
    simulator_settings,
    write_config,
)

BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 3
max_live_jobs = 3

[polling]
initial_delay = "20s"
max_delay = "1m"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-20"
"""


async def _cli(*args: str) -> tuple[int, str, str]:
    """``orchestrator ARGS`` as a child process, with no token in its environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_environ(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_status_history_and_retry_work_while_the_daemon_runs(tmp_path: Path) -> None:
    """status --json, history and retry, over and over during a busy run: exit 0 each time,
    the answers parse, and the daemon logs no error."""
    clock = shared_clock(600.0)
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, BODY)
        async with daemon_process(
            config, clock, tmp_path / "logs", environ={TOKEN_ENV: TOKEN}
        ) as daemon:
            await daemon.wait_for("daemon.started", within=20)
            seen_statuses: set[str] = set()
            for _ in range(3):
                code, out, err = await _cli("status", "--config", str(config), "--json")
                assert (code, err) == (0, ""), err
                document = json.loads(out)
                seen_statuses |= {d["status"] for d in document["days"]}
                code, out, err = await _cli(
                    "history", "--config", str(config), "Messages", "2026-01-01"
                )
                assert (code, err) == (0, ""), err
                assert "-> Pending" in out
                code, out, err = await _cli(
                    "retry", "--config", str(config), "--export", "messages-jan"
                )
                assert code == 0, err
            code, out, err = await _cli("status", "--config", str(config))
            assert code == 0 and "messages-jan" in out
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(10) == 0
        # The run was busy while the commands ran: they saw days in more than one state.
        assert len(seen_statuses) >= 2
        logs = (tmp_path / "logs").glob("*")
        errors = [
            line
            for path in logs
            for line in path.read_text().splitlines()
            if '"level": "error"' in line or "locked" in line
        ]
        assert errors == []
