"""Store throughput: day transitions applied per second, on SQLite and PostgreSQL (item 5).

    python -m bench.throughput_bench [--size N] [--jobs J] [--postgres-url URL]

Two shapes of the same call, ``Store.settle_job`` with ``settlement.settle_report``:

- one big batch: ``bench.store_bench`` (``size`` days of one job turn Running at once);
- job-sized batches, as polling produces them: ``jobs`` jobs of 31 days each, each applied in
  its own transaction (two reports per job: 10 days Completed + 1 Running, then the rest
  Completed, which also finishes the job).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import time
from typing import Any

from bench import store_bench
from bench.harness import quiet_logs
from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    JobRequest,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_report
from orchestrator.store import Store, upgrade_to_head

DAYS_PER_JOB = 31
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
FIRST_DAY = dt.date(1990, 1, 1)


async def _job_batches(url: str | None, job_count: int) -> dict[str, float]:
    async with store_bench._database(url) as engine:
        await upgrade_to_head(engine)
        store = Store(engine, store_bench.ACCOUNT)
        keys = [
            DayKey(ResourceType.CALLS, FIRST_DAY + dt.timedelta(days=i))
            for i in range(job_count * DAYS_PER_JOB)
        ]
        await store.upsert_wanted_days(keys, NOW)
        held: list[tuple[int, list[dt.date]]] = []
        for n in range(job_count):
            first = FIRST_DAY + dt.timedelta(days=n * DAYS_PER_JOB)
            last = first + dt.timedelta(days=DAYS_PER_JOB - 1)
            request = JobRequest(
                ResourceType.CALLS,
                first,
                last,
                1,
                friendly_name("bench", ResourceType.CALLS, first, last, 1),
            )
            job = await store.claim_days(request, NOW)
            await store.record_job_sid(job.id, f"JS{n:032x}", NOW, NOW)
            held.append((job.id, [first + dt.timedelta(days=i) for i in range(DAYS_PER_JOB)]))
        transitions = 0
        start = time.perf_counter()
        for step, later in ((1, dt.timedelta(minutes=1)), (2, dt.timedelta(minutes=2))):
            for job_id, job_days in held:
                if step == 1:
                    report = dict.fromkeys(job_days[:10], DayStatus.COMPLETED)
                    report[job_days[10]] = DayStatus.RUNNING
                    report |= dict.fromkeys(job_days[11:], DayStatus.SUBMITTED)
                else:
                    report = dict.fromkeys(job_days, DayStatus.COMPLETED)
                changes = await store.settle_job(
                    job_id,
                    functools.partial(
                        settle_report,
                        reported=report,
                        resubmit=ResubmitPolicy(3, dt.timedelta(minutes=15)),
                        now=NOW + later,
                        observed_by=ObservedBy.POLL,
                    ),
                )
                transitions += len(changes.changes)
        elapsed = time.perf_counter() - start
    return {
        "job_batches_transitions": float(transitions),
        "job_batches_applies": float(2 * job_count),
        "job_batches_ms_per_apply": elapsed / (2 * job_count) * 1000,
        "job_batches_transitions_per_second": transitions / elapsed,
    }


async def run(size: int = 10_000, jobs: int = 200, url: str | None = None) -> dict[str, Any]:
    """Figures keyed ``<dialect>.<measure>``; PostgreSQL only when ``url`` is given."""
    with quiet_logs():
        figures: dict[str, Any] = dict(await store_bench.run(size, url))
        for dialect, target in (("sqlite", None), ("postgresql", url)):
            if dialect == "postgresql" and url is None:
                continue
            for name, value in (await _job_batches(target, jobs)).items():
                figures[f"{dialect}.{name}"] = value
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.size, args.jobs, args.postgres_url)), indent=2))


if __name__ == "__main__":
    main()
