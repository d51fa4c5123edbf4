"""What a real ``orchestrator run`` process writes: JSON events without secrets, journald
priority prefixes under systemd, and how it behaves when Twilio rejects its credentials
(401 / 20003) until they are fixed and reloaded."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from orchestrator.simulator import FaultSettings, RunningSimulator, running_simulator
from tests.e2e.process_support import (
    ACCOUNT,
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    DaemonProcess,
    chain_problems,
    child_environ,
    clock_args,
    daemon_process,
    read_histories,
    shared_clock,
    simulator_settings,
    wait_until_final,
    write_config,
)

SPEED = 600.0
DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
WRONG_TOKEN = "wrong-token-3b9f0c7d1e"

BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 5
max_live_jobs = 2
max_resubmits = 5
resubmit_delay = "1m"

[polling]
initial_delay = "20s"
max_delay = "1m"

[cleanup]
interval = "2m"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-10"

[[exports]]
name = "calls-recent"
resource_type = "Calls"
last_days = 4
"""


# sd-daemon(3) priorities by level; journald strips "<N>" and stores N as PRIORITY=.
SD_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}
PREFIXED = re.compile(r"^<(\d)>(\{.*\})$")

SMALL_BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 2

[polling]
initial_delay = "20s"
max_delay = "1m"

[[exports]]
name = "calls-recent"
resource_type = "Calls"
last_days = 4
"""


def secret_forms(token: str) -> list[str]:
    basic = base64.b64encode(f"{ACCOUNT}:{token}".encode()).decode()
    return [token, basic, f"Basic {basic}"]


def assert_clean_json_events(daemon: DaemonProcess, tokens: list[str]) -> int:
    """Every stdout line is a JSON object with a dotted event name and no secret in any form."""
    lines = daemon.stdout.read_text().splitlines()
    secrets = [form for token in tokens for form in secret_forms(token)]
    for line in lines:
        for secret in secrets:
            assert secret not in line, line
        event = json.loads(line)
        assert isinstance(event, dict), line
        assert DOTTED.match(event.get("event", "")), line
    stderr = daemon.stderr.read_text()
    for secret in secrets:
        assert secret not in stderr
    return len(lines)


def count_401(sim: RunningSimulator) -> int:
    return sum(by_status.get("401", 0) for by_status in sim.stats()["requests"].values())


@pytest.mark.slow
async def test_log_lines_are_json_events_without_secrets(tmp_path: Path) -> None:
    """A faulty backfill at debug level: every line is a dotted JSON event; no token, no Basic."""
    clock = shared_clock(SPEED)
    faults = FaultSettings(
        failed_day_fraction=0.1,
        rate_limit_fraction=0.05,
        server_error_fraction=0.05,
        drop_after_fraction=0.03,
        malformed_json_fraction=0.03,
        stuck_first_jobs=1,
        # At least one of each whatever the fractions draw (a short run may draw none).
        server_error_next=1,
        rate_limit_next=1,
    )
    async with running_simulator(simulator_settings(clock, faults=faults, seed=5)) as sim:
        config = write_config(tmp_path, sim.base_url, BODY, level="debug")
        # Stale after a little while, so the stuck job is deleted within the test.
        # This fault mix makes unclear creates common (5 % 5xx on every POST): without a higher
        # bound a day may be held back until the next UTC day, hours of this test's clock. The
        # bound itself is tested in test_edges.py.
        config.write_text(
            config.read_text().replace(
                "[polling]",
                'stale_after = "10m"\nmax_ambiguous_creates_per_day = 50\n\n[polling]',
            )
        )
        async with daemon_process(
            config, clock, tmp_path / "logs", exit_when_done=True, environ={TOKEN_ENV: TOKEN}
        ) as daemon:
            assert await daemon.wait(45) == 0, daemon.stderr.read_text()
        fired = sim.stats()["faults_fired"]
    count = assert_clean_json_events(daemon, [TOKEN])
    names = {e["event"] for e in daemon.events()}
    assert {"twilio.request", "job.submitted", "day.status_changed", "daemon.stopped"} <= names
    assert count > 50
    assert fired["server_error"] and fired["rate_limit"]


@pytest.mark.slow
async def test_auth_failure_stops_calls_until_fixed_and_reloaded(tmp_path: Path) -> None:
    """A wrong token: twilio.auth_failed once, a few 401s and no more, still up; the right token
    plus SIGHUP: twilio.auth_restored and the run completes."""
    clock = shared_clock(SPEED)
    async with running_simulator(simulator_settings(clock)) as sim:
        token_file = tmp_path / "twilio-token"
        token_file.write_text(WRONG_TOKEN + "\n")
        config = write_config(
            tmp_path, sim.base_url, BODY, credentials='auth_token_file = "twilio-token"'
        )
        database = tmp_path / "state" / "orchestrator.sqlite"
        async with daemon_process(config, clock, tmp_path / "logs") as daemon:
            await daemon.wait_for("twilio.auth_failed", within=20)
            await asyncio.sleep(0.3)
            first = count_401(sim)
            # 1.5 s real is 15 simulated minutes: dozens of pass intervals.
            await asyncio.sleep(1.5)
            assert daemon.proc.returncode is None
            assert 1 <= first <= 3
            assert count_401(sim) == first
            assert sim.stats()["jobs_created"] == 0
            [failed] = daemon.named("twilio.auth_failed")
            assert (failed["status"], failed["code"], failed["level"]) == (401, 20003, "error")

            token_file.write_text(TOKEN + "\n")
            daemon.signal(signal.SIGHUP)
            await daemon.wait_for("twilio.auth_restored", within=10)
            began = time.monotonic()
            statuses = await wait_until_final(database, daemon, at_least=14, within=30)
            assert time.monotonic() - began < 30
            assert len(statuses) == 14
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(10) == 0
        assert count_401(sim) == first
        assert len(daemon.named("twilio.auth_failed")) == 1
        assert_clean_json_events(daemon, [WRONG_TOKEN, TOKEN])
        statuses, history = await read_histories(database)
        assert set(statuses.values()) <= {"Completed", "CompletedEmptyRecords"}
        assert not chain_problems(statuses, history)


@pytest.mark.slow
async def test_under_journald_each_line_starts_with_its_priority(tmp_path: Path) -> None:
    """format auto, stdout the stream JOURNAL_STREAM names: every line is <N> + a JSON event
    whose level matches N (debug, info and warning all seen); the rest parses as JSON."""
    clock = shared_clock(SPEED)
    faults = FaultSettings(server_error_fraction=0.2, rate_limit_fraction=0.1)
    async with running_simulator(simulator_settings(clock, faults=faults, seed=7)) as sim:
        config = write_config(tmp_path, sim.base_url, SMALL_BODY, level="debug")
        config.write_text(config.read_text().replace('format = "json"', 'format = "auto"'))
        stdout, stderr = tmp_path / "journal.out", tmp_path / "journal.err"
        argv = [sys.executable, "-m", "orchestrator", "run", "--config", str(config)]
        with stdout.open("wb") as out, stderr.open("wb") as err:
            # What systemd does for a service whose stdout is the journal: "<dev>:<inode>" of it.
            st = os.fstat(out.fileno())
            proc = await asyncio.create_subprocess_exec(
                *argv,
                *clock_args(clock),
                "--exit-when-done",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=child_environ({TOKEN_ENV: TOKEN, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}),
            )
        daemon = DaemonProcess(proc, stdout, stderr)
        try:
            assert await daemon.wait(45) == 0, stderr.read_text()
        finally:
            await daemon.kill()
        fired = sim.stats()["faults_fired"]
    lines = stdout.read_text().splitlines()
    seen: set[int] = set()
    for line in lines:
        match = PREFIXED.match(line)
        assert match is not None, line
        event = json.loads(match.group(2))
        assert DOTTED.match(event["event"]), line
        assert int(match.group(1)) == SD_PRIORITY[event["level"]], line
        assert TOKEN not in line
        seen.add(int(match.group(1)))
    assert {7, 6, 4} <= seen, (seen, fired)
    assert {"job.submitted", "daemon.stopped"} <= {json.loads(line[3:])["event"] for line in lines}
