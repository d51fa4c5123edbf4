"""Helpers for process-level tests: ``orchestrator run`` as a child process against an
in-process simulator, both on one sped-up ScaledClock (time.monotonic is system-wide)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.clock import ScaledClock
from orchestrator.domain.model import DayChange, DayKey, DayStatus
from orchestrator.errors import StoreError
from orchestrator.simulator import FaultSettings, RunningSimulator, SimulatorSettings
from orchestrator.store.engine import create_engine
from orchestrator.store.repository import Store

TOKEN = "proc-simulator-token-8d41b7e2"
ACCOUNT = "AC" + "2" * 32
PREFIX = "orch-proc"
TOKEN_ENV = "PROC_TWILIO_TOKEN"
# Simulated time at the clock anchor; days up to 2026-02-27 are eligible.
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

# A day is "in flight" on Twilio while a job still works on it.
IN_FLIGHT = frozenset({DayStatus.SUBMITTED, DayStatus.RUNNING, DayStatus.ERROR_DURING_RUN})

Event = dict[str, Any]


def shared_clock(speed: float) -> ScaledClock:
    """A ScaledClock the simulator and every daemon process of one test share."""
    return ScaledClock(speed, start=START, anchor=time.monotonic())


def clock_args(clock: ScaledClock) -> list[str]:
    return [
        "--clock-speed",
        repr(clock.speed),
        "--clock-start",
        clock.start.isoformat(),
        "--clock-anchor",
        repr(clock.anchor),
    ]


def write_config(
    directory: Path,
    base_url: str,
    body: str,
    *,
    name: str = "config.toml",
    credentials: str = f'auth_token_env = "{TOKEN_ENV}"',
    level: str = "info",
) -> Path:
    """A JSON-logging config against ``base_url`` with state under ``directory / "state"``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    head = textwrap.dedent(
        f"""
        [twilio]
        account_sid = "{ACCOUNT}"
        {{credentials}}
        base_url = "{base_url}"
        requests_per_second = 1000
        max_concurrent_requests = 8
        request_timeout = "5s"

        [state]
        directory = "{directory / "state"}"

        [logging]
        level = "{level}"
        format = "json"
        """
    ).replace("{credentials}", credentials)
    if "[http]" not in body:
        # A free port each: daemons of parallel tests must not contend for the default one.
        head += '\n[http]\nlisten = "127.0.0.1:0"\n'
    path.write_text(head + textwrap.dedent(body))
    return path


def child_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any token variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, "NOTIFY_SOCKET")}
    env.pop("WATCHDOG_USEC", None)
    env.update(extra or {})
    return env


class DaemonProcess:
    """One ``orchestrator run`` child; stdout (JSON log lines) and stderr go to files."""

    def __init__(self, proc: asyncio.subprocess.Process, stdout: Path, stderr: Path) -> None:
        self.proc = proc
        self.stdout = stdout
        self.stderr = stderr

    @classmethod
    async def start(
        cls,
        config: Path,
        clock: ScaledClock,
        logs: Path,
        *,
        exit_when_done: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> DaemonProcess:
        stdout, stderr = _next_log_files(logs)
        argv = [sys.executable, "-m", "orchestrator", "run", "--config", str(config)]
        argv += clock_args(clock)
        if exit_when_done:
            argv.append("--exit-when-done")
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=child_environ(environ),
            )
        return cls(proc, stdout, stderr)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[str]:
        """Complete stdout lines so far."""
        text = self.stdout.read_text(errors="replace")
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    def events(self) -> list[Event]:
        """Every stdout line parsed as JSON (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in self.lines()]

    def named(self, event: str) -> list[Event]:
        return [e for e in self.events() if e.get("event") == event]

    async def wait_for(
        self, predicate: Callable[[list[Event]], bool] | str, *, within: float
    ) -> list[Event]:
        """Poll the log until ``predicate(events)`` holds (a str: an event of that name)."""
        check = (
            (lambda events: any(e.get("event") == predicate for e in events))
            if isinstance(predicate, str)
            else predicate
        )
        deadline = time.monotonic() + within
        while True:
            events = self.events()
            if check(events):
                return events
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"daemon exited {self.proc.returncode} before {predicate!r}; "
                    f"stderr: {self.stderr.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {predicate!r} within {within} s")
            await asyncio.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    async def wait(self, within: float) -> int:
        """The exit code; fails the test if the process is still running after ``within`` s."""
        return await asyncio.wait_for(self.proc.wait(), within)

    async def kill(self) -> int:
        """SIGKILL (if still running) and reap."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        return await self.proc.wait()


def _next_log_files(logs: Path) -> tuple[Path, Path]:
    """Fresh stdout/stderr file names for the next run under ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("run-*.out")))
    return logs / f"run-{n}.out", logs / f"run-{n}.err"


@contextlib.asynccontextmanager
async def daemon_process(
    config: Path,
    clock: ScaledClock,
    logs: Path,
    *,
    exit_when_done: bool = False,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[DaemonProcess]:
    """A running daemon child for the block; killed and reaped whatever happens."""
    daemon = await DaemonProcess.start(
        config, clock, logs, exit_when_done=exit_when_done, environ=environ
    )
    try:
        yield daemon
    finally:
        await daemon.kill()


# ---------------------------------------------------------------------- invariants


def double_booked(sim: RunningSimulator) -> dict[tuple[str, dt.date], list[str]]:
    """(resource type, day) -> SIDs of the non-deleted simulator jobs working on it, where
    there is more than one."""
    engine = sim.engine
    engine.now()  # bring the model up to the shared clock
    holders: dict[tuple[str, dt.date], list[str]] = collections.defaultdict(list)
    for job in engine.ledger.jobs:
        if job.deleted_at is not None:
            continue
        for day in job.days:
            if day.status in IN_FLIGHT:
                holders[(job.resource_type.value, day.day)].append(job.job_sid)
    return {key: sids for key, sids in holders.items() if len(sids) > 1}


def duplicate_names(sim: RunningSimulator) -> list[str]:
    names = collections.Counter(job.friendly_name for job in sim.engine.ledger.jobs)
    return sorted(name for name, n in names.items() if n > 1)


class InvariantWatch:
    """Samples ``double_booked`` in the background while daemons run."""

    def __init__(self, sim: RunningSimulator, every: float = 0.02) -> None:
        self.sim = sim
        self.every = every
        self.violations: list[dict[tuple[str, dt.date], list[str]]] = []
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InvariantWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.check()

    def check(self) -> None:
        self.samples += 1
        found = double_booked(self.sim)
        if found:
            self.violations.append(found)

    async def _run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.every)


Transition = tuple[str | None, str, str | None, dt.datetime]
History = dict[tuple[str, dt.date], list[Transition]]


async def read_histories(database: Path) -> tuple[dict[tuple[str, dt.date], str], History]:
    """Every day's status and transition history (oldest first), from the daemon's SQLite file."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        store = Store(engine, ACCOUNT)
        days = await store.list_days()
        history: History = {}
        for day in days:
            changes = await store.day_history(DayKey(day.resource_type, day.day))
            history[(day.resource_type.value, day.day)] = [_flat(c) for c in changes]
        return {(d.resource_type.value, d.day): d.status.value for d in days}, history
    finally:
        await engine.dispose()


def _flat(change: DayChange) -> Transition:
    before = change.from_status.value if change.from_status else None
    return before, change.to_status.value, change.job_sid, change.observed_at


def chain_problems(statuses: Mapping[tuple[str, dt.date], str], history: History) -> list[str]:
    """Each history is a chain from None that ends at the day's current status."""
    problems = []
    for key, status in statuses.items():
        changes = history.get(key, [])
        if not changes:
            problems.append(f"{key}: no history")
            continue
        previous: str | None = None
        for before, after, _, _ in changes:
            if before != previous:
                problems.append(f"{key}: {before} -> {after} follows {previous}")
            previous = after
        if previous != status:
            problems.append(f"{key}: history ends at {previous}, day is {status}")
    return problems


def shrunk(before: History, after: History) -> list[str]:
    """Days whose later history does not start with the earlier one (a lost transition)."""
    return [
        f"{key}: {old} is not a prefix of {after.get(key)}"
        for key, old in before.items()
        if after.get(key, [])[: len(old)] != old
    ]


FINAL = frozenset({"Completed", "CompletedEmptyRecords", "GaveUp"})


def _exists(path: Path) -> bool:
    return path.exists()


async def day_statuses(database: Path) -> dict[tuple[str, dt.date], str]:
    """(resource type, day) -> status, read from a (possibly running) daemon's database."""
    if not _exists(database):
        return {}
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        return {
            (d.resource_type.value, d.day): d.status.value
            for d in await Store(engine, ACCOUNT).list_days()
        }
    except StoreError:
        return {}  # not migrated yet
    finally:
        await engine.dispose()


async def wait_until_final(
    database: Path,
    daemon: DaemonProcess,
    *,
    resource_type: str | None = None,
    at_least: int = 1,
    within: float,
) -> dict[tuple[str, dt.date], str]:
    """Poll the store until ``at_least`` days (of ``resource_type``) exist and all are final."""
    deadline = time.monotonic() + within
    while True:
        statuses = {
            key: status
            for key, status in (await day_statuses(database)).items()
            if resource_type is None or key[0] == resource_type
        }
        if len(statuses) >= at_least and set(statuses.values()) <= FINAL:
            return statuses
        if daemon.proc.returncode is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}: {statuses}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not final within {within} s: {statuses}")
        await asyncio.sleep(0.1)


def simulator_settings(
    clock: ScaledClock, *, seed: int = 0, faults: FaultSettings | None = None, **overrides: Any
) -> SimulatorSettings:
    """A simulated account for our token, on ``clock``; quick jobs unless overridden."""
    values: dict[str, Any] = {
        "max_running_jobs": 1,
        "job_base_seconds": 30,
        "day_seconds": (10, 30),
        "retry_delay_seconds": 20,
    }
    values.update(overrides)
    return SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=seed,
        clock=clock,
        faults=faults or FaultSettings(),
        **values,
    )
