"""The Ticker keeps time with APScheduler and drains its passes on stop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import structlog

from orchestrator.scheduling import Ticker

# Generous bounds: these only fail if a pass never runs at all.
WAIT = 5.0


async def test_every_runs_a_pass_repeatedly() -> None:
    """An interval pass runs again and again."""
    ticker = Ticker()
    runs = 0
    twice = asyncio.Event()

    async def count() -> None:
        nonlocal runs
        runs += 1
        if runs >= 2:
            twice.set()

    ticker.every("count", 0.01, count)
    ticker.start()
    try:
        await asyncio.wait_for(twice.wait(), WAIT)
    finally:
        await ticker.stop(1.0)
    assert runs >= 2


async def test_run_soon_brings_a_far_pass_forward() -> None:
    """run_soon wakes a pass scheduled an hour away."""
    ticker = Ticker()
    ran = asyncio.Event()

    async def mark() -> None:
        ran.set()

    ticker.every("far", 3600, mark, first_in=3600)
    ticker.start()
    try:
        await asyncio.sleep(0.05)
        assert not ran.is_set()
        ticker.run_soon("far")
        await asyncio.wait_for(ran.wait(), WAIT)
    finally:
        await ticker.stop(1.0)


async def test_stop_waits_for_a_running_pass() -> None:
    """stop lets a running pass finish within the deadline."""
    ticker = Ticker()
    started = asyncio.Event()
    finished = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.set()

    ticker.every("slow", 3600, slow)
    ticker.start()
    await asyncio.wait_for(started.wait(), WAIT)
    assert await ticker.stop(2.0) is True
    assert finished.is_set()
    assert not ticker.running


async def test_stop_cancels_a_pass_past_the_deadline() -> None:
    """A pass that outlives the deadline is cancelled and reported."""
    ticker = Ticker()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    ticker.every("stuck", 3600, stuck)
    ticker.start()
    await asyncio.wait_for(started.wait(), WAIT)
    assert await ticker.stop(0.05) is False
    assert cancelled.is_set()


async def test_a_failing_pass_is_logged_and_keeps_running() -> None:
    """An exception in a pass is logged as scheduler.pass_failed, with its traceback, and the
    pass runs again."""
    ticker = Ticker()
    runs = 0
    again = asyncio.Event()

    async def boom() -> None:
        nonlocal runs
        runs += 1
        if runs >= 2:
            again.set()
        raise RuntimeError("boom")

    with structlog.testing.capture_logs() as logs:
        ticker.every("boom", 0.01, boom)
        ticker.start()
        try:
            await asyncio.wait_for(again.wait(), WAIT)
            await asyncio.sleep(0.02)
        finally:
            await ticker.stop(1.0)
    failures = [e for e in logs if e["event"] == "scheduler.pass_failed"]
    assert failures and failures[0]["name"] == "boom"
    assert failures[0]["error_type"] == "RuntimeError"
    assert 'raise RuntimeError("boom")' in failures[0]["traceback"]


async def test_a_pass_outlasting_its_interval_is_skipped_and_logged() -> None:
    """Ticks that find the pass still running are dropped, each logged as a debug event."""
    ticker = Ticker()
    runs = 0
    release = asyncio.Event()

    async def slow() -> None:
        nonlocal runs
        runs += 1
        await release.wait()

    ticker.every("slow", 0.01, slow)
    with structlog.testing.capture_logs() as logs:
        ticker.start()
        try:
            for _ in range(500):
                if any(e["event"] == "scheduler.pass_skipped" for e in logs):
                    break
                await asyncio.sleep(0.01)
        finally:
            release.set()
            await ticker.stop(1.0)
    skipped = [e for e in logs if e["event"] == "scheduler.pass_skipped"]
    assert skipped and skipped[0]["name"] == "slow" and skipped[0]["log_level"] == "debug"
    assert runs == 1


# A process whose only logging set-up is the daemon's (no pytest handlers on the root logger):
# there, an unhandled stdlib record would reach stderr through logging's last-resort handler.
_TICKER_SCRIPT = """
import asyncio, sys
from orchestrator.logs import SecretRedactor, configure_logging
from orchestrator.scheduling import Ticker

async def main():
    configure_logging(redactor=SecretRedactor(), level="debug", json=True, stream=sys.stdout)
    ticker = Ticker()
    release = asyncio.Event()

    async def slow():
        await release.wait()

    async def boom():
        raise RuntimeError("boom")

    ticker.every("slow", 0.01, slow)
    ticker.every("boom", 0.01, boom)
    ticker.start()
    await asyncio.sleep(0.3)
    release.set()
    await ticker.stop(1.0)

asyncio.run(main())
"""


def test_apscheduler_writes_nothing_of_its_own() -> None:
    """A failing pass and skipped ticks appear as JSON events on the daemon's stream only;
    APScheduler's plain-text warnings and tracebacks never reach stderr."""
    done = subprocess.run(
        [sys.executable, "-c", _TICKER_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    events = {json.loads(line)["event"] for line in done.stdout.splitlines()}
    assert {"scheduler.pass_failed", "scheduler.pass_skipped"} <= events
