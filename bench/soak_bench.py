"""Soak: a real ``orchestrator run`` for simulated weeks on a sped-up clock; memory, CPU, safety.

    python -m bench.soak_bench [--weeks 1] [--speed 2000] [--trace DIR]

A simulator serves in this process; the daemon is a subprocess, both on one ``ScaledClock``
(``--clock-speed/--clock-start/--clock-anchor``). The config wants sliding ``last_days``
exports of Messages, Calls and Conferences and an open-ended Participants export, with
archiving to a local directory, so new days become eligible every simulated midnight and keep
the submit, poll, archive and cleanup passes busy. Faults come at a low seeded rate (429s,
500s, days through ErrorDuringRun or Failed, truncated files).

Every ``sample_seconds`` the daemon's RSS (``/proc/<pid>/status`` VmRSS) and CPU (utime +
stime) are read and its ``/metrics`` scraped for ``orchestrator_passes_total`` per pass. After
``warmup`` (a share of the run) the RSS samples are fitted with a least-squares line; its
slope divided by each kind's pass rate is the growth per 1,000 passes of that kind.

At the end of the window the bench keeps the daemon running (no longer measured) until every
day eligible at that moment is final and archived, or ``drain`` simulated time passes; then
it checks that every eligible day of every export is recorded, final and archived, and that no
file expired on Twilio before it was archived. Time to safety per archived day: from the
file's creation on the simulator (its ledger: the Days list's ``create_date``) to the
``archived_at`` the daemon recorded, in simulated hours.

``--trace DIR`` runs the daemon under ``bench.soak_trace`` (tracemalloc snapshots in DIR, or
with ``--objects`` object counts and allocator figures) to find where memory goes; that costs
the daemon time, so the figures of such a run are not comparable with a plain one.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import ACCOUNT, PREFIX, TOKEN, TOKEN_ENV, quiet_logs, write_config
from bench.idle_bench import cpu_seconds
from orchestrator.clock import ScaledClock
from orchestrator.domain.model import DayStatus, ResourceType
from orchestrator.simulator import FaultSettings, SimulatorSettings, running_simulator
from orchestrator.store.engine import create_engine
from orchestrator.store.repository import Store

# Simulated time at the clock anchor (a Sunday noon; no relation to the real date).
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PASS_KINDS = ("wanted", "submit", "poll", "archive", "cleanup", "orphans")
SUCCESS = frozenset({DayStatus.COMPLETED, DayStatus.COMPLETED_EMPTY_RECORDS})
SLIDING = (ResourceType.MESSAGES, ResourceType.CALLS, ResourceType.CONFERENCES)
START_TIMEOUT = 60.0
# The checkout: the daemon runs from it, so ``-m bench.soak_trace`` is importable.
ROOT = Path(__file__).resolve().parent.parent
_PASSES_LINE = re.compile(r'^orchestrator_passes_total\{pass="([a-z_]+)"\} ([0-9.e+]+)$', re.M)


@dataclass(frozen=True, slots=True)
class Soak:
    """One soak run's size and shape."""

    # Simulated weeks measured (after start-up, warm-up included).
    weeks: float = 1.0
    # Simulated seconds per real second (2,000: one week in about 5 real minutes).
    speed: float = 2000.0
    # Real seconds between samples.
    sample_seconds: float = 5.0
    # Share of the window before the growth fit starts.
    warmup: float = 0.2
    # Days of each sliding export; the open-ended one starts this many days before eligibility.
    window_days: int = 7
    # The rate of each kind of fault (per request, per day, per file).
    fault_rate: float = 0.01
    # Simulated time the end-of-run checks wait for the last eligible days to be archived.
    drain: dt.timedelta = dt.timedelta(days=1)
    seed: int = 1


TINY = Soak(weeks=0.05, sample_seconds=1.0, warmup=0.3, window_days=2)


def _config_body(soak: Soak, archive: Path, open_from: dt.date) -> str:
    sliding = "".join(
        f"""
        [[exports]]
        name = "recent-{rt.value.lower()}"
        resource_type = "{rt.value}"
        last_days = {soak.window_days}
        """
        for rt in SLIDING
    )
    return f"""
        [jobs]
        name_prefix = "{PREFIX}"

        [logging]
        level = "info"
        format = "json"

        [http]
        listen = "127.0.0.1:0"

        [archive]
        directory = "{archive}"
        {sliding}
        [[exports]]
        name = "all-participants"
        resource_type = "Participants"
        start_day = "{open_from}"
        """


def _simulator(soak: Soak, clock: ScaledClock) -> SimulatorSettings:
    rate = soak.fault_rate
    faults = FaultSettings(
        failed_day_fraction=rate,
        error_during_run_fraction=rate,
        rate_limit_fraction=rate,
        retry_after_seconds=0.05,
        server_error_fraction=rate,
        truncated_file_fraction=rate,
    )
    return SimulatorSettings(
        account_sid=ACCOUNT, auth_token=TOKEN, seed=soak.seed, clock=clock, faults=faults
    )


def expected_days(
    soak: Soak, open_from: dt.date, started: dt.datetime, now: dt.datetime
) -> set[tuple[str, dt.date]]:
    """Every day some export wants and Twilio accepts at ``now`` for a daemon whose first
    wanted pass ran at ``started`` (a day once wanted stays wanted)."""
    first_now = started.date() - dt.timedelta(days=2)
    last = now.date() - dt.timedelta(days=2)
    wanted: set[tuple[str, dt.date]] = set()
    for rt in SLIDING:
        day = first_now - dt.timedelta(days=soak.window_days - 1)
        while day <= last:
            wanted.add((rt.value, day))
            day += dt.timedelta(days=1)
    day = open_from
    while day <= last:
        wanted.add((ResourceType.PARTICIPANTS.value, day))
        day += dt.timedelta(days=1)
    return wanted


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (Linux /proc)."""
    return _status(pid, "VmRSS") / 1024


def threads(pid: int) -> int:
    """Threads of ``pid`` (the event loop's, and one per aiosqlite connection)."""
    return _status(pid, "Threads")


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _passes(text: str) -> dict[str, int]:
    return {m.group(1): int(float(m.group(2))) for m in _PASSES_LINE.finditer(text)}


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _logged_port(log: Path) -> int | None:
    """The port of the daemon's ``http.listening`` event, once it is in the log."""
    for line in log.read_text(errors="replace").splitlines():
        if '"http.listening"' in line:
            url = json.loads(line)["urls"][0]
            return int(url.rstrip("/").rsplit(":", 1)[1])
    return None


async def _listening_port(log: Path, proc: asyncio.subprocess.Process) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"the daemon exited early with {proc.returncode}")
        port = _logged_port(log)
        if port is not None:
            return port
        await asyncio.sleep(0.1)
    raise RuntimeError("the daemon did not start listening in time")


def _log_levels(log: Path) -> dict[str, dict[str, int]]:
    """Warning and error events of the daemon's log, by level and event name."""
    found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            found["unparsed"]["line"] += 1
            continue
        level = str(event.get("level"))
        if level in ("warning", "error", "critical"):
            found[level][str(event.get("event"))] += 1
    return {level: dict(counter) for level, counter in found.items()}


async def run(
    soak: Soak = Soak(), *, trace: Path | None = None, objects: bool = False
) -> dict[str, Any]:
    """One soak run; the figures and the end-of-run checks."""
    clock = ScaledClock(soak.speed, start=START, anchor=time.monotonic())
    open_from = START.date() - dt.timedelta(days=2 + soak.window_days + 1)
    window = dt.timedelta(weeks=soak.weeks)
    with tempfile.TemporaryDirectory(prefix="orch-soak-") as tmp, quiet_logs():
        root = Path(tmp)
        async with running_simulator(_simulator(soak, clock)) as sim:
            path = write_config(
                root, sim.base_url, _config_body(soak, root / "archive", open_from), archive=False
            )
            log = root / "daemon.log"
            env = {**os.environ, TOKEN_ENV: TOKEN}
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
                env.pop(name, None)
            clock_args = [
                "--clock-speed",
                repr(clock.speed),
                "--clock-start",
                clock.start.isoformat(),
                "--clock-anchor",
                repr(clock.anchor),
            ]
            head = ["-m", "orchestrator"]
            if trace is not None:
                head = ["-m", "bench.soak_trace", "--dump", str(trace)]
                head += ["--objects", "--"] if objects else ["--"]
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *head,
                    "run",
                    "--config",
                    str(path),
                    *clock_args,
                    env=env,
                    cwd=str(ROOT),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )
            try:
                port = await _listening_port(log, proc)
                # The first wanted pass follows the endpoint's start at once: the sliding
                # windows start from this moment (start-up may take simulated hours).
                started = clock.now()
                figures = await _measure(soak, clock, proc, port, window)
                ended = clock.now()
                drained = await _drain(soak, clock, proc, root, open_from, started, ended)
                checks = await _check(sim, soak, root, open_from, started, ended)
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), timeout=30)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
            logged = _log_levels(log)
    return {
        "soak": {**asdict(soak), "drain": soak.drain.total_seconds()},
        **figures,
        "drain_simulated_hours": drained,
        **checks,
        "log_warnings": logged.get("warning", {}),
        "log_errors": {**logged.get("error", {}), **logged.get("critical", {})},
        "unparsed_log_lines": logged.get("unparsed", {}).get("line", 0),
        "exit_code": proc.returncode,
    }


async def _measure(
    soak: Soak,
    clock: ScaledClock,
    proc: asyncio.subprocess.Process,
    port: int,
    window: dt.timedelta,
) -> dict[str, Any]:
    began_sim = clock.now()
    began = time.monotonic()
    samples: list[dict[str, Any]] = []
    url = f"http://127.0.0.1:{port}/metrics"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}")
            async with session.get(url) as answer:
                text = await answer.text()
            samples.append(
                {
                    "t": time.monotonic() - began,
                    "sim_hours": (clock.now() - began_sim).total_seconds() / 3600,
                    "rss_mb": rss_mb(proc.pid),
                    "threads": threads(proc.pid),
                    "cpu_s": cpu_seconds(proc.pid),
                    "passes": _passes(text),
                }
            )
            if clock.now() - began_sim >= window:
                break
            await asyncio.sleep(soak.sample_seconds)
    return summarize(samples, soak.warmup)


def summarize(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    """Growth, CPU and pass figures of a run's samples, after the first ``warmup`` share."""
    last = samples[-1]
    cut = last["t"] * warmup
    after = [s for s in samples if s["t"] >= cut] or samples[-1:]
    first = after[0]
    seconds = max(last["t"] - first["t"], 1e-9)
    growth_per_s = slope([s["t"] for s in after], [s["rss_mb"] for s in after])
    passes = {k: last["passes"].get(k, 0) - first["passes"].get(k, 0) for k in PASS_KINDS}
    total = sum(passes.values())
    per_1000 = {
        kind: (growth_per_s * seconds / count * 1000 if count else None)
        for kind, count in passes.items()
    }
    sim_days = (last["sim_hours"] - first["sim_hours"]) / 24
    cpu = last["cpu_s"] - first["cpu_s"]
    return {
        "real_seconds": last["t"],
        "simulated_days": last["sim_hours"] / 24,
        "measured_seconds": seconds,
        "measured_simulated_days": sim_days,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_warm_mb": first["rss_mb"],
        "rss_end_mb": last["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "rss_growth_mb_per_minute": growth_per_s * 60,
        "rss_growth_mb_per_10000_passes": (
            growth_per_s * seconds / total * 10_000 if total else None
        ),
        "rss_growth_mb_per_1000_passes": per_1000,
        "passes_measured": passes,
        "passes_measured_total": total,
        "passes_total": dict(last["passes"]),
        "cpu_s": last["cpu_s"],
        "threads_max": max(s["threads"] for s in samples),
        "cpu_s_per_simulated_day": cpu / sim_days if sim_days > 0 else None,
        "samples": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()} for s in samples
        ],
    }


async def _wanted_state(root: Path) -> list[Any]:
    database = root / "state" / "orchestrator.sqlite"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        return await Store(engine, ACCOUNT).list_days()
    finally:
        await engine.dispose()


def _safe(day: Any) -> bool:
    return day.status in SUCCESS and day.archive is not None


async def _drain(
    soak: Soak,
    clock: ScaledClock,
    proc: asyncio.subprocess.Process,
    root: Path,
    open_from: dt.date,
    started: dt.datetime,
    ended: dt.datetime,
) -> float:
    """Simulated hours until every day eligible at ``ended`` is safe (or the drain is over)."""
    eligible = expected_days(soak, open_from, started, ended)
    while clock.now() - ended < soak.drain and proc.returncode is None:
        days = {(d.resource_type.value, d.day): d for d in await _wanted_state(root)}
        if all(key in days and _safe(days[key]) for key in eligible):
            break
        await asyncio.sleep(0.2)
    return (clock.now() - ended).total_seconds() / 3600


async def _check(
    sim: Any, soak: Soak, root: Path, open_from: dt.date, started: dt.datetime, ended: dt.datetime
) -> dict[str, Any]:
    """Every day eligible at the window's end recorded, final and archived; time to safety."""
    eligible = expected_days(soak, open_from, started, ended)
    days = {(d.resource_type.value, d.day): d for d in await _wanted_state(root)}
    sim.engine.now()
    made: dict[tuple[str, dt.date], dt.datetime] = {}
    for job in sim.engine.ledger.jobs:
        for day in job.days:
            if day.completed_at is not None:
                key = (job.resource_type.value, day.day)
                made[key] = min(made.get(key, day.completed_at), day.completed_at)
    missing = sorted(key for key in eligible if key not in days)
    unsafe = sorted(
        (key, days[key].status.value) for key in eligible if key in days and not _safe(days[key])
    )
    hours: list[float] = []
    lost = []
    for key, day in days.items():
        created = made.get(key)
        if created is None or day.archive is None:
            if created is not None and ended - created > sim.settings.file_ttl:
                lost.append(key)
            continue
        waited = day.archive.archived_at - created
        hours.append(waited.total_seconds() / 3600)
        if waited > sim.settings.file_ttl:
            lost.append(key)
    state = root / "state"
    return {
        "db_mb": sum(p.stat().st_size for p in state.glob("orchestrator.sqlite*")) / 2**20,
        "eligible_days": len(eligible),
        "recorded_days": len(days),
        "archived_days": sum(1 for d in days.values() if d.archive is not None),
        "missing_days": [f"{rt} {day}" for rt, day in missing],
        "unsafe_days": [f"{rt} {day}: {status}" for (rt, day), status in unsafe],
        "all_final_and_archived": not missing and not unsafe,
        "files_lost_to_expiry": len(lost),
        "safety_hours_median": statistics.median(hours) if hours else float("nan"),
        "safety_hours_p95": _quantile(hours, 0.95),
        "safety_hours_max": max(hours, default=float("nan")),
        "jobs_created": len(sim.engine.ledger.jobs),
    }


def render(result: dict[str, Any]) -> list[str]:
    """The readable lines of a soak run."""
    per_kind = result["rss_growth_mb_per_1000_passes"]
    measured = result["passes_measured"]
    kinds = ", ".join(
        f"{k} {measured[k]:,} ({'-' if per_kind[k] is None else f'{per_kind[k]:+.3f}'})"
        for k in PASS_KINDS
    )
    per_10k = result["rss_growth_mb_per_10000_passes"]
    soak = result["soak"]
    lines = [
        f"10. Soak: {result['simulated_days']:.1f} simulated days at {soak['speed']:,.0f}x "
        f"({result['real_seconds']:.0f} s real), {sum(result['passes_total'].values()):,} passes, "
        f"{result['jobs_created']} jobs; database {result['db_mb']:.1f} MB, "
        f"{result['threads_max']} threads at most",
        f"   RSS {result['rss_start_mb']:.1f} MB at start, {result['rss_warm_mb']:.1f} after "
        f"warm-up, {result['rss_end_mb']:.1f} at end (max {result['rss_max_mb']:.1f}); "
        f"slope {result['rss_growth_mb_per_minute']:+.3f} MB per real minute",
        f"   after warm-up: {result['passes_measured_total']:,} passes; by kind, with MB of RSS "
        f"growth per 1,000 of them: {kinds}",
        "   RSS growth per 10,000 passes: "
        + ("-" if per_10k is None else f"{per_10k:+.3f} MB")
        + " (target < 1 MB: "
        + ("-" if per_10k is None else ("met" if per_10k < 1 else "MISSED"))
        + ")",
        f"   CPU {result['cpu_s_per_simulated_day'] or float('nan'):.2f} s per simulated day "
        f"after warm-up ({result['cpu_s']:.0f} s in all)",
        f"   time to safety (file made on Twilio -> archived), simulated hours: median "
        f"{result['safety_hours_median']:.2f}, p95 {result['safety_hours_p95']:.2f}, max "
        f"{result['safety_hours_max']:.2f} over {result['archived_days']} days; lost to expiry "
        f"{result['files_lost_to_expiry']} (target: max well under 24 h, none lost)",
        f"   end checks: {result['eligible_days']} eligible days, all final and archived: "
        + ("yes" if result["all_final_and_archived"] else "NO")
        + f" (drain {result['drain_simulated_hours']:.1f} h simulated); log errors "
        f"{sum(result['log_errors'].values())}, warnings {sum(result['log_warnings'].values())}",
    ]
    if result["missing_days"] or result["unsafe_days"]:
        lines.append(f"   missing {result['missing_days'][:5]} unsafe {result['unsafe_days'][:5]}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    defaults = Soak()
    parser.add_argument("--weeks", type=float, default=defaults.weeks)
    parser.add_argument("--speed", type=float, default=defaults.speed)
    parser.add_argument("--sample-seconds", type=float, default=defaults.sample_seconds)
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--trace", type=Path, default=None, help="tracemalloc snapshots here")
    parser.add_argument(
        "--objects", action="store_true", help="with --trace: count objects by type, no tracemalloc"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON figures (with samples)")
    args = parser.parse_args()
    soak = Soak(
        weeks=args.weeks,
        speed=args.speed,
        sample_seconds=args.sample_seconds,
        warmup=args.warmup,
        fault_rate=args.fault_rate,
    )
    result = asyncio.run(run(soak, trace=args.trace, objects=args.objects))
    print("\n".join(render(result)))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
