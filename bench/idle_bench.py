"""Idle cost: CPU seconds a real ``orchestrator run`` with nothing due uses over a wall window.

    python -m bench.idle_bench [--idle-seconds 60]

A simulator serves in this process; the daemon is a subprocess on the real clock whose only
export is a fixed range in the future, so no day is eligible and nothing is ever due. Once it
has started (its first cleanup pass has listed jobs) and settled, its utime + stime are read
from /proc/<pid>/stat before and after the window.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    ACCOUNT,
    PREFIX,
    TOKEN,
    quiet_logs,
    request_kinds,
    start_daemon,
    write_config,
)
from orchestrator.simulator import SimulatorSettings, running_simulator

SETTLE_SECONDS = 2.0
START_TIMEOUT = 60.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after its closing parenthesis do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


def _config_body() -> str:
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=400)
    return f"""
        [jobs]
        name_prefix = "{PREFIX}"

        [logging]
        level = "warning"
        format = "json"

        [[exports]]
        name = "next-year"
        resource_type = "Messages"
        start_day = "{future}"
        end_day = "{future + dt.timedelta(days=30)}"
        """


async def run(idle_seconds: float = 60.0, settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """Start the daemon, wait for it to settle, measure its CPU over ``idle_seconds``."""
    settings = SimulatorSettings(account_sid=ACCOUNT, auth_token=TOKEN, seed=1)
    with tempfile.TemporaryDirectory(prefix="orch-idle-") as tmp, quiet_logs():
        async with running_simulator(settings) as sim:
            path = write_config(Path(tmp), sim.base_url, _config_body(), archive=False)
            launched = time.perf_counter()
            proc = await start_daemon(path, stdout=asyncio.subprocess.DEVNULL)
            try:
                # Started: its first cleanup pass (run at start) has listed our jobs.
                while request_kinds(sim.stats())["list"] == 0:
                    if proc.returncode is not None:
                        raise RuntimeError(f"the daemon exited early with {proc.returncode}")
                    if time.perf_counter() - launched > START_TIMEOUT:
                        raise RuntimeError("the daemon did not start in time")
                    await asyncio.sleep(0.05)
                startup_s = time.perf_counter() - launched
                await asyncio.sleep(settle_seconds)
                startup_cpu = cpu_seconds(proc.pid)
                before_requests = sum(request_kinds(sim.stats()).values())
                wall = time.perf_counter()
                await asyncio.sleep(idle_seconds)
                idle_cpu = cpu_seconds(proc.pid) - startup_cpu
                wall_s = time.perf_counter() - wall
                requests = sum(request_kinds(sim.stats()).values()) - before_requests
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), timeout=15)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
    return {
        "idle_wall_s": wall_s,
        "idle_cpu_s": idle_cpu,
        "cpu_s_per_minute": idle_cpu / wall_s * 60,
        "startup_wall_s": startup_s,
        "startup_cpu_s": startup_cpu,
        "requests_while_idle": requests,
        "exit_code": proc.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.idle_seconds)), indent=2))


if __name__ == "__main__":
    main()
