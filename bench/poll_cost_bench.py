"""Poll cost: CPU per polled job, the daemon's poll pass against a floor on the bare driver.

    python -m bench.poll_cost_bench [--jobs N] [--days-per-job M] [--postgres-url URL]

The same state is built twice (``scale_bench``'s builder: N active jobs of M Submitted days):
once for the daemon's real ``poll_due_jobs`` and once for the floor, a minimal script that does
the same reads and writes with the database driver directly (aiosqlite, asyncpg): per pass the
due jobs (most overdue first, 500 at most), then per job one write transaction that reads the
job and its held days, writes a transition and the new status of each changed day, and the
job's poll bookkeeping (finished when every day is a success). Both sides get the same answers
from the same in-memory fake of ``fetch_job`` (no HTTP), and both are timed in CPU seconds of
this process (the driver threads included; PostgreSQL's server is another process and is not).

Reported per database: CPU per job for each side and the ratio (target: the daemon within 3x
the floor on SQLite at 1,000 jobs x 30 days), and the transitions each side wrote (equal, or
the comparison is void).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import ACCOUNT, TOKEN, TOKEN_ENV, quiet_logs, write_config
from bench.scale_bench import BODY, NOW, MemoryClient, _build, poll_context
from orchestrator.config import load_settings
from orchestrator.domain.model import DayStatus, ObservedBy
from orchestrator.store import Store, create_engine, upgrade_to_head
from orchestrator.store.schema import transitions
from orchestrator.workflows.poll import MAX_POLLS_PER_PASS, poll_due_jobs

TARGET_RATIO = 3.0
NEXT_POLL = dt.timedelta(minutes=5)
_SUCCESS = frozenset(s.value for s in DayStatus if s.is_success)


def _poll_context(store: Store, client: MemoryClient, config: Path) -> Any:
    """The daemon's workflow context over ``store`` with the in-memory fake as its client."""
    return poll_context(store, client, load_settings(config, environ={TOKEN_ENV: TOKEN}))


# ---------------------------------------------------------------------------------- the floor


def _day_row(
    new: str, now: object, resource_type: str, day: object, job_id: int, old: str
) -> tuple[object, ...]:
    """The parameters of one day's status UPDATE (both floors)."""
    return (new, now if new in _SUCCESS else None, now, ACCOUNT, resource_type, day, job_id, old)


async def _floor_sqlite(path: Path, client: MemoryClient) -> int:
    import aiosqlite

    def fmt(moment: dt.datetime) -> str:
        return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    now = fmt(NOW)
    due_sql = (
        "SELECT id, job_sid, resource_type, poll_count FROM jobs WHERE account_sid = ? "
        "AND state = 'active' AND next_poll_at <= ? ORDER BY next_poll_at, id LIMIT ?"
    )
    written = 0
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA busy_timeout = 30000")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA synchronous = NORMAL")
        while True:
            async with db.execute(due_sql, (ACCOUNT, now, MAX_POLLS_PER_PASS)) as cursor:
                due = list(await cursor.fetchall())
            if not due:
                return written
            for job_id, job_sid, resource_type, _ in due:
                remote = await client.fetch_job(job_sid)
                reported = {day: status.value for day, status in remote.day_statuses().items()}
                await db.execute("BEGIN IMMEDIATE")
                async with db.execute(
                    "SELECT state, poll_count FROM jobs WHERE id = ?", (job_id,)
                ) as cursor:
                    _, poll_count = await cursor.fetchone()  # type: ignore[misc]
                async with db.execute(
                    "SELECT day, status FROM days WHERE account_sid = ? AND job_id = ? "
                    "ORDER BY day",
                    (ACCOUNT, job_id),
                ) as cursor:
                    held = list(await cursor.fetchall())
                changes = [
                    (day, status, reported[dt.date.fromisoformat(day)])
                    for day, status in held
                    if reported.get(dt.date.fromisoformat(day), status) != status
                ]
                if changes:
                    await db.executemany(
                        "INSERT INTO transitions (account_sid, resource_type, day, job_id, "
                        "job_sid, from_status, to_status, observed_at, observed_by) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (ACCOUNT, resource_type, day, job_id, job_sid, old, new, now, "poll")
                            for day, old, new in changes
                        ],
                    )
                    await db.executemany(
                        "UPDATE days SET status = ?, completed_at = ?, last_changed_at = ? "
                        "WHERE account_sid = ? AND resource_type = ? AND day = ? "
                        "AND job_id = ? AND status = ?",
                        [
                            _day_row(new, now, resource_type, day, job_id, old)
                            for day, old, new in changes
                        ],
                    )
                after = dict(held) | {d: n for d, _, n in changes}
                finished = all(status in _SUCCESS for status in after.values())
                await db.execute(
                    "UPDATE jobs SET last_polled_at = ?, next_poll_at = ?, poll_count = ?, "
                    "queue_position = ?, eta = ?, last_change_at = COALESCE(?, last_change_at), "
                    "state = ?, finished_at = ? WHERE id = ?",
                    (
                        now,
                        None if finished else fmt(NOW + NEXT_POLL),
                        0 if changes else poll_count + 1,
                        remote.job_queue_position,
                        fmt(remote.estimated_completion_time)
                        if remote.estimated_completion_time
                        else None,
                        now if changes else None,
                        "finished" if finished else "active",
                        now if finished else None,
                        job_id,
                    ),
                )
                await db.execute("COMMIT")
                written += len(changes)


async def _floor_postgres(dsn: str, schema: str, client: MemoryClient) -> int:
    import asyncpg

    written = 0
    db = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        while True:
            due = await db.fetch(
                "SELECT id, job_sid, resource_type FROM jobs WHERE account_sid = $1 "
                "AND state = 'active' AND next_poll_at <= $2 ORDER BY next_poll_at, id LIMIT $3",
                ACCOUNT,
                NOW,
                MAX_POLLS_PER_PASS,
            )
            if not due:
                return written
            for job_id, job_sid, resource_type in due:
                remote = await client.fetch_job(job_sid)
                reported = {day: status.value for day, status in remote.day_statuses().items()}
                async with db.transaction():
                    job = await db.fetchrow(
                        "SELECT state, poll_count FROM jobs WHERE id = $1 FOR UPDATE", job_id
                    )
                    assert job is not None
                    held = await db.fetch(
                        "SELECT day, status FROM days WHERE account_sid = $1 AND job_id = $2 "
                        "ORDER BY day FOR UPDATE",
                        ACCOUNT,
                        job_id,
                    )
                    changes = [
                        (row["day"], row["status"], reported[row["day"]])
                        for row in held
                        if reported.get(row["day"], row["status"]) != row["status"]
                    ]
                    if changes:
                        await db.executemany(
                            "INSERT INTO transitions (account_sid, resource_type, day, job_id, "
                            "job_sid, from_status, to_status, observed_at, observed_by) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                            [
                                (ACCOUNT, resource_type, d, job_id, job_sid, o, n, NOW, "poll")
                                for d, o, n in changes
                            ],
                        )
                        await db.executemany(
                            "UPDATE days SET status = $1, completed_at = $2, "
                            "last_changed_at = $3 WHERE account_sid = $4 AND resource_type = $5 "
                            "AND day = $6 AND job_id = $7 AND status = $8",
                            [_day_row(n, NOW, resource_type, d, job_id, o) for d, o, n in changes],
                        )
                    after = {row["day"]: row["status"] for row in held}
                    after |= {d: n for d, _, n in changes}
                    finished = all(status in _SUCCESS for status in after.values())
                    await db.execute(
                        "UPDATE jobs SET last_polled_at = $1, next_poll_at = $2, "
                        "poll_count = $3, queue_position = $4, eta = $5, "
                        "last_change_at = COALESCE($6, last_change_at), state = $7, "
                        "finished_at = $8 WHERE id = $9",
                        NOW,
                        None if finished else NOW + NEXT_POLL,
                        0 if changes else job["poll_count"] + 1,
                        remote.job_queue_position,
                        remote.estimated_completion_time,
                        NOW if changes else None,
                        "finished" if finished else "active",
                        NOW if finished else None,
                        job_id,
                    )
                    written += len(changes)
    finally:
        await db.close()


# ---------------------------------------------------------------------------------- the runs


async def _count_poll_transitions(engine: Any) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(
            transitions.c.observed_by.in_([ObservedBy.POLL, ObservedBy.RESUBMIT])
        )
        return int((await conn.execute(query)).scalar_one())


async def _timed(work: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    wall = time.perf_counter()
    cpu = time.process_time()
    result = await work()
    return time.process_time() - cpu, time.perf_counter() - wall, result


@contextlib.asynccontextmanager
async def _postgres_schema(url: str) -> AsyncIterator[str]:
    """A fresh schema on ``url`` for one side's state, dropped after."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


async def _run_sqlite(job_count: int, days_per_job: int, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (bench set-up, before timing)
    config = write_config(directory, "http://127.0.0.1:9", BODY, archive=False)
    settings = load_settings(config, environ={TOKEN_ENV: TOKEN})
    settings.state.directory.mkdir(parents=True, exist_ok=True)
    db_path = settings.state.directory / "orchestrator.sqlite"
    engine = create_engine(settings.state.database_url.get_secret_value())
    try:
        await upgrade_to_head(engine)
        store = Store(engine, ACCOUNT)
        await _build(store, engine, job_count, days_per_job)
    finally:
        await engine.dispose()
    floor_path = directory / "floor.sqlite"
    # The backup API copies the database with what its WAL holds, as one consistent file.
    with (
        contextlib.closing(sqlite3.connect(db_path)) as src,
        contextlib.closing(sqlite3.connect(floor_path)) as dst,
    ):
        src.backup(dst)

    floor_cpu, floor_wall, floor_written = await _timed(
        lambda: _floor_sqlite(floor_path, MemoryClient(job_count, days_per_job))
    )
    engine = create_engine(settings.state.database_url.get_secret_value())
    try:
        store = Store(engine, ACCOUNT)
        ctx = _poll_context(store, MemoryClient(job_count, days_per_job), config)
        daemon_cpu, daemon_wall, polled = await _timed(lambda: _poll_until_idle(ctx))
        daemon_written = await _count_poll_transitions(engine)
    finally:
        await engine.dispose()
    return _figures(
        job_count, polled, (daemon_cpu, daemon_wall, daemon_written), (floor_cpu, floor_wall)
    ) | {"floor_transitions": floor_written}


async def _run_postgres(
    url: str, job_count: int, days_per_job: int, directory: Path
) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (bench set-up, before timing)
    config = write_config(directory, "http://127.0.0.1:9", BODY, archive=False)
    async with _postgres_schema(url) as daemon_schema, _postgres_schema(url) as floor_schema:
        for schema in (daemon_schema, floor_schema):
            engine = create_engine(url, schema=schema)
            try:
                await upgrade_to_head(engine)
                await _build(Store(engine, ACCOUNT), engine, job_count, days_per_job)
            finally:
                await engine.dispose()
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        floor_cpu, floor_wall, floor_written = await _timed(
            lambda: _floor_postgres(dsn, floor_schema, MemoryClient(job_count, days_per_job))
        )
        engine = create_engine(url, schema=daemon_schema)
        try:
            ctx = _poll_context(
                Store(engine, ACCOUNT), MemoryClient(job_count, days_per_job), config
            )
            daemon_cpu, daemon_wall, polled = await _timed(lambda: _poll_until_idle(ctx))
            daemon_written = await _count_poll_transitions(engine)
        finally:
            await engine.dispose()
    return _figures(
        job_count, polled, (daemon_cpu, daemon_wall, daemon_written), (floor_cpu, floor_wall)
    ) | {"floor_transitions": floor_written}


async def _poll_until_idle(ctx: Any) -> int:
    polled = 0
    while count := await poll_due_jobs(ctx):
        polled += count
    return polled


def _figures(
    job_count: int,
    polled: int,
    daemon: tuple[float, float, int],
    floor: tuple[float, float],
) -> dict[str, Any]:
    daemon_cpu, daemon_wall, written = daemon
    floor_cpu, floor_wall = floor
    return {
        "jobs": job_count,
        "jobs_polled": polled,
        "daemon_cpu_s": daemon_cpu,
        "daemon_wall_s": daemon_wall,
        "daemon_cpu_ms_per_job": daemon_cpu / max(1, job_count) * 1000,
        "floor_cpu_s": floor_cpu,
        "floor_wall_s": floor_wall,
        "floor_cpu_ms_per_job": floor_cpu / max(1, job_count) * 1000,
        "ratio": daemon_cpu / floor_cpu if floor_cpu > 0 else float("nan"),
        "daemon_transitions": written,
    }


async def run(
    job_count: int = 1000, days_per_job: int = 30, *, postgres_url: str | None = None
) -> dict[str, Any]:
    """Both sides on SQLite, and on PostgreSQL when ``postgres_url`` is given."""
    random.seed(7)
    results: dict[str, Any] = {"target_ratio": TARGET_RATIO}
    with quiet_logs(), tempfile.TemporaryDirectory(prefix="orch-pollcost-") as tmp:
        results["sqlite"] = await _run_sqlite(job_count, days_per_job, Path(tmp) / "sqlite")
        if postgres_url:
            results["postgresql"] = await _run_postgres(
                postgres_url, job_count, days_per_job, Path(tmp) / "postgresql"
            )
    sqlite = results["sqlite"]
    results["target_met"] = sqlite["ratio"] <= TARGET_RATIO and (
        sqlite["daemon_transitions"] == sqlite["floor_transitions"]
    )
    return results


def render(figures: dict[str, Any]) -> list[str]:
    """The table lines of ``run``'s figures."""
    lines = [
        "6. Poll cost: CPU per polled job, the daemon's poll pass vs the bare driver (floor)",
    ]
    for dialect in ("sqlite", "postgresql"):
        entry = figures.get(dialect)
        if entry is None:
            lines.append(f"   {dialect:10s} not run (no --postgres-url)")
            continue
        lines.append(
            f"   {dialect:10s} {entry['jobs']:,} jobs: daemon {entry['daemon_cpu_ms_per_job']:.2f}"
            f" ms CPU/job ({entry['daemon_cpu_s']:.2f} s), floor "
            f"{entry['floor_cpu_ms_per_job']:.2f} ms/job ({entry['floor_cpu_s']:.2f} s); "
            f"ratio {entry['ratio']:.2f}; transitions {entry['daemon_transitions']:,} vs "
            f"{entry['floor_transitions']:,}"
        )
    verdict = "met" if figures["target_met"] else "MISSED"
    lines.append(f"   target SQLite ratio <= {figures['target_ratio']:.0f}: {verdict}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--days-per-job", type=int, default=30)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    figures = asyncio.run(run(args.jobs, args.days_per_job, postgres_url=args.postgres_url))
    print("\n".join(render(figures)))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
