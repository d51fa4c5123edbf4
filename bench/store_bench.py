"""Store benchmark: one big batch of day transitions, and due-job selection among many jobs.

    python -m bench.store_bench [--size N] [--postgres-url URL]

Runs on a temporary SQLite file always, and on a throw-away schema of PostgreSQL when a URL is
given. Prints milliseconds per operation and day transitions per second.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    JobRequest,
    JobState,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_report
from orchestrator.store import Store, create_engine, upgrade_to_head
from orchestrator.store.schema import jobs

ACCOUNT = "AC" + "b" * 32
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
FIRST_DAY = dt.date(1990, 1, 1)
REPEATS = 5
T = TypeVar("T")


async def _timed(operation: Awaitable[T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = await operation
    return result, (time.perf_counter() - start) * 1000


@asynccontextmanager
async def _database(url: str | None) -> AsyncIterator[AsyncEngine]:
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
            try:
                yield engine
            finally:
                await engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        engine = create_engine(url, schema=schema)
        try:
            yield engine
        finally:
            await engine.dispose()
            async with admin.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.dispose()


async def _seed_active_jobs(engine: AsyncEngine, count: int) -> None:
    # Seeding only: the benchmark measures the repository's reads, not 2x`count` claims.
    # Half the jobs are due at NOW, half later.
    rows = [
        {
            "account_sid": ACCOUNT,
            "friendly_name": f"seed-{i}",
            "job_sid": f"JS{i:032x}",
            "resource_type": ResourceType.CALLS,
            "start_day": FIRST_DAY,
            "end_day": FIRST_DAY,
            "day_count": 1,
            "state": JobState.ACTIVE,
            "attempt": 1,
            "created_at": NOW,
            "submitted_at": NOW,
            "last_change_at": NOW,
            "next_poll_at": NOW + dt.timedelta(seconds=(i % 2) * 3600 - i % 1000),
            "poll_count": 0,
        }
        for i in range(count)
    ]
    async with engine.begin() as conn:
        await conn.execute(sa.insert(jobs), rows)


async def _bench_one(size: int, url: str | None) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with _database(url) as engine:
        await upgrade_to_head(engine)
        store = Store(engine, ACCOUNT)
        days = [FIRST_DAY + dt.timedelta(days=i) for i in range(size)]
        last = days[-1]
        request = JobRequest(
            ResourceType.MESSAGES,
            FIRST_DAY,
            last,
            1,
            friendly_name("bench", ResourceType.MESSAGES, FIRST_DAY, last, 1),
        )
        keys = [DayKey(ResourceType.MESSAGES, d) for d in days]
        _, figures["upsert_days_ms"] = await _timed(store.upsert_wanted_days(keys, NOW))
        job, figures["claim_days_ms"] = await _timed(store.claim_days(request, NOW))
        _, figures["record_sid_ms"] = await _timed(
            store.record_job_sid(job.id, "JS" + "f" * 32, NOW, NOW)
        )
        changes, figures["apply_transitions_ms"] = await _timed(
            store.settle_job(
                job.id,
                functools.partial(
                    settle_report,
                    reported=dict.fromkeys(days, DayStatus.RUNNING),
                    resubmit=ResubmitPolicy(3, dt.timedelta(hours=1)),
                    now=NOW + dt.timedelta(minutes=1),
                    observed_by=ObservedBy.POLL,
                ),
            )
        )
        assert len(changes.changes) == size
        figures["transitions_per_second"] = size / (figures["apply_transitions_ms"] / 1000)
        _, figures["apply_again_noop_ms"] = await _timed(
            store.settle_job(
                job.id,
                functools.partial(
                    settle_report,
                    reported=dict.fromkeys(days, DayStatus.RUNNING),
                    resubmit=ResubmitPolicy(3, dt.timedelta(hours=1)),
                    now=NOW + dt.timedelta(minutes=2),
                    observed_by=ObservedBy.POLL,
                ),
            )
        )

        await _seed_active_jobs(engine, size)
        for label, limit in (("due_jobs_limit_100_ms", 100), ("due_jobs_all_ms", size)):
            timings = []
            for _ in range(REPEATS):
                due, ms = await _timed(store.jobs_due_for_poll(NOW, limit))
                assert due
                timings.append(ms)
            figures[label] = statistics.median(timings)
        _, figures["stale_jobs_ms"] = await _timed(store.jobs_stale(NOW, dt.timedelta(hours=1)))
        _, figures["pending_days_ms"] = await _timed(store.pending_days(NOW))
    return figures


async def run(size: int, url: str | None) -> dict[str, float]:
    """Benchmark SQLite (and PostgreSQL at ``url``); figures keyed ``<dialect>.<measure>``."""
    results = {f"sqlite.{k}": v for k, v in (await _bench_one(size, None)).items()}
    if url is not None:
        results |= {f"postgresql.{k}": v for k, v in (await _bench_one(size, url)).items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="days in the batch, active jobs")
    parser.add_argument("--postgres-url", default=None, help="also run on this PostgreSQL")
    args = parser.parse_args()
    results = asyncio.run(run(args.size, args.postgres_url))
    print(f"store bench, size={args.size}")
    for name, value in results.items():
        unit = "/s" if name.endswith("per_second") else " ms"
        print(f"  {name:45s} {value:12,.1f}{unit}")


if __name__ == "__main__":
    main()
