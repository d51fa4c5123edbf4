"""Idle cost of a standby: CPU seconds and database statements per minute of a real
``orchestrator run`` that stands by while another instance holds the account's leader lock.

    python -m bench.standby_bench [--seconds 60] [--postgres-url URL] [--takeover-interval S]

The bench itself holds the lock (so no leader's work is counted), through the product's own
``store.leadership.leader_lock``: on SQLite the ``flock`` on ``<database>.lock`` with its holder
record; on PostgreSQL the account's advisory lock on a database the bench creates for the run
(and drops after), with a lease as long as the run, since the bench does not confirm it.
Then it starts the daemon, waits for its ``daemon.standby`` log event, lets it settle, and
measures over the window:

- CPU: utime + stime of the process from /proc/<pid>/stat, before and after (10 ms ticks),
  and beside it the threads' time on CPU from /proc/<pid>/task/*/schedstat (nanoseconds);
- database statements: on PostgreSQL, the delta of ``xact_commit + xact_rollback`` of the
  bench's database in ``pg_stat_database`` (read from another database, so the reads are not
  counted). A standby's try is one SELECT in autocommit on its lock connection, so one
  transaction is one statement. Caveats: pg_stat_statements would count statements directly,
  but it needs ``shared_preload_libraries`` (a server restart), so it is not used; backends
  report their counters at most once a second and an idle one up to ~10 s late, so each end
  of the window may be off by a try or so (use a long window); anything else in that database
  (autovacuum on an idle database: normally nothing) would count too. On SQLite the figure is
  0 by construction, not measured: a standby only tries the ``flock`` and reads the holder's
  record from the lock file; it opens no database transaction while standing by. The read
  syscalls of the process (all files and sockets, /proc/<pid>/io) are shown beside it;
- requests the simulator received (it should be none).

The daemon runs with the product's default ``[ha]`` unless ``--takeover-interval`` is given:
a standby tries for the lock once per interval, so its statements per minute are about
60 / takeover_interval on PostgreSQL. Targets: below 0.1 CPU-s and below 30 statements per
minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.harness import (
    ACCOUNT,
    PREFIX,
    TOKEN,
    quiet_logs,
    scratch_postgres_database,
    start_daemon,
    write_config,
)
from bench.idle_bench import cpu_seconds
from orchestrator.domain.leadership import HaPolicy
from orchestrator.simulator import RunningSimulator, SimulatorSettings, running_simulator
from orchestrator.store import migrate
from orchestrator.store.engine import create_engine
from orchestrator.store.leadership import leader_lock

# Longer than PostgreSQL's lag in reporting an idle backend's counters (up to 10 s): the
# start-up's migration transactions must be in pg_stat_database before the window opens.
SETTLE_SECONDS = 12.0
START_TIMEOUT = 60.0
CPU_TARGET_PER_MINUTE = 0.1
QUERIES_TARGET_PER_MINUTE = 30.0


def run_nanoseconds(pid: int) -> int:
    """Time on CPU of every thread of ``pid`` so far, in ns (/proc/<pid>/task/*/schedstat):
    finer than the 10 ms ticks of utime + stime, for a process that barely runs."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def read_syscalls(pid: int) -> int:
    """Read syscalls (``syscr``) of ``pid`` so far: every file and socket (Linux /proc)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscr:"):
            return int(line.split()[1])
    raise RuntimeError(f"no syscr in /proc/{pid}/io")


def _config_body(takeover_interval: float | None) -> str:
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=400)
    body = f"""
        [jobs]
        name_prefix = "{PREFIX}"

        [logging]
        level = "info"
        format = "json"

        [http]
        listen = "127.0.0.1:0"

        [[exports]]
        name = "next-year"
        resource_type = "Messages"
        start_day = "{future}"
        end_day = "{future + dt.timedelta(days=30)}"
        """
    if takeover_interval is not None:
        body += f'\n[ha]\ntakeover_interval = "{takeover_interval:g}s"\n'
    return body


@contextlib.asynccontextmanager
async def _held_lock(url: str, hold_seconds: float) -> AsyncIterator[None]:
    """The account's leader lock of the database at ``url``, held by this process as a leader
    holds it (the product's own lock) for ``hold_seconds`` at least: on PostgreSQL a lease that
    long, since the bench does not confirm it while measuring."""
    lock = leader_lock(url, ACCOUNT, lease_seconds=hold_seconds)
    try:
        if not (await lock.try_acquire()).won:
            raise RuntimeError("the bench could not take the leader lock")
        yield
    finally:
        await lock.close()


async def _transactions(admin: AsyncConnection, database: str) -> int:
    """Committed plus rolled-back transactions of ``database`` so far (pg_stat_database)."""
    row = (
        await admin.execute(
            sa.text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :name"
            ),
            {"name": database},
        )
    ).scalar_one()
    return int(row)


async def _measure(
    directory: Path,
    *,
    seconds: float,
    settle_seconds: float,
    takeover_interval: float | None,
    database_url: str | None,
    admin_url: str | None,
) -> dict[str, Any]:
    """Start the daemon against a held lock, wait for its standby, measure over the window."""
    settings = SimulatorSettings(account_sid=ACCOUNT, auth_token=TOKEN, seed=1)
    async with running_simulator(settings) as sim:
        path = write_config(directory, sim.base_url, _config_body(takeover_interval), archive=False)
        if database_url is not None:
            text = path.read_text().replace(
                "[state]\n", f'[state]\ndatabase_url = "{database_url}"\n', 1
            )
            path.write_text(text)
        log_path = directory / "daemon.out"
        launched = time.perf_counter()
        with log_path.open("wb") as out:
            proc = await start_daemon(path, stdout=out)
        try:
            while '"daemon.standby"' not in log_path.read_text():
                if proc.returncode is not None:
                    raise RuntimeError(f"the daemon exited early with {proc.returncode}")
                if '"daemon.leader"' in log_path.read_text():
                    raise RuntimeError("the daemon took the lock the bench holds")
                if time.perf_counter() - launched > START_TIMEOUT:
                    raise RuntimeError("the daemon did not stand by in time")
                await asyncio.sleep(0.05)
            standby_after = time.perf_counter() - launched
            await asyncio.sleep(settle_seconds)
            figures = await _window(proc.pid, seconds, admin_url, database_url, sim)
            if '"daemon.leader"' in log_path.read_text():
                raise RuntimeError("the daemon took the lock the bench holds")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), timeout=15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    interval = (
        takeover_interval
        if takeover_interval is not None
        else HaPolicy().takeover_interval.total_seconds()
    )
    return figures | {
        "standby_after_s": standby_after,
        "takeover_interval_s": interval,
        "tries_per_minute": 60 / interval,
        "exit_code": proc.returncode,
    }


async def _window(
    pid: int,
    seconds: float,
    admin_url: str | None,
    database_url: str | None,
    sim: RunningSimulator,
) -> dict[str, Any]:
    admin = create_engine(admin_url) if admin_url is not None else None
    database = make_url(database_url).database if database_url is not None else None
    try:
        conn: AsyncConnection | None = None
        if admin is not None:
            conn = await (await admin.connect()).execution_options(isolation_level="AUTOCOMMIT")
        before_cpu = cpu_seconds(pid)
        before_ns = run_nanoseconds(pid)
        before_reads = read_syscalls(pid)
        before_requests = len(sim.recorder.requests)
        before_xacts = (
            await _transactions(conn, database) if conn is not None and database else None
        )
        wall = time.perf_counter()
        await asyncio.sleep(seconds)
        wall_s = time.perf_counter() - wall
        cpu = cpu_seconds(pid) - before_cpu
        on_cpu_ns = run_nanoseconds(pid) - before_ns
        reads = read_syscalls(pid) - before_reads
        requests = len(sim.recorder.requests) - before_requests
        queries: float
        if conn is not None and database and before_xacts is not None:
            queries = await _transactions(conn, database) - before_xacts
            method = "pg_stat_database xact_commit + xact_rollback delta"
        else:
            queries = 0
            method = "none by construction (flock on the lock file; no database transaction)"
        if conn is not None:
            await conn.close()
    finally:
        if admin is not None:
            await admin.dispose()
    per_minute = 60 / wall_s
    return {
        "wall_s": wall_s,
        "cpu_s": cpu,
        "cpu_s_per_minute": cpu * per_minute,
        "schedstat_cpu_s_per_minute": on_cpu_ns / 1e9 * per_minute,
        "queries": queries,
        "queries_per_minute": queries * per_minute,
        "queries_method": method,
        "read_syscalls_per_minute": reads * per_minute,
        "requests_while_standby": requests,
        "cpu_target_met": cpu * per_minute < CPU_TARGET_PER_MINUTE,
        "queries_target_met": queries * per_minute < QUERIES_TARGET_PER_MINUTE,
    }


async def run(
    seconds: float = 60.0,
    *,
    postgres_url: str | None = None,
    settle_seconds: float = SETTLE_SECONDS,
    takeover_interval: float | None = None,
) -> dict[str, Any]:
    """A standby measured on SQLite, and on PostgreSQL when ``postgres_url`` is given."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="orch-standby-") as tmp, quiet_logs():
        hold = settle_seconds + seconds + START_TIMEOUT + 60.0
        directory = Path(tmp) / "sqlite"
        (directory / "state").mkdir(parents=True)
        database = directory / "state" / "orchestrator.sqlite"
        async with _held_lock(f"sqlite+aiosqlite:///{database}", hold):
            results["sqlite"] = await _measure(
                directory,
                seconds=seconds,
                settle_seconds=settle_seconds,
                takeover_interval=takeover_interval,
                database_url=None,
                admin_url=None,
            )
        if postgres_url:
            directory = Path(tmp) / "postgresql"
            directory.mkdir()
            async with scratch_postgres_database(postgres_url, "orch_standby_bench") as url:
                # Migrated first, as a leader's database is: a try for the lock reads `leaders`.
                await migrate(url)
                async with _held_lock(url, hold):
                    results["postgresql"] = await _measure(
                        directory,
                        seconds=seconds,
                        settle_seconds=settle_seconds,
                        takeover_interval=takeover_interval,
                        database_url=url,
                        admin_url=postgres_url,
                    )
    return results


def render(results: dict[str, Any]) -> list[str]:
    """Item 9 of the table."""
    lines = ["9. Standby: idle cost of a second instance while another leads (per minute)"]
    for dialect in ("sqlite", "postgresql"):
        entry = results.get(dialect)
        if entry is None:
            lines.append(f"   {dialect:10s} not run (no --postgres-url)")
            continue
        lines.append(
            f"   {dialect:10s} CPU {entry['cpu_s_per_minute']:.3f} s/min "
            f"({entry['schedstat_cpu_s_per_minute']:.4f} by schedstat) "
            f"(target < {CPU_TARGET_PER_MINUTE:g}: "
            f"{'met' if entry['cpu_target_met'] else 'MISSED'}); statements "
            f"{entry['queries_per_minute']:.1f}/min (target < {QUERIES_TARGET_PER_MINUTE:g}: "
            f"{'met' if entry['queries_target_met'] else 'MISSED'}); tries every "
            f"{entry['takeover_interval_s']:g} s; {entry['requests_while_standby']} requests; "
            f"{entry['read_syscalls_per_minute']:.0f} read syscalls/min; window "
            f"{entry['wall_s']:.0f} s"
        )
        lines.append(f"   {'':10s} statements counted by: {entry['queries_method']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL"),
        help="also measure on PostgreSQL (default: $ORCHESTRATOR_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--takeover-interval",
        type=float,
        default=None,
        help="[ha] takeover_interval in seconds (default: the product's)",
    )
    args = parser.parse_args()
    figures = asyncio.run(
        run(
            args.seconds,
            postgres_url=args.postgres_url,
            takeover_interval=args.takeover_interval,
        )
    )
    print("\n".join(render(figures)))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
