"""Polling economy, time to notice, and whole-run request economy (items 1 and 2).

    python -m bench.polling_bench [--quick]

A backfill of two resource types (365 days each by default) runs through the daemon's real
workflows against the simulator on a ManualClock (see ``bench.harness``), once per simulator
scenario (job durations of seconds, minutes and hours; ETA noise +-30 %) and poll policy:

- ``daemon``: the real ``poll_due_jobs`` with the configured PollPolicy (backoff reset on
  change, ETA and queue position as hints);
- ``fixed_60s``: a fetch every 60 s;
- ``exp_30s_30m``: 30 s doubling per fetch since submission, capped at 30 min, no hints.

Per job: fetches until the store recorded it final, and detection delay = the time the store
recorded the job finished minus the time its last day became final on the simulator (read from
the simulator's ledger; the daemon never sees it). Per run: requests by kind against the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.harness import (
    ACCOUNT,
    PREFIX,
    TOKEN,
    Burst,
    quiet_logs,
    request_kinds,
    workflow_context,
)
from bench.policies import FixedInterval, PlainExponential
from orchestrator.clock import ManualClock
from orchestrator.domain.polling import PollPolicy, PollStrategy
from orchestrator.simulator import SimulatorSettings, running_simulator
from orchestrator.workflows.archive import archive_due_days
from orchestrator.workflows.context import WorkflowContext

START = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
FIRST_DAY = dt.date(2025, 1, 1)
FETCH_ROUTE = "/v1/Exports/Jobs/{JobSid}"
POLICIES = ("daemon", "eta_point", "fixed_60s", "exp_30s_30m")
# Generous: a run that needs more simulated time than this is reported incomplete.
RUN_LIMIT = dt.timedelta(days=20)


@dataclass(frozen=True)
class Scenario:
    """Simulator timings giving one band of job durations (queueing included)."""

    name: str
    job_base_seconds: float
    day_seconds: tuple[float, float]
    max_running_jobs: int


SCENARIOS = (
    Scenario("seconds", 2.0, (0.1, 0.6), 4),
    Scenario("minutes", 30.0, (5.0, 20.0), 2),
    Scenario("hours", 120.0, (60.0, 300.0), 2),
)


@dataclass(frozen=True)
class Workload:
    days_per_type: int = 365
    max_days_per_job: int = 31


QUICK = Workload(days_per_type=8, max_days_per_job=4)


def config_body(workload: Workload) -> str:
    last = FIRST_DAY + dt.timedelta(days=workload.days_per_type - 1)
    return f"""
        [jobs]
        name_prefix = "{PREFIX}"
        max_days_per_job = {workload.max_days_per_job}

        [[exports]]
        name = "messages-backfill"
        resource_type = "Messages"
        start_day = "{FIRST_DAY}"
        end_day = "{last}"

        [[exports]]
        name = "calls-backfill"
        resource_type = "Calls"
        start_day = "{FIRST_DAY}"
        end_day = "{last}"
        """


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 24 values is the 23rd smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _with_strategy(policy: str, ctx: WorkflowContext) -> WorkflowContext:
    """``ctx`` with the poll strategy named ``policy`` (the daemon's own for "daemon")."""
    daemon = ctx.policies.poll
    assert isinstance(daemon, PollPolicy)
    choices: dict[str, PollStrategy] = {
        "daemon": daemon,
        # The ETA taken as exact (polled at ETA + initial): what the ETA window improves on.
        "eta_point": replace(daemon, eta_error=0.0),
        "fixed_60s": FixedInterval(60.0),
        "exp_30s_30m": PlainExponential(),
    }
    if policy not in choices:
        raise ValueError(f"unknown policy {policy!r}")
    return replace(ctx, policies=replace(ctx.policies, poll=choices[policy]))


async def run_one(
    scenario: Scenario, policy: str, workload: Workload, *, archive: bool, seed: int = 11
) -> dict[str, Any]:
    """One backfill; per-job figures and request counts."""
    clock = ManualClock(START)
    sim_settings = SimulatorSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        seed=seed,
        clock=clock,
        max_running_jobs=scenario.max_running_jobs,
        job_base_seconds=scenario.job_base_seconds,
        day_seconds=scenario.day_seconds,
        eta_noise=0.3,
        request_log_limit=5_000_000,
    )
    archiver = archive_due_days if archive else None
    wall = time.perf_counter()
    cpu = time.process_time()
    async with (
        running_simulator(sim_settings) as sim,
        workflow_context(sim, config_body(workload), clock, archive=archiver is not None) as (
            ctx,
            settings,
        ),
    ):
        burst = Burst(
            ctx=_with_strategy(policy, ctx), clock=clock, settings=settings, archive=archiver
        )
        outcome = await burst.run(limit=RUN_LIMIT)
        stored = {j.job_sid: j for j in await ctx.store.list_jobs() if j.job_sid}
        days = await ctx.store.list_days()
        fetches = collections.Counter(
            r.path.rsplit("/", 1)[1] for r in sim.requests(route=FETCH_ROUTE, method="GET")
        )
        kinds = request_kinds(sim.stats())
        jobs = []
        for sim_job in sim.engine.ledger.jobs:
            job = stored.get(sim_job.job_sid)
            if job is None or sim_job.finished_at is None or job.finished_at is None:
                continue
            duration = (sim_job.finished_at - sim_job.created_at).total_seconds()
            delay = (job.finished_at - sim_job.finished_at).total_seconds()
            bound = max(60.0, 0.1 * duration)
            jobs.append(
                {
                    "days": sim_job.day_count,
                    "duration_s": duration,
                    "fetches": fetches[sim_job.job_sid],
                    "detection_delay_s": delay,
                    "bound_s": bound,
                    "within_bound": delay <= bound,
                }
            )
    exported = sum(1 for d in days if d.status.is_success)
    return {
        "scenario": scenario.name,
        "policy": policy,
        "completed": outcome.completed,
        "simulated_hours": (outcome.ended_at - outcome.started_at).total_seconds() / 3600,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "archiving": archiver is not None,
        "jobs_created": len(sim.engine.ledger.jobs),
        "jobs_finished": len(jobs),
        "exported_days": exported,
        "requests": kinds,
        "passes": outcome.passes,
        "jobs": jobs,
    }


def _run_one_quietly(
    scenario: Scenario, policy: str, workload: Workload, archive: bool
) -> dict[str, Any]:
    """``run_one`` in a worker process."""
    with quiet_logs():
        return asyncio.run(run_one(scenario, policy, workload, archive=archive))


def summarize_jobs(jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    fetches = [float(j["fetches"]) for j in jobs]
    delays = [float(j["detection_delay_s"]) for j in jobs]
    ratios = [float(j["detection_delay_s"]) / float(j["bound_s"]) for j in jobs]
    durations = [float(j["duration_s"]) for j in jobs]
    fetch_median = statistics.median(fetches) if fetches else math.nan
    delay_ratio_p95 = percentile(ratios, 0.95)
    return {
        "jobs": len(jobs),
        "duration_min_s": min(durations, default=math.nan),
        "duration_max_s": max(durations, default=math.nan),
        "fetches_median": fetch_median,
        "fetches_p95": percentile(fetches, 0.95),
        "fetches_total": int(sum(fetches)),
        "delay_median_s": statistics.median(delays) if delays else math.nan,
        "delay_p95_s": percentile(delays, 0.95),
        # p95 of delay / max(60 s, 10 % of the job's duration): <= 1 meets the per-job bound.
        "delay_over_bound_p95": delay_ratio_p95,
        "within_bound_share": (sum(1 for j in jobs if j["within_bound"]) / len(jobs))
        if jobs
        else math.nan,
        "target_met": fetch_median <= 3 and delay_ratio_p95 <= 1,
    }


def economy(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Requests by kind per exported day against the floor, over the daemon-policy runs."""
    totals = collections.Counter[str]()
    jobs = days = 0
    for run in runs:
        totals.update(run["requests"])
        jobs += run["jobs_created"]
        days += run["exported_days"]
    archiving = bool(runs) and all(run["archiving"] for run in runs)
    floor_no_archive = 3 * jobs
    floor_archive = 3 * jobs + 2 * days
    total = sum(totals.values())
    per_day = {k: v / days for k, v in totals.items()} if days else {}
    result: dict[str, Any] = {
        "archiving": archiving,
        "jobs": jobs,
        "exported_days": days,
        "requests": dict(totals),
        "requests_total": total,
        "requests_per_day": per_day,
        "floor_without_archiving": floor_no_archive,
        "floor_with_archiving": floor_archive,
        "ratio_to_floor": total / max(1, floor_archive if archiving else floor_no_archive),
        "target_met": (total / floor_archive <= 1.3) if archiving else None,
    }
    if not archiving:
        # What the ratio would be if archiving added exactly its floor (1 day + 1 download/day).
        result["ratio_if_archiving_at_floor"] = (total + 2 * days) / max(1, floor_archive)
    return result


async def run(
    workload: Workload = Workload(),
    *,
    scenarios: Sequence[Scenario] = SCENARIOS,
    policies: Sequence[str] = POLICIES,
    archive: bool = True,
    workers: int = os.cpu_count() or 1,
) -> dict[str, Any]:
    """Every scenario x policy; figures per run, per policy (all scenarios pooled), economy.

    The runs are independent (each its own simulator, clock and database) and their figures
    are in simulated time, so they run side by side in ``workers`` processes.
    """
    jobs = [
        (scenario, policy, workload, archive and policy == "daemon")
        for scenario in scenarios
        for policy in policies
    ]
    # Longest first, so the longest does not start last: the fixed 60 s policy on the longest
    # jobs alone takes about as long as all the other runs together.
    jobs.sort(key=lambda job: (-job[0].job_base_seconds, job[1] != "fixed_60s"))
    if workers <= 1:
        with quiet_logs():
            runs = [await run_one(s, p, w, archive=a) for s, p, w, a in jobs]
    else:
        loop = asyncio.get_running_loop()
        # spawn, not fork: the parent may hold threads (aiosqlite) and a running event loop.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            runs = list(
                await asyncio.gather(
                    *(loop.run_in_executor(pool, _run_one_quietly, *job) for job in jobs)
                )
            )
    by_policy: dict[str, Any] = {}
    for policy in policies:
        mine = [r for r in runs if r["policy"] == policy]
        summary = summarize_jobs([j for r in mine for j in r["jobs"]])
        summary["per_scenario"] = {
            r["scenario"]: {k: v for k, v in summarize_jobs(r["jobs"]).items() if k != "target_met"}
            | {"simulated_hours": r["simulated_hours"], "completed": r["completed"]}
            for r in mine
        }
        by_policy[policy] = summary
    return {
        "workload": dataclasses.asdict(workload),
        "scenarios": [dataclasses.asdict(s) for s in scenarios],
        "policies": by_policy,
        "economy": economy([r for r in runs if r["policy"] == "daemon"])
        if "daemon" in policies
        else None,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny backfill")
    args = parser.parse_args()
    result = asyncio.run(run(QUICK if args.quick else Workload()))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2, default=str))


if __name__ == "__main__":
    main()
