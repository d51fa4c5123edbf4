"""``orchestrator demo``: the daemon against the bundled simulator, sped up, in one process.

The simulator listens on a free loopback port; the daemon runs with a temporary config, SQLite
database and archive directory; both share one ScaledClock, so hours
of simulated Twilio time pass in seconds. The scenario: several resource types, a multi-week
range split into several jobs, one day that fails on its first attempt (resubmitted) and one job
that never starts (deleted as stale). No real credentials are involved.

On a terminal it shows one updating progress line and the notable events above it; otherwise it
prints the daemon's JSON log lines plus a ``demo.progress`` line every second. It ends with the
status table (as ``orchestrator status`` prints it) and where the files went.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import random
import shutil
import tempfile
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import structlog

from orchestrator.clock import ScaledClock
from orchestrator.config import load_config_file
from orchestrator.daemon import Daemon
from orchestrator.domain.model import (
    Day,
    Job,
    ResourceType,
    latest_eligible_day,
)
from orchestrator.logs import SecretRedactor, configure_logging, get_logger
from orchestrator.report import print_status_table
from orchestrator.simulator import FaultSettings, SimulatorSettings, running_simulator
from orchestrator.store.open import open_store
from orchestrator.store.repository import Store

log = get_logger(__name__)

# ---------------------------------------------------------------------------------------------
# ARCHIVING SWITCH: with it on, the demo config gets an [archive] table, and the daemon (so the
# demo) finishes only once every successful day's file is archived under <directory>/archive.
ARCHIVE_ENABLED = True
# ---------------------------------------------------------------------------------------------

DEFAULT_SPEED = 2000.0
DEFAULT_SEED = 1
TOKEN_ENV = "ORCHESTRATOR_DEMO_TOKEN"
ACCOUNT_SID = "AC" + "d" * 32
# A throwaway secret shared by the demo's simulator and daemon; it never leaves the process.
TOKEN = "demo-simulator-token-" + "0" * 12
PREFIX = "orch-demo"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs; the defaults are the ``orchestrator demo`` scenario."""

    # Simulated seconds per real second.
    speed: float = DEFAULT_SPEED
    seed: int = DEFAULT_SEED
    # Keep the temporary directory (config, database, archive) and print its path.
    keep: bool = False
    # Use this directory instead of a temporary one (it is never removed).
    directory: Path | None = None
    # Simulated start; default: today 01:00 UTC, so the dates look like a real backfill.
    start: dt.datetime | None = None
    # The scenario's size.
    messages_days: int = 60
    calls_days: int = 14
    conferences_days: int = 7
    max_days_per_job: int = 31
    # Give up (exit 1) after this many real seconds.
    timeout: float = 120.0
    # Seconds between progress updates (None: 0.1 on a terminal, 1.0 otherwise).
    progress_every: float | None = None

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if min(self.messages_days, self.calls_days, self.conferences_days) < 1:
            raise ValueError("every export needs at least one day")
        if self.messages_days <= self.max_days_per_job:
            raise ValueError("messages_days must exceed max_days_per_job (several jobs)")


@dataclass(frozen=True, slots=True)
class Scenario:
    """The concrete dates and faults of one demo run."""

    start: dt.datetime
    messages: tuple[dt.date, dt.date]
    conferences: tuple[dt.date, dt.date]
    calls_days: int
    failing_day: dt.date

    @classmethod
    def build(cls, options: DemoOptions) -> Scenario:
        start = options.start
        if start is None:
            today = dt.datetime.now(dt.UTC).replace(hour=1, minute=0, second=0, microsecond=0)
            start = today
        latest = latest_eligible_day(start)
        messages_last = latest - dt.timedelta(days=30)
        messages_first = messages_last - dt.timedelta(days=options.messages_days - 1)
        conferences_last = latest - dt.timedelta(days=3)
        conferences_first = conferences_last - dt.timedelta(days=options.conferences_days - 1)
        # In the second Messages job, so it is not held by the stuck first job.
        failing = messages_first + dt.timedelta(days=options.max_days_per_job + 5)
        failing = min(failing, messages_last)
        return cls(
            start=start,
            messages=(messages_first, messages_last),
            conferences=(conferences_first, conferences_last),
            calls_days=options.calls_days,
            failing_day=failing,
        )


def simulator_settings(scenario: Scenario, clock: ScaledClock, seed: int) -> SimulatorSettings:
    return SimulatorSettings(
        account_sid=ACCOUNT_SID,
        auth_token=TOKEN,
        seed=seed,
        clock=clock,
        max_running_jobs=2,
        job_base_seconds=60.0,
        day_seconds=(5.0, 30.0),
        faults=FaultSettings(
            fail_first_attempt_days=frozenset({(ResourceType.MESSAGES, scenario.failing_day)}),
            # The first job never leaves Submitted: cleanup deletes it as stale.
            stuck_first_jobs=1,
        ),
    )


def config_text(
    scenario: Scenario, base_url: str, state: Path, archive: Path | None, options: DemoOptions
) -> str:
    messages_first, messages_last = scenario.messages
    conferences_first, conferences_last = scenario.conferences
    text = f"""\
        # Written by `orchestrator demo`: the daemon against the local simulator.
        [twilio]
        account_sid = "{ACCOUNT_SID}"
        auth_token_env = "{TOKEN_ENV}"
        base_url = "{base_url}"
        requests_per_second = 200
        max_concurrent_requests = 8

        [state]
        directory = "{state}"

        [jobs]
        name_prefix = "{PREFIX}"
        max_days_per_job = {options.max_days_per_job}
        max_live_jobs = 4
        max_resubmits = 2
        resubmit_delay = "10m"
        daily_day_budget = 366
        stale_after = "2h"

        [polling]
        initial_delay = "30s"
        max_delay = "10m"
        max_eta_wait = "1h"

        [cleanup]
        interval = "10m"

        [logging]
        level = "info"
        format = "json"

        [http]
        # Any free port: the demo must not take (or need) the daemon's usual 9464.
        listen = "127.0.0.1:0"

        [[exports]]
        name = "messages-backfill"
        resource_type = "Messages"
        start_day = "{messages_first}"
        end_day = "{messages_last}"

        [[exports]]
        name = "calls-recent"
        resource_type = "Calls"
        last_days = {scenario.calls_days}

        [[exports]]
        name = "conferences-week"
        resource_type = "Conferences"
        start_day = "{conferences_first}"
        end_day = "{conferences_last}"
        """
    text = textwrap.dedent(text)
    if archive is not None:
        text += f'\n[archive]\ndirectory = "{archive}"\n'
    return text


# ------------------------------------------------------------------------------- progress


@dataclass
class Tally:
    """What the log events told us so far."""

    submitted: int = 0
    failed: int = 0
    stale_deleted: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)


class DemoOutput(io.TextIOBase):
    """The daemon's log stream: JSON lines in, a plain log or a progress display out."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        super().__init__()
        self.out = out
        self.live = live
        self.tally = Tally()
        self._buffer = ""
        self._line = ""

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._handle(line)
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    # ---------------------------------------------------------------- events

    def _handle(self, line: str) -> None:
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            event = {"event": line}
        self._count(event)
        if not self.live:
            self.out.write(line + "\n")
            return
        note = _narrate(event)
        if note is not None:
            self.say(note)

    def _count(self, event: Mapping[str, Any]) -> None:
        name = event.get("event")
        if name == "daemon.started":
            self.tally.started.set()
        elif name == "job.submitted":
            self.tally.submitted += 1
        elif name == "job.deleted" and event.get("reason") == "stale":
            self.tally.stale_deleted += 1
        elif name == "day.status_changed" and event.get("to_status") == "Failed":
            self.tally.failed += 1

    # ---------------------------------------------------------------- terminal

    def say(self, text: str) -> None:
        """A line above the progress line (live), or a plain line."""
        if self.live:
            self.out.write("\r\x1b[K" + text + "\n" + self._line)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def show(self, line: str) -> None:
        """Replace the progress line (live only), cut to the terminal's width."""
        self._line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        self.out.write("\r\x1b[K" + self._line)
        self.out.flush()

    def end_line(self) -> None:
        if self.live and self._line:
            self.out.write("\r\x1b[K" + self._line + "\n")
            self._line = ""
            self.out.flush()


def _narrate(event: Mapping[str, Any]) -> str | None:
    """A short human line for the events worth seeing on a terminal, else None."""
    name = event.get("event")
    level = event.get("level", "info")
    sid = str(event.get("job_sid") or "")[:10]
    if name == "job.submitted":
        return (
            f"  submitted  {event.get('resource_type')} {event.get('start_day')}.."
            f"{event.get('end_day')} ({_days(event.get('days'))}, attempt {event.get('attempt')})"
            f"  {sid}…"
        )
    if name == "day.status_changed" and event.get("to_status") in ("Failed", "GaveUp"):
        then = "will be resubmitted" if event.get("to_status") == "Failed" else "left for retry"
        return (
            f"  {event.get('to_status'):<9}  {event.get('resource_type')} {event.get('day')}"
            f" in {sid}…: {then}"
        )
    if name == "job.deleted":
        why = "stale: no progress for stale_after" if event.get("reason") == "stale" else "done"
        return f"  deleted    {event.get('resource_type')} job {sid}… ({why})"
    if level in ("warning", "error", "critical"):
        details = " ".join(
            f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "ts", "module")
        )
        return f"  {level:<9}  {name} {details}"
    return None


def _days(count: object) -> str:
    return "1 day" if count == 1 else f"{count} days"


@dataclass(frozen=True, slots=True)
class Snapshot:
    days: int
    final: int
    resubmitted: int
    archived: int
    jobs_live: int
    jobs: int
    now: dt.datetime


async def snapshot(store: Store, now: dt.datetime) -> Snapshot:
    days = await store.list_days()
    jobs = await store.list_jobs()
    return Snapshot(
        days=len(days),
        final=sum(1 for d in days if d.status.is_final),
        resubmitted=sum(1 for d in days if d.resubmits > 0),
        archived=sum(1 for d in days if d.archive is not None),
        jobs_live=sum(1 for j in jobs if j.state.is_live),
        jobs=len(jobs),
        now=now,
    )


def progress_line(snap: Snapshot, tally: Tally) -> str:
    """Most important first, within 80 columns for the demo's sizes (a terminal cuts the rest)."""
    return (
        f"final {snap.final}/{snap.days} · archived {snap.archived}"
        f" · jobs live {snap.jobs_live} · resubmits {snap.resubmitted}"
        f" · stale {tally.stale_deleted} · {snap.now:%H:%M}"
    )


async def follow(store: Store, clock: ScaledClock, output: DemoOutput, every: float) -> None:
    """Show progress until cancelled."""
    await output.tally.started.wait()
    while True:
        snap = await snapshot(store, clock.now())
        if output.live:
            output.show(progress_line(snap, output.tally))
        else:
            log.info(
                "demo.progress",
                days_final=snap.final,
                days=snap.days,
                jobs_live=snap.jobs_live,
                jobs=snap.jobs,
                resubmitted_days=snap.resubmitted,
                archived_days=snap.archived,
                stale_deleted=output.tally.stale_deleted,
                simulated=snap.now.isoformat(timespec="seconds"),
            )
        await asyncio.sleep(every)


# ------------------------------------------------------------------------------- the run


async def run_demo(options: DemoOptions, out: TextIO) -> int:
    """Run the scenario; print progress, the status table and where things are; 0 when done."""
    began = time.monotonic()
    live = out.isatty()
    output = DemoOutput(out, live=live)
    stream = cast(TextIO, output)
    # The demo's logging goes to its own output; whoever called it gets theirs back afterwards.
    saved_logging = structlog.get_config()
    configure_logging(redactor=SecretRedactor([TOKEN]), level="info", json=True, stream=stream)
    every = options.progress_every or (0.1 if live else 1.0)

    if options.directory is not None:
        root = options.directory
        root.mkdir(parents=True, exist_ok=True)
        remove = False
    else:
        root = Path(tempfile.mkdtemp(prefix="orchestrator-demo-"))
        remove = not options.keep
    state = root / "state"
    archive = root / "archive" if ARCHIVE_ENABLED else None
    scenario = Scenario.build(options)
    clock = ScaledClock(options.speed, start=scenario.start)
    output.say(
        f"orchestrator demo: simulator + daemon at {options.speed:g}x, seed {options.seed}, "
        f"in {root}"
    )
    try:
        async with running_simulator(simulator_settings(scenario, clock, options.seed)) as sim:
            config_path = root / "config.toml"
            config_path.write_text(config_text(scenario, sim.base_url, state, archive, options))
            daemon = Daemon(
                config_path,
                clock=clock,
                environ={TOKEN_ENV: TOKEN},
                exit_when_done=True,
                log_stream=stream,
                rand=random.Random(options.seed).random,
            )
            code, days, jobs = await _run_daemon(
                daemon, config_path, clock, output, deadline=began + options.timeout, every=every
            )
        output.end_line()
        elapsed = time.monotonic() - began
        done = code == 0 and bool(days) and all(d.status.is_final for d in days)
        _report(out, config_path, days, jobs, clock, output.tally, elapsed, done)
        _where(out, root, config_path, state, archive, kept=not remove)
        return 0 if done else 1
    finally:
        structlog.configure(**saved_logging)
        if remove:
            shutil.rmtree(root, ignore_errors=True)


async def _run_daemon(
    daemon: Daemon,
    config_path: Path,
    clock: ScaledClock,
    output: DemoOutput,
    *,
    deadline: float,
    every: float,
) -> tuple[int, list[Day], list[Job]]:
    """Run the daemon to the end (or the deadline) while showing progress; its code and state."""
    settings = load_config_file(config_path)
    task = asyncio.create_task(daemon.run())
    # daemon.started comes once the wanted days are recorded (the daemon's first wanted pass
    # runs before its passes start ticking), so from here on the store holds every wanted
    # day and neither the progress line nor the final verdict can read an empty table.
    started = asyncio.create_task(output.tally.started.wait())
    try:
        await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
    finally:
        started.cancel()
    if not output.tally.started.is_set():
        # It ended before it started: raise its error (or return its code).
        return await task, [], []
    async with open_store(
        settings.state.database_url.get_secret_value(),
        settings.twilio.account_sid,
        # The daemon migrated it before it said it started.
        migrate=False,
    ) as store:
        follower = asyncio.create_task(follow(store, clock, output, every))
        try:
            remaining = max(0.0, deadline - time.monotonic())
            finished, _ = await asyncio.wait([task], timeout=remaining)
            if not finished:
                output.say("orchestrator demo: timed out; stopping the daemon")
                daemon.request_stop()
                await task
                code = 1
            else:
                code = task.result()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        if output.live:
            output.show(progress_line(await snapshot(store, clock.now()), output.tally))
        return code, await store.list_days(), await store.list_jobs()


def _report(
    out: TextIO,
    config_path: Path,
    days: list[Day],
    jobs: list[Job],
    clock: ScaledClock,
    tally: Tally,
    elapsed: float,
    done: bool,
) -> None:
    now = clock.now()
    simulated = now - clock.start
    print("", file=out)
    print_status_table(load_config_file(config_path), days, jobs, out, now=now)
    resubmitted = sorted(f"{d.resource_type.value} {d.day}" for d in days if d.resubmits > 0)
    print(
        f"failed days resubmitted: {len(resubmitted)} ({', '.join(resubmitted) or 'none'}); "
        f"stale jobs deleted: {tally.stale_deleted}; jobs submitted: {tally.submitted}",
        file=out,
    )
    hours = simulated.total_seconds() / 3600
    verdict = "every wanted day is final" if done else "NOT every wanted day is final"
    print(
        f"{verdict}: {len(days)} days, {hours:.1f} simulated hours in {elapsed:.1f} s",
        file=out,
    )


def _where(
    out: TextIO, root: Path, config: Path, state: Path, archive: Path | None, *, kept: bool
) -> None:
    print("", file=out)
    print(f"state directory: {root}{'' if kept else ' (removed; --keep keeps it)'}", file=out)
    print(f"  config:   {config}", file=out)
    print(f"  database: {state / 'orchestrator.sqlite'}", file=out)
    if archive is None:
        print("  archive:  off in this demo", file=out)
    else:
        files = sorted(p for p in archive.rglob("*") if p.is_file()) if archive.exists() else []
        size = sum(p.stat().st_size for p in files)
        example = f", e.g. {files[0].relative_to(archive)}" if files else ""
        print(f"  archive:  {archive} ({len(files)} files, {size} bytes{example})", file=out)
    if kept:
        print(f"look around: orchestrator status --config {config}", file=out)
