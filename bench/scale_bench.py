"""Scale: the bookkeeping of one full poll pass over 10,000 live jobs holding 300,000 days.

    python -m bench.scale_bench [--jobs N] [--days-per-job M] [--json-out PATH]

The state is built in a SQLite file: the wanted days through ``Store.upsert_wanted_days`` (the
real path: days plus their None -> Pending transitions), then, for speed, the jobs and their
claims by direct SQL on the store's tables (what ``claim_days`` + ``record_job_sid`` would leave:
active jobs with SIDs, days Submitted and held, a Pending -> Submitted transition each).

Then every job is due and the real ``poll_due_jobs`` runs pass after pass (it polls at most
``MAX_POLLS_PER_PASS`` jobs per pass) until none is due. The Twilio client is an in-memory fake
that answers ``fetch_job`` with RemoteJob values computed from the SID, so only the daemon's work is
timed (the store writes, the decisions, the logging calls): a third of the jobs report no change,
a third a few days Completed and one Running, a third every day Completed (they finish).
Reported: wall and CPU seconds of all those passes, peak RSS during them (VmHWM, reset just
before when the kernel allows), and the database size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from bench.harness import ACCOUNT, PREFIX, TOKEN, TOKEN_ENV, quiet_logs, write_config
from orchestrator.config import Settings, load_settings
from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    DetailGroup,
    JobState,
    ObservedBy,
    RemoteJob,
    ResourceType,
    friendly_name,
)
from orchestrator.store import Store, create_engine, upgrade_to_head
from orchestrator.store.schema import days, jobs, transitions
from orchestrator.twilio import BulkExportsClient
from orchestrator.wiring import workflow_context
from orchestrator.workflows.context import ApiHealth, WorkflowContext
from orchestrator.workflows.poll import poll_due_jobs

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
FIRST_DAY = dt.date(1800, 1, 1)
TYPES = tuple(ResourceType)
BODY = f"""
    [jobs]
    name_prefix = "{PREFIX}"

    [[exports]]
    name = "unused"
    resource_type = "Messages"
    last_days = 1
    """


class MemoryClient:
    """Answers ``fetch_job`` from memory (bench only: no HTTP, so only bookkeeping is timed)."""

    def __init__(self, job_count: int, days_per_job: int) -> None:
        self.job_count = job_count
        self.days_per_job = days_per_job
        self.fetches = 0

    async def fetch_job(self, job_sid: str) -> RemoteJob:
        self.fetches += 1
        n = int(job_sid[2:], 16)
        rtype, first = _spec(n, self.days_per_job)
        kind = random.Random(n).randrange(3)
        return _answer(job_sid, rtype, first, self.days_per_job, kind)


def _spec(n: int, days_per_job: int) -> tuple[ResourceType, dt.date]:
    """Job ``n``'s resource type and first day."""
    rtype = TYPES[n % len(TYPES)]
    return rtype, FIRST_DAY + dt.timedelta(days=(n // len(TYPES)) * days_per_job)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: ``5`` to clear_refs); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _group(status: DayStatus, chosen: list[dt.date]) -> DetailGroup:
    return DetailGroup(status, status.value, tuple(chosen))


def _answer(sid: str, rtype: ResourceType, first: dt.date, count: int, kind: int) -> RemoteJob:
    all_days = [first + dt.timedelta(days=i) for i in range(count)]
    details: tuple[DetailGroup, ...]
    if kind == 0:  # nothing new: still queued
        details = (_group(DayStatus.SUBMITTED, all_days),)
        position, eta = 3, NOW + dt.timedelta(hours=2)
    elif kind == 1:  # some progress
        done = max(1, count // 3)
        details = (
            _group(DayStatus.COMPLETED, all_days[:done]),
            _group(DayStatus.RUNNING, all_days[done : done + 1]),
            _group(DayStatus.SUBMITTED, all_days[done + 1 :]),
        )
        position, eta = 0, NOW + dt.timedelta(minutes=20)
    else:  # finished
        details = (_group(DayStatus.COMPLETED, all_days),)
        position, eta = None, NOW
    details = tuple(g for g in details if g.days)
    return RemoteJob(
        job_sid=sid,
        friendly_name=None,
        resource_type=rtype,
        start_day=first,
        end_day=all_days[-1],
        details=details,
        job_queue_position=position,
        estimated_completion_time=eta,
    )


async def _build(store: Store, engine: Any, job_count: int, days_per_job: int) -> dict[str, Any]:
    """Days through the store, jobs and claims by direct SQL."""
    per_type = -(-job_count // len(TYPES))
    keys = [
        DayKey(rtype, FIRST_DAY + dt.timedelta(days=i))
        for rtype in TYPES
        for i in range(per_type * days_per_job)
    ]
    added = await store.upsert_wanted_days(keys, NOW)
    job_rows = []
    specs: list[tuple[ResourceType, dt.date]] = []
    for n in range(job_count):
        rtype, first = _spec(n, days_per_job)
        last = first + dt.timedelta(days=days_per_job - 1)
        specs.append((rtype, first))
        job_rows.append(
            {
                "account_sid": ACCOUNT,
                "friendly_name": friendly_name(PREFIX, rtype, first, last, 1),
                "job_sid": f"JS{n:032x}",
                "resource_type": rtype,
                "start_day": first,
                "end_day": last,
                "day_count": days_per_job,
                "state": JobState.ACTIVE,
                "attempt": 1,
                "created_at": NOW - dt.timedelta(hours=1),
                "submitted_at": NOW - dt.timedelta(hours=1),
                "last_change_at": NOW - dt.timedelta(hours=1),
                # All due, most overdue first in a mixed order.
                "next_poll_at": NOW - dt.timedelta(seconds=(n * 7919) % 3600),
                "poll_count": 0,
            }
        )
    claimed_at = NOW - dt.timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(jobs), job_rows)
        ids = {
            row.job_sid: row.id for row in await conn.execute(sa.select(jobs.c.id, jobs.c.job_sid))
        }
        claim = (
            sa.update(days)
            .where(
                days.c.account_sid == ACCOUNT,
                days.c.resource_type == sa.bindparam("rtype"),
                days.c.day >= sa.bindparam("first"),
                days.c.day <= sa.bindparam("last"),
            )
            .values(
                status=DayStatus.SUBMITTED,
                job_id=sa.bindparam("job_id"),
                attempts=1,
                last_changed_at=claimed_at,
            )
        )
        await conn.execute(
            claim,
            [
                {
                    "rtype": rtype,
                    "first": first,
                    "last": first + dt.timedelta(days=days_per_job - 1),
                    "job_id": ids[f"JS{n:032x}"],
                }
                for n, (rtype, first) in enumerate(specs)
            ],
        )
        trans = [
            {
                "account_sid": ACCOUNT,
                "resource_type": rtype,
                "day": first + dt.timedelta(days=i),
                "job_id": ids[f"JS{n:032x}"],
                "job_sid": f"JS{n:032x}",
                "from_status": DayStatus.PENDING,
                "to_status": DayStatus.SUBMITTED,
                "observed_at": claimed_at,
                "observed_by": ObservedBy.SUBMIT,
            }
            for n, (rtype, first) in enumerate(specs)
            for i in range(days_per_job)
        ]
        for start in range(0, len(trans), 20_000):
            await conn.execute(sa.insert(transitions), trans[start : start + 20_000])
    return {"days": added}


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


async def run(
    job_count: int = 10_000,
    days_per_job: int = 30,
    *,
    directory: Path | None = None,
    stage: str = "all",
) -> dict[str, Any]:
    """Build the state (stage ``build``), time the poll passes (``poll``), or both (``all``).

    ``directory`` keeps the state between two stages; by default a temporary one is used.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_logs())
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-scale-")))
        path = write_config(directory, "http://127.0.0.1:9", BODY, archive=False)
        settings = load_settings(path, environ={TOKEN_ENV: TOKEN})
        settings.state.directory.mkdir(parents=True, exist_ok=True)
        db_path = settings.state.directory / "orchestrator.sqlite"
        engine = create_engine(settings.state.database_url.get_secret_value())
        figures: dict[str, Any] = {"jobs": job_count}
        try:
            store = Store(engine, ACCOUNT)
            if stage in ("all", "build"):
                await upgrade_to_head(engine)
                build_start = time.perf_counter()
                built = await _build(store, engine, job_count, days_per_job)
                figures["days"] = built["days"]
                figures["build_s"] = time.perf_counter() - build_start
            if stage in ("all", "poll"):
                figures |= await _poll_all(store, engine, settings, job_count, days_per_job)
                figures["peak_rss_scope"] += " in " + (
                    "a fresh process" if stage == "poll" else "the building process"
                )
        finally:
            await engine.dispose()
        figures["db_mb"] = _db_bytes(db_path) / 2**20
    return figures


async def _poll_all(
    store: Store, engine: Any, settings: Settings, job_count: int, days_per_job: int
) -> dict[str, Any]:
    client = MemoryClient(job_count, days_per_job)
    ctx = poll_context(store, client, settings)
    rss_before = _status_kb("VmRSS")
    peak_reset = _reset_peak_rss()
    wall = time.perf_counter()
    cpu = time.process_time()
    passes = polled = 0
    while True:
        count = await poll_due_jobs(ctx)
        if count == 0:
            break
        passes += 1
        polled += count
    wall_s = time.perf_counter() - wall
    cpu_s = time.process_time() - cpu
    peak_kb = _status_kb("VmHWM") if peak_reset else None
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "poll_passes": passes,
        "jobs_polled": polled,
        "fetches": client.fetches,
        "jobs_finished": len(await store.list_jobs(states=[JobState.FINISHED])),
        "transitions_total": await _count_transitions(engine),
        "pass_wall_s": wall_s,
        "pass_cpu_s": cpu_s,
        "per_job_ms": wall_s / max(1, polled) * 1000,
        "rss_before_mb": (rss_before or 0) / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "peak_rss_scope": "poll passes (VmHWM reset)" if peak_reset else "whole process",
    }


def poll_context(store: Store, client: MemoryClient, settings: Settings) -> WorkflowContext:
    """A workflow context over ``store`` whose client is the in-memory fake, at ``NOW``."""
    return workflow_context(
        settings,
        store=store,
        # The in-memory fake stands in for the HTTP client (only fetch_job is called).
        client=cast(BulkExportsClient, client),
        clock=_FixedClock(NOW),
        health=ApiHealth(),
        rand=random.Random(3).random,
    )


async def _count_transitions(engine: Any) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(sa.func.count()).select_from(transitions))
        return int(result.scalar_one())


class _FixedClock:
    def __init__(self, now: dt.datetime) -> None:
        self._now = now

    def now(self) -> dt.datetime:
        return self._now

    def real_seconds(self, simulated: dt.timedelta) -> float:
        return 0.0


def _stage(stage: str, job_count: int, days_per_job: int, directory: Path) -> dict[str, Any]:
    out = directory / f"{stage}.json"
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale_bench",
            "--jobs",
            str(job_count),
            "--days-per-job",
            str(days_per_job),
            "--stage",
            stage,
            "--state-dir",
            str(directory),
            "--json-out",
            str(out),
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_isolated(job_count: int = 10_000, days_per_job: int = 30) -> dict[str, Any]:
    """Build in one fresh interpreter, poll in another: the peak RSS is the poll passes' own."""
    with tempfile.TemporaryDirectory(prefix="orch-scale-") as tmp:
        built = _stage("build", job_count, days_per_job, Path(tmp))
        polled = _stage("poll", job_count, days_per_job, Path(tmp))
    return {**polled, "days": built["days"], "build_s": built["build_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--days-per-job", type=int, default=30)
    parser.add_argument("--stage", choices=("all", "build", "poll"), default="all")
    parser.add_argument("--state-dir", type=Path, default=None, help="keeps state across stages")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(
        run(args.jobs, args.days_per_job, directory=args.state_dir, stage=args.stage)
    )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
