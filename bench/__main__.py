"""Run the benchmarks: ``python -m bench [--quick] [--only NAME] [--out PATH] [--postgres-url U]``.

Benchmarks (``--only`` takes one name, repeatable):

- ``polling``: items 1 and 2, polling economy and time to notice per poll policy, and the
  whole-run request economy (``bench.polling_bench``);
- ``scale``: item 3, one full poll pass's bookkeeping over 10,000 live jobs / 300,000 days in
  SQLite, in a fresh interpreter (``bench.scale_bench``);
- ``idle``: item 4, CPU of an idle ``orchestrator run`` over 60 s of wall time
  (``bench.idle_bench``);
- ``store``: item 5, day transitions applied per second on SQLite and PostgreSQL
  (``bench.throughput_bench``, which reuses ``bench.store_bench``);
- ``poll``: item 6, CPU per polled job of the daemon's poll pass against a floor doing the same
  reads and writes on the bare driver, SQLite and PostgreSQL (``bench.poll_cost_bench``);
- ``startup``: item 7, CPU of ``orchestrator --help`` and ``orchestrator status`` against a bare
  ``python -c pass``, side by side (``bench.startup_bench``);
- ``scrape``: item 8, ``GET /metrics`` over HTTP against the scale database (10,000 jobs,
  300,000 days, SQLite; target under 100 ms) (``bench.scrape_bench``);
- ``standby``: item 9, CPU seconds and database statements per minute of an ``orchestrator
  run`` standing by while the lock is held, SQLite and PostgreSQL (targets under 0.1 CPU-s
  and under 30 statements per minute) (``bench.standby_bench``);
- ``soak``: item 10, a real daemon against the simulator for simulated weeks on a 2,000x clock:
  RSS growth per 1,000 passes of each kind, CPU per simulated day, time to safety of each day
  file (``bench.soak_bench``). Minutes: run only when named (``--only soak``), never by default.

Prints a table and writes every figure as JSON (``bench/results.json`` unless ``--out``).
Figures are reported, never asserted: the targets are shown as met or missed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    idle_bench,
    poll_cost_bench,
    polling_bench,
    scale_bench,
    scrape_bench,
    soak_bench,
    standby_bench,
    startup_bench,
    throughput_bench,
)

NAMES = ("polling", "scale", "idle", "store", "poll", "startup", "scrape", "standby")
# Run only when named with --only: minutes of wall time.
OPT_IN = ("soak",)
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def machine() -> dict[str, Any]:
    """Where and on what the figures were taken."""
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gb"] = round(int(meminfo[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["commit"] = commit + (" with uncommitted work" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = "unknown"
    return info


def run_benchmarks(
    names: tuple[str, ...],
    *,
    quick: bool,
    postgres_url: str | None,
    idle_seconds: float | None,
    standby_seconds: float | None = None,
    soak_weeks: float | None = None,
) -> dict[str, Any]:
    """Each named benchmark, at tiny sizes with ``quick``; figures plus seconds taken."""
    results: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {
        "polling": lambda: asyncio.run(
            polling_bench.run(polling_bench.QUICK if quick else polling_bench.Workload())
        ),
        "scale": lambda: scale_bench.run_isolated(*((40, 5) if quick else (10_000, 30))),
        "idle": lambda: asyncio.run(
            idle_bench.run(
                idle_seconds if idle_seconds is not None else (2.0 if quick else 60.0),
                settle_seconds=0.2 if quick else idle_bench.SETTLE_SECONDS,
            )
        ),
        "store": lambda: asyncio.run(
            throughput_bench.run(*((200, 10) if quick else (10_000, 200)), url=postgres_url)
        ),
        "poll": lambda: asyncio.run(
            poll_cost_bench.run(*((20, 5) if quick else (1000, 30)), postgres_url=postgres_url)
        ),
        "startup": lambda: startup_bench.run(runs=2 if quick else 7),
        "scrape": lambda: asyncio.run(
            scrape_bench.run(*((40, 5, 3) if quick else (10_000, 30, 20)))
        ),
        "standby": lambda: asyncio.run(
            standby_bench.run(
                standby_seconds if standby_seconds is not None else (2.0 if quick else 60.0),
                postgres_url=postgres_url,
                settle_seconds=0.2 if quick else standby_bench.SETTLE_SECONDS,
            )
        ),
        "soak": lambda: asyncio.run(soak_bench.run(_soak(quick, soak_weeks))),
    }
    for name in names:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures = steps[name]()
        results[name] = {"seconds": time.perf_counter() - started, "figures": figures}
    return results


def _soak(quick: bool, weeks: float | None) -> soak_bench.Soak:
    soak = soak_bench.TINY if quick else soak_bench.Soak()
    return soak if weeks is None else dataclasses.replace(soak, weeks=weeks)


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _verdict(met: bool | None) -> str:
    return "pending" if met is None else ("met" if met else "MISSED")


def render(results: dict[str, Any]) -> str:
    """The readable table."""
    lines: list[str] = []
    polling = results.get("polling", {}).get("figures")
    if polling:
        lines.append("1. Polling economy and time to notice (per job; all scenarios pooled)")
        lines.append(
            f"   {'policy':22s} {'jobs':>5s} {'fetch med':>9s} {'fetch p95':>9s} "
            f"{'fetches':>8s} {'delay med s':>11s} {'delay p95 s':>11s} "
            f"{'p95 delay/bound':>15s} {'in bound':>8s}  target"
        )
        for policy, s in polling["policies"].items():
            lines.append(
                f"   {policy:22s} {s['jobs']:5d} {_f(s['fetches_median']):>9s} "
                f"{_f(s['fetches_p95']):>9s} {s['fetches_total']:8d} "
                f"{_f(s['delay_median_s']):>11s} {_f(s['delay_p95_s']):>11s} "
                f"{_f(s['delay_over_bound_p95'], 2):>15s} "
                f"{_f(100 * s['within_bound_share'], 0) + '%':>8s}  {_verdict(s['target_met'])}"
            )
        lines.append("   per scenario (job durations incl. queueing):")
        for policy, s in polling["policies"].items():
            for scenario, v in s["per_scenario"].items():
                lines.append(
                    f"     {policy:20s} {scenario:8s} dur {_f(v['duration_min_s'], 0):>7s}-"
                    f"{_f(v['duration_max_s'], 0):<7s}s fetch med/p95 "
                    f"{_f(v['fetches_median'])}/{_f(v['fetches_p95'])}  delay med/p95 "
                    f"{_f(v['delay_median_s'], 0)}/{_f(v['delay_p95_s'], 0)} s  "
                    f"p95 delay/bound {_f(v['delay_over_bound_p95'], 2)}  "
                    f"run {_f(v['simulated_hours'])} h sim"
                )
        lines.append("   target: median <= 3 fetches and p95 delay <= max(60 s, 10 % of duration)")
        economy = polling["economy"]
        if economy:
            lines.append("")
            lines.append(
                "2. Whole-run request economy (daemon policy, all scenarios; archiving "
                + ("on)" if economy["archiving"] else "OFF: archive workflow not available)")
            )
            kinds = economy["requests"]
            lines.append(
                "   requests: "
                + ", ".join(f"{k} {v}" for k, v in kinds.items() if v or k != "other")
                + f"; total {economy['requests_total']} for {economy['exported_days']} days, "
                f"{economy['jobs']} jobs"
            )
            lines.append(
                "   per exported day: "
                + ", ".join(f"{k} {v:.3f}" for k, v in economy["requests_per_day"].items() if v)
            )
            lines.append(
                f"   floor: {economy['floor_without_archiving']} without archiving, "
                f"{economy['floor_with_archiving']} with; ratio to floor "
                f"{economy['ratio_to_floor']:.2f}"
                + (
                    f" (without archiving); {economy['ratio_if_archiving_at_floor']:.2f} if "
                    "archiving adds exactly its floor"
                    if not economy["archiving"]
                    else ""
                )
            )
            lines.append(
                f"   target <= 1.3 x floor with archiving: {_verdict(economy['target_met'])}"
            )
    scale = results.get("scale", {}).get("figures")
    if scale:
        lines.append("")
        lines.append(
            f"3. Scale: {scale['jobs']:,} live jobs, {scale['days']:,} days (SQLite), "
            f"{scale['jobs_polled']:,} polls in {scale['poll_passes']} passes"
        )
        lines.append(
            f"   wall {scale['pass_wall_s']:.1f} s, CPU {scale['pass_cpu_s']:.1f} s "
            f"({scale['per_job_ms']:.1f} ms per job); peak RSS {scale['peak_rss_mb']:.0f} MB "
            f"({scale['peak_rss_scope']}); DB {scale['db_mb']:.0f} MB; "
            f"state built in {scale['build_s']:.1f} s"
        )
        lines.append(f"   target peak RSS < 200 MB: {_verdict(scale['peak_rss_mb'] < 200)}")
    idle = results.get("idle", {}).get("figures")
    if idle:
        lines.append("")
        lines.append(
            f"4. Idle: {idle['idle_cpu_s']:.2f} CPU s over {idle['idle_wall_s']:.0f} s wall "
            f"({idle['cpu_s_per_minute']:.2f} s/min); {idle['requests_while_idle']} requests; "
            f"start-up {idle['startup_wall_s']:.1f} s wall, {idle['startup_cpu_s']:.2f} CPU s"
        )
        per_minute = idle["cpu_s_per_minute"]
        lines.append(f"   target < 0.3 CPU s per 60 s: {_verdict(per_minute < 0.3)}")
    store = results.get("store", {}).get("figures")
    if store:
        lines.append("")
        lines.append("5. Store throughput (day transitions applied per second)")
        for dialect in ("sqlite", "postgresql"):
            if f"{dialect}.transitions_per_second" not in store:
                lines.append(f"   {dialect:10s} not run (no --postgres-url)")
                continue
            big = store[f"{dialect}.transitions_per_second"]
            lines.append(
                f"   {dialect:10s} one big batch {big:>9,.0f}/s   job-sized batches "
                f"{store[f'{dialect}.job_batches_transitions_per_second']:>7,.0f}/s "
                f"({store[f'{dialect}.job_batches_ms_per_apply']:.1f} ms per apply)"
            )
    poll = results.get("poll", {}).get("figures")
    if poll:
        lines.append("")
        lines.extend(poll_cost_bench.render(poll))
    startup = results.get("startup", {}).get("figures")
    if startup:
        lines.append("")
        lines.append(f"7. Start-up of operator commands (CPU s, median of {startup['runs']} runs)")
        lines.append(f"   python -c pass        {startup['bare_cpu_s']:.3f}")
        for name, label in (("help", "orchestrator --help "), ("status", "orchestrator status ")):
            lines.append(
                f"   {label}  {startup[f'{name}_cpu_s']:.3f}  "
                f"{startup[f'{name}_ratio']:.1f}x bare; target <= "
                f"{startup[f'{name}_target']:.0f}x: {_verdict(startup[f'{name}_target_met'])}"
            )
    scrape = results.get("scrape", {}).get("figures")
    if scrape:
        lines.append("")
        lines.append("8. " + scrape_bench.render(scrape))
    standby = results.get("standby", {}).get("figures")
    if standby:
        lines.append("")
        lines.extend(standby_bench.render(standby))
    soak = results.get("soak", {}).get("figures")
    if soak:
        lines.append("")
        lines.extend(soak_bench.render(soak))
    lines.append("")
    lines.append(
        "took: " + ", ".join(f"{name} {entry['seconds']:.0f} s" for name, entry in results.items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks of the orchestrator daemon."
    )
    parser.add_argument("--only", action="append", choices=NAMES + OPT_IN, help="run only this one")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL"),
        help="also run the store benchmark on this PostgreSQL "
        "(default: $ORCHESTRATOR_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=None, help="idle window (default 60, 2 with --quick)"
    )
    parser.add_argument(
        "--standby-seconds",
        type=float,
        default=None,
        help="standby window (default 60, 2 with --quick)",
    )
    parser.add_argument(
        "--soak-weeks",
        type=float,
        default=None,
        help="simulated weeks of the soak (default 1, 0.05 with --quick)",
    )
    args = parser.parse_args(argv)
    names = tuple(args.only) if args.only else NAMES
    started = time.perf_counter()
    results = run_benchmarks(
        names,
        quick=args.quick,
        postgres_url=args.postgres_url,
        idle_seconds=args.idle_seconds,
        standby_seconds=args.standby_seconds,
        soak_weeks=args.soak_weeks,
    )
    document = {
        "machine": machine(),
        "quick": args.quick,
        "total_seconds": time.perf_counter() - started,
        "results": results,
    }
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"total {document['total_seconds']:.0f} s; figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
