"""Two real ``orchestrator run`` processes on one database: one leads, the other stands by and
takes over when the leader dies (SIGKILL) or, on PostgreSQL, stops confirming its lock (SIGSTOP).

Which process sent which request: one simulator holds the account, and each process reaches it
through a proxy of its own (``SlotProxy``, a loopback HTTP forwarder that notes every request
it passes on). The two config files are the same text but for ``[twilio] base_url`` (each
process's proxy): same account, same database, same state directory. The simulator cannot tell
clients apart (it records no peer), so the proxy is what attributes a request to a process.

PostgreSQL variants run when ORCHESTRATOR_TEST_POSTGRES_URL is set, each on a fresh database of
its own (advisory locks are per database, so tests cannot see each other's lock).

The second process of a test starts once the first has migrated the fresh database: two first
starts at the same moment race in the migrations (on PostgreSQL one of them crashes on
``CREATE TABLE alembic_version``), which is not what these tests are about.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import signal
import socket
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from bench.harness import scratch_postgres_database
from orchestrator.clock import ScaledClock
from orchestrator.domain.leadership import Leader
from orchestrator.errors import StoreError
from orchestrator.simulator import FaultSettings, RunningSimulator, running_simulator
from orchestrator.store.engine import create_engine, read_only
from orchestrator.store.repository import Store
from orchestrator.store.rows import change_from_row
from orchestrator.store.schema import days, transitions
from tests.e2e.process_support import (
    ACCOUNT,
    FINAL,
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    DaemonProcess,
    Event,
    History,
    InvariantWatch,
    _flat,
    chain_problems,
    duplicate_names,
    shared_clock,
    shrunk,
    simulator_settings,
    write_config,
)
from tests.systemd.test_notify import _MAX_UNIX_PATH

pytestmark = pytest.mark.slow

POSTGRES_URL_VAR = "ORCHESTRATOR_TEST_POSTGRES_URL"
SPEED = 200.0
TAKEOVER_INTERVAL = 1.0
LEASE = 3.0
# How long a takeover may take on a busy machine before the test fails (the measured time is
# printed). After a SIGKILL the lock is free at once: one takeover interval, plus slack.
TAKEOVER_DEADLINE = TAKEOVER_INTERVAL + 15.0
# After a SIGSTOP (PostgreSQL) the server frees the lock one lease after the last confirmation;
# a leader paused inside a write transaction holds the fence's row until the server ends that
# transaction (``idle_in_transaction_session_timeout``, 30 s), which the takeover waits for.
PAUSED_TAKEOVER_DEADLINE = LEASE + 30.0 + 30.0
START_DEADLINE = 60.0
# The SIGKILL test's clock: slow enough that the backfill lasts well past the kill on a busy
# machine.
MID_SPEED = 100.0
FINISH_DEADLINE = 120.0
DAYS = 24

BODY = f"""
[jobs]
max_ambiguous_creates_per_day = 50
name_prefix = "{PREFIX}"
max_days_per_job = 3
max_live_jobs = 2
max_resubmits = 6
resubmit_delay = "1m"
stale_after = "15m"

[polling]
initial_delay = "20s"
max_delay = "2m"

[cleanup]
interval = "1m"

[ha]
takeover_interval = "{TAKEOVER_INTERVAL:g}s"
lease = "{LEASE:g}s"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-{DAYS:02d}"
"""

# Day faults only: every request the proxies forward gets an HTTP answer.
FAULTS = FaultSettings(failed_day_fraction=0.1, error_during_run_fraction=0.1)


# ------------------------------------------------------------------------------ databases


@dataclass
class Backend:
    """The database both processes share: SQLite (the default file) or a fresh PostgreSQL."""

    name: str
    url: str
    config_line: str = ""

    async def statuses(self) -> dict[tuple[str, dt.date], str]:
        """(resource type, day) -> status; empty before the first migration."""
        engine = create_engine(self.url)
        try:
            days = await Store(engine, ACCOUNT).list_days()
        except StoreError:
            return {}
        finally:
            await engine.dispose()
        return {(d.resource_type.value, d.day): d.status.value for d in days}

    async def histories(self) -> tuple[dict[tuple[str, dt.date], str], History]:
        """Every day's status and history (oldest first), read in one snapshot: a leader may
        be writing meanwhile, and a day read before its latest change with the history read
        after it would look like a broken chain."""
        engine = create_engine(self.url)
        try:
            reader = read_only(engine)
            if self.name == "postgresql":
                reader = reader.execution_options(isolation_level="REPEATABLE READ")
            async with reader.begin() as conn:
                rows = await conn.execute(
                    sa.select(days.c.resource_type, days.c.day, days.c.status).where(
                        days.c.account_sid == ACCOUNT
                    )
                )
                statuses = {(rt.value, day): status.value for rt, day, status in rows}
                changes = await conn.execute(
                    sa.select(transitions)
                    .where(transitions.c.account_sid == ACCOUNT)
                    .order_by(transitions.c.id)
                )
                history: History = {key: [] for key in statuses}
                for row in changes:
                    change = change_from_row(row)
                    key = (change.resource_type.value, change.day)
                    history.setdefault(key, []).append(_flat(change))
            return statuses, history
        finally:
            await engine.dispose()

    async def leader(self) -> Leader | None:
        engine = create_engine(self.url)
        try:
            return await Store(engine, ACCOUNT).leader()
        finally:
            await engine.dispose()


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty database on the test server (its URL); dropped afterwards."""
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        pytest.skip(f"needs {POSTGRES_URL_VAR} (e.g. .ci/run sets it)")
    async with scratch_postgres_database(url, "orch_ha") as database:
        yield database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The shared database, on SQLite and (when configured) PostgreSQL."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'state' / 'orchestrator.sqlite'}")
        return
    async with postgres_database() as url:
        yield Backend("postgresql", url, f'database_url = "{url}"')


@pytest.fixture
async def postgres_backend() -> AsyncIterator[Backend]:
    """A fresh PostgreSQL database (skipped without one)."""
    async with postgres_database() as url:
        yield Backend("postgresql", url, f'database_url = "{url}"')


# -------------------------------------------------------------------------- the proxies


@dataclass(frozen=True, slots=True)
class Seen:
    """One request a proxy passed on: when (the test's monotonic clock), method, path."""

    at: float
    method: str
    path: str


_HOP_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
)


@dataclass
class SlotProxy:
    """A loopback HTTP proxy to the simulator for one process slot; notes each request as it
    arrives, before passing it on."""

    target: str
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def after(self, moment: float) -> list[Seen]:
        return [s for s in self.seen if s.at > moment]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(time.monotonic(), request.method, request.path))
        body = await request.read()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            async with self._session.request(
                request.method,
                self.target + request.path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                back = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
                return web.Response(status=upstream.status, body=payload, headers=back)
        except aiohttp.ClientError:
            return web.Response(status=502, text="proxy: upstream failed")


@dataclass
class Cluster:
    """The simulator, its shared clock, the database, and two process slots (a config and a
    proxy each)."""

    sim: RunningSimulator
    clock: ScaledClock
    backend: Backend
    tmp_path: Path
    proxies: dict[str, SlotProxy]
    configs: dict[str, Path]

    async def start(
        self, slot: str, *, exit_when_done: bool = False, **environ: str
    ) -> DaemonProcess:
        return await DaemonProcess.start(
            self.configs[slot],
            self.clock,
            self.tmp_path / f"logs-{slot}",
            exit_when_done=exit_when_done,
            environ={TOKEN_ENV: TOKEN, **environ},
        )

    async def leader_and_standby(
        self, *, exit_when_done: tuple[bool, bool]
    ) -> tuple[DaemonProcess, DaemonProcess]:
        """Slot a started and leading, then slot b standing by (one after the other: see the
        module docstring on first starts)."""
        a = await self.start("a", exit_when_done=exit_when_done[0])
        try:
            await a.wait_for("daemon.started", within=START_DEADLINE)
            b = await self.start("b", exit_when_done=exit_when_done[1])
        except BaseException:
            await a.kill()
            raise
        try:
            await b.wait_for("daemon.standby", within=START_DEADLINE)
        except BaseException:
            await a.kill()
            await b.kill()
            raise
        return a, b

    async def wait_until_final(
        self, alive: list[DaemonProcess], *, within: float
    ) -> dict[tuple[str, dt.date], str]:
        """Every wanted day final in the database, while some process of ``alive`` runs."""
        deadline = time.monotonic() + within
        while True:
            statuses = await self.backend.statuses()
            if len(statuses) >= DAYS and set(statuses.values()) <= FINAL:
                return statuses
            if all(p.proc.returncode is not None for p in alive):
                raise AssertionError(f"every process exited: {statuses}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not final within {within} s: {statuses}")
            await asyncio.sleep(0.1)

    async def assert_done(self) -> None:
        """Every day final, each history a whole chain, no duplicate friendly name."""
        statuses, history = await self.backend.histories()
        assert len(statuses) == DAYS, statuses
        assert set(statuses.values()) <= FINAL, statuses
        assert chain_problems(statuses, history) == []
        assert duplicate_names(self.sim) == []


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, backend: Backend, *, seed: int = 0, speed: float = SPEED
) -> AsyncIterator[Cluster]:
    """The simulator on a fresh shared clock, two proxies and two configs (nothing started)."""
    clock = shared_clock(speed)
    settings = simulator_settings(
        clock, seed=seed, faults=FAULTS, max_running_jobs=2, day_seconds=(3, 12)
    )
    async with running_simulator(settings) as sim:
        proxies = {slot: SlotProxy(sim.base_url) for slot in ("a", "b")}
        try:
            configs = {}
            for slot, proxy in proxies.items():
                await proxy.start()
                path = write_config(tmp_path, proxy.url, BODY, name=f"{slot}.toml")
                if backend.config_line:
                    text = path.read_text().replace(
                        "[state]\n", f"[state]\n{backend.config_line}\n", 1
                    )
                    path.write_text(text)
                configs[slot] = path
            yield Cluster(sim, clock, backend, tmp_path, proxies, configs)
        finally:
            for proxy in proxies.values():
                await proxy.close()


@contextlib.asynccontextmanager
async def reaped(*processes: DaemonProcess) -> AsyncIterator[None]:
    """SIGKILL and reap the processes at the end of the block, whatever happens."""
    try:
        yield
    finally:
        for process in processes:
            await process.kill()


# ------------------------------------------------------------------------------ helpers


def named(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e.get("event") == name]


def logged_at(event: Event) -> float:
    """The wall-clock time (epoch seconds) of a log event."""
    return dt.datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def leader_events(*runs: DaemonProcess) -> list[Event]:
    return [e for run in runs for e in run.named("daemon.leader")]


async def metric(process: DaemonProcess, name: str) -> float:
    """One unlabelled metric from the process's /metrics."""
    (listening,) = process.named("http.listening")
    url = listening["urls"][0].rstrip("/") + "/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, text
    return float(match.group(1))


@contextlib.contextmanager
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket playing systemd's notification socket, and its path."""
    path = str(tmp_path / "notify.sock")
    if len(path) >= _MAX_UNIX_PATH:
        path = f"/tmp/orch-{uuid.uuid4().hex[:10]}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def notified_lines(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.extend(sock.recv(65536).decode().split("\n"))
        except BlockingIOError:
            return into


# -------------------------------------------------------------------------------- tests


async def test_a_standby_sends_twilio_nothing_while_the_leader_lives(
    tmp_path: Path, backend: Backend
) -> None:
    """A standby names the leader, sends Twilio nothing while it lives, and takes over after."""
    # daemon.standby with the leader's pid, READY=1 + STATUS=standby to systemd,
    # orchestrator_leader 0; no request through its proxy while the leader does the whole
    # backfill; once the leader stops cleanly, daemon.leader with the next epoch.
    with notify_socket(tmp_path) as (receiver, socket_path):
        async with cluster(tmp_path, backend) as c:
            a = await c.start("a")
            async with reaped(a):
                await a.wait_for("daemon.started", within=START_DEADLINE)
                b = await c.start("b", NOTIFY_SOCKET=socket_path)
                async with reaped(b):
                    events = await b.wait_for("daemon.standby", within=START_DEADLINE)
                    (standby,) = named(events, "daemon.standby")
                    assert standby["leader_pid"] == a.pid
                    assert standby["leader_host"] == socket.gethostname()
                    assert standby["takeover_interval"] == TAKEOVER_INTERVAL
                    assert ("lock file" if backend.name == "sqlite" else "advisory lock") in (
                        standby["lock"]
                    )
                    lines: list[str] = []
                    deadline = time.monotonic() + 30
                    while "READY=1" not in notified_lines(receiver, lines):
                        assert time.monotonic() < deadline, lines
                        await asyncio.sleep(0.05)
                    status = [line for line in lines if line.startswith("STATUS=standby")]
                    assert status, lines
                    assert f"pid {a.pid} since" in status[0] and status[0].endswith(" is active")
                    await b.wait_for("http.listening", within=START_DEADLINE)
                    await a.wait_for("http.listening", within=START_DEADLINE)
                    assert await metric(b, "orchestrator_leader") == 0
                    assert await metric(a, "orchestrator_leader") == 1

                    # The leader does the whole backfill; the standby sends nothing meanwhile.
                    async with InvariantWatch(c.sim) as watch:
                        await c.wait_until_final([a], within=FINISH_DEADLINE)
                    assert not watch.violations, watch.violations[0]
                    assert c.proxies["a"].seen
                    assert c.proxies["b"].seen == []
                    assert not b.named("daemon.leader")
                    assert a.proc.returncode is None and b.proc.returncode is None
                    (a_leader,) = a.named("daemon.leader")

                    # A clean stop frees the lock: the standby takes over within an interval.
                    stopped = time.monotonic()
                    a.signal(signal.SIGTERM)
                    assert await a.wait(30) == 0
                    events = await b.wait_for("daemon.leader", within=TAKEOVER_DEADLINE)
                    (b_leader,) = named(events, "daemon.leader")
                    assert b_leader["epoch"] == a_leader["epoch"] + 1
                    assert b_leader["pid"] == b.pid
                    assert all(s.at > stopped for s in c.proxies["b"].seen)
                    await b.wait_for("daemon.started", within=START_DEADLINE)
                    leader = await backend.leader()
                    assert leader is not None and (leader.pid, leader.epoch) == (
                        b.pid,
                        b_leader["epoch"],
                    )
                    assert await metric(b, "orchestrator_leader") == 1
                    b.signal(signal.SIGTERM)
                    assert await b.wait(30) == 0
                await c.assert_done()


async def test_sigkill_of_the_leader_hands_the_work_to_the_standby(
    tmp_path: Path, backend: Backend
) -> None:
    """SIGKILL of the leader mid-backfill: the standby takes over promptly and loses nothing."""
    # Within a takeover interval (plus slack on a busy machine), then every day final, no day
    # double-booked, no duplicate friendly name, every history a whole chain that only grew.
    async with cluster(tmp_path, backend, seed=3, speed=MID_SPEED) as c:
        a, b = await c.leader_and_standby(exit_when_done=(False, True))
        async with reaped(a, b), InvariantWatch(c.sim) as watch:
            # Mid-backfill: some day done, some not.
            deadline = time.monotonic() + FINISH_DEADLINE
            while True:
                statuses, before = await backend.histories()
                if "Completed" in statuses.values() and set(statuses.values()) - FINAL:
                    break
                assert time.monotonic() < deadline, statuses
                await asyncio.sleep(0.05)
            await asyncio.sleep(random.uniform(0, 0.5))
            killed = time.time()
            await a.kill()
            events = await b.wait_for("daemon.leader", within=TAKEOVER_DEADLINE)
            took = logged_at(named(events, "daemon.leader")[0]) - killed
            print(f"{backend.name}: takeover {took:.2f} s after SIGKILL")
            assert await b.wait(FINISH_DEADLINE) == 0, b.stderr.read_text()[-2000:]
        assert not watch.violations, watch.violations[0]
        assert named(b.events(), "daemon.all_days_final")
        (a_leader,) = a.named("daemon.leader")
        (b_leader,) = b.named("daemon.leader")
        assert b_leader["epoch"] == a_leader["epoch"] + 1
        await c.assert_done()
        _, after = await backend.histories()
        assert shrunk(before, after) == []
        assert took < TAKEOVER_DEADLINE


@pytest.mark.postgres
async def test_a_paused_leader_is_replaced_and_stands_by_after_it_resumes(
    tmp_path: Path, postgres_backend: Backend
) -> None:
    """PostgreSQL: a paused leader is replaced and, resumed, sends nothing and stands by."""
    # The server ends the lock's session one lease after SIGSTOP and the standby takes over.
    # After SIGCONT the old leader's proxy sees no request at all; it logs
    # daemon.leadership_lost and daemon.standby naming the new leader, who finishes every day.
    async with cluster(tmp_path, postgres_backend, seed=5) as c:
        a, b = await c.leader_and_standby(exit_when_done=(False, False))
        async with reaped(a, b), InvariantWatch(c.sim) as watch:
            await a.wait_for("job.submitted", within=START_DEADLINE)
            paused = time.time()
            a.signal(signal.SIGSTOP)
            try:
                events = await b.wait_for("daemon.leader", within=PAUSED_TAKEOVER_DEADLINE)
                took = logged_at(named(events, "daemon.leader")[0]) - paused
                print(f"postgresql: takeover {took:.2f} s after SIGSTOP (lease {LEASE:g} s)")
                created = {j.job_sid for j in c.sim.engine.ledger.jobs}
            finally:
                resumed = time.monotonic()
                a.signal(signal.SIGCONT)
            events = await a.wait_for("daemon.leadership_lost", within=30)
            lost_at = [e["event"] for e in events].index("daemon.leadership_lost")
            events = await a.wait_for(
                lambda evs: any(e["event"] == "daemon.standby" for e in evs[lost_at:]),
                within=30,
            )
            again = [e for e in events[lost_at:] if e["event"] == "daemon.standby"]
            assert again[0]["leader_pid"] == b.pid
            await c.wait_until_final([b], within=FINISH_DEADLINE)
            # Standing by all along since, and silent towards Twilio since the resume.
            late = c.proxies["a"].after(resumed)
            assert late == [], late
            assert len(a.named("daemon.leader")) == 1
            for process in (a, b):
                process.signal(signal.SIGTERM)
                assert await process.wait(30) == 0, process.stderr.read_text()[-2000:]
        assert not watch.violations, watch.violations[0]
        (lost,) = a.named("daemon.leadership_lost")
        (a_leader,) = a.named("daemon.leader")
        assert lost["epoch"] == a_leader["epoch"]
        (b_leader,) = b.named("daemon.leader")
        assert b_leader["epoch"] == a_leader["epoch"] + 1
        # Whatever was created after the takeover was created by the new leader.
        new_jobs = [j for j in c.sim.engine.ledger.jobs if j.job_sid not in created]
        b_posts = [s for s in c.proxies["b"].seen if s.method == "POST"]
        assert len(b_posts) >= len(new_jobs)
        await c.assert_done()


async def test_a_paused_sqlite_leader_keeps_its_lock_and_carries_on(tmp_path: Path) -> None:
    """SQLite: a paused leader keeps its flock; the standby waits and the leader carries on."""
    # Paused for several leases: no takeover; after SIGCONT the leader confirms its lock again
    # and finishes the backfill itself; the standby has sent nothing.
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'state' / 'orchestrator.sqlite'}")
    async with cluster(tmp_path, backend, seed=7) as c:
        a, b = await c.leader_and_standby(exit_when_done=(True, False))
        async with reaped(a, b), InvariantWatch(c.sim) as watch:
            await a.wait_for("job.submitted", within=START_DEADLINE)
            a.signal(signal.SIGSTOP)
            try:
                # Long enough for a PostgreSQL standby to have taken over twice.
                pause_until = time.monotonic() + 2 * LEASE + 3 * TAKEOVER_INTERVAL
                while time.monotonic() < pause_until:
                    assert not b.named("daemon.leader")
                    await asyncio.sleep(0.1)
            finally:
                resumed = time.monotonic()
                a.signal(signal.SIGCONT)
            assert await a.wait(FINISH_DEADLINE) == 0, a.stderr.read_text()[-2000:]
            # The standby saw a leader all along: no takeover before the leader left.
            assert b.named("daemon.leader") == [] or logged_at(
                b.named("daemon.leader")[0]
            ) >= logged_at(a.named("daemon.all_days_final")[0])
            assert [s for s in c.proxies["b"].seen if s.at <= resumed] == []
        assert not watch.violations, watch.violations[0]
        assert not a.named("daemon.leadership_lost")
        assert a.named("daemon.all_days_final")
        assert c.proxies["a"].after(resumed), "the resumed leader did not carry on"
        await c.assert_done()


KILLS = 24
# Slower than the other tests: the backfill should last through most of the kills.
LOOP_SPEED = 25.0


async def test_alternating_sigkills_of_two_processes_lose_nothing(
    tmp_path: Path, backend: Backend
) -> None:
    """24 SIGKILLs alternating between two processes lose no transition and book no day twice."""
    # Each killed process is restarted as a new ``orchestrator run``; every fourth kill hits
    # the one just restarted, in its start-up. After each kill every history is a whole chain
    # that only grew; no day is ever in two live jobs; no two runs share an epoch; a last run
    # ends with every day final.
    rand = random.Random(11)
    began = time.monotonic()
    async with cluster(tmp_path, backend, seed=11, speed=LOOP_SPEED) as c:
        runs = {"a": await c.start("a")}
        every: list[DaemonProcess] = [runs["a"]]
        await runs["a"].wait_for("daemon.migrated", within=START_DEADLINE)
        runs["b"] = await c.start("b")
        every.append(runs["b"])
        seen: History = {}
        leader_kills: list[float] = []
        in_start_up = 0
        try:
            async with InvariantWatch(c.sim) as watch:
                slot = "b"
                for kill in range(KILLS):
                    if kill % 4 == 3:
                        # The process just restarted again, most likely in its start-up.
                        await asyncio.sleep(rand.uniform(0.05, 1.0))
                    else:
                        # The other slot's, once both are up: a killed leader always has a
                        # standby ready to take over.
                        slot = "a" if slot == "b" else "b"
                        for process in runs.values():
                            await process.wait_for("daemon.migrated", within=START_DEADLINE)
                        await asyncio.sleep(rand.uniform(0.05, 0.8))
                    victim, other = runs[slot], runs["b" if slot == "a" else "a"]
                    was_leading = bool(victim.named("daemon.leader"))
                    in_start_up += not victim.named("daemon.migrated")
                    killed = time.time()
                    await victim.kill()
                    if was_leading:
                        leader_kills.append(killed)
                    runs[slot] = await c.start(slot)
                    every.append(runs[slot])
                    assert not watch.violations, f"kill {kill}: {watch.violations[0]}"
                    statuses, history = await backend.histories()
                    assert chain_problems(statuses, history) == [], kill
                    assert shrunk(seen, history) == [], kill
                    seen = history
                    assert other.proc.returncode is None, other.stderr.read_text()[-2000:]
                unfinished = set((await backend.statuses()).values()) - FINAL
                # The end: stop both cleanly (once their signal handlers are in place); a
                # last run finishes the backfill.
                for run in runs.values():
                    await run.wait_for("daemon.migrated", within=START_DEADLINE)
                    run.signal(signal.SIGTERM)
                for run in runs.values():
                    assert await run.wait(30) == 0, run.stderr.read_text()[-2000:]
                last = await c.start("a", exit_when_done=True)
                every.append(last)
                assert await last.wait(FINISH_DEADLINE) == 0, last.stderr.read_text()[-2000:]
        finally:
            for run in every:
                await run.kill()
        assert not watch.violations, watch.violations[0]
        epochs = [e["epoch"] for e in leader_events(*every)]
        assert len(epochs) == len(set(epochs)), epochs
        assert len(leader_kills) >= 4, leader_kills
        leader = await backend.leader()
        assert leader is not None and leader.epoch == max(epochs)
        await c.assert_done()
        _, history = await backend.histories()
        assert shrunk(seen, history) == []
        # How long until someone led again after each SIGKILL of a leader.
        leads = sorted(logged_at(e) for e in leader_events(*every))
        delays = [min(t for t in leads if t > k) - k for k in leader_kills]
        print(
            f"{backend.name}: {KILLS} kills ({len(leader_kills)} of the leader, {in_start_up} "
            f"in start-up), {len(epochs)} takeovers; next leader after a SIGKILL: median "
            f"{statistics.median(delays):.2f} s, max {max(delays):.2f} s; statuses left at "
            f"the end of the loop {sorted(unfinished)}; {time.monotonic() - began:.0f} s"
        )
