"""A real ``orchestrator run`` waits for a PostgreSQL server that is not there (yet), or that goes
away while it runs, instead of exiting with a traceback.

The database is reached through a small TCP forwarder on a loopback port to the real server:
before the forwarder listens, the port refuses connections as a server still booting does; when
it stops, it closes every forwarded connection as a server that went away does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.harness import scratch_postgres_database
from orchestrator.domain.model import DayKey
from orchestrator.simulator import running_simulator
from orchestrator.store.engine import create_engine
from orchestrator.store.repository import Store
from tests.e2e.process_support import (
    ACCOUNT,
    FINAL,
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    DaemonProcess,
    Event,
    History,
    _flat,
    chain_problems,
    daemon_process,
    shared_clock,
    simulator_settings,
    write_config,
)
from tests.systemd.test_notify import _MAX_UNIX_PATH

pytestmark = pytest.mark.postgres

POSTGRES_URL_VAR = "ORCHESTRATOR_TEST_POSTGRES_URL"
SPEED = 600.0
PASSWORD = "not-a-real-password-7f3e"

BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 4
max_live_jobs = 2

[polling]
initial_delay = "20s"
max_delay = "1m"

[cleanup]
interval = "2m"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-08"
"""


class Forwarder:
    """TCP from a loopback port (refusing until started) to the real PostgreSQL server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        # Bound but not listening: the port is ours, and a connect to it is refused.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> None:
        if self._sock.fileno() == -1:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port))
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def stop(self) -> None:
        """Stop listening and cut every forwarded connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        # The listening socket was closed with the server; the port refuses again.

    def close(self) -> None:
        self._sock.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@pytest.fixture
async def pg_database() -> AsyncIterator[tuple[str, int, str]]:
    """A fresh, empty database on the test server: (host, port, name); dropped afterwards."""
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        pytest.skip(f"needs {POSTGRES_URL_VAR} (e.g. .ci/run sets it)")
    async with scratch_postgres_database(url, "orch_wait") as database:
        parsed = make_url(database)
        yield parsed.host or "127.0.0.1", parsed.port or 5432, parsed.database or ""


@pytest.fixture
async def forwarder(pg_database: tuple[str, int, str]) -> AsyncIterator[Forwarder]:
    """A forwarder to the test server, not yet listening."""
    host, port, _ = pg_database
    fwd = Forwarder(host, port)
    try:
        yield fwd
    finally:
        await fwd.stop()
        fwd.close()


@pytest.fixture
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


def drain(sock: socket.socket, into: list[list[str]]) -> list[list[str]]:
    """Every datagram waiting on ``sock``, appended to ``into`` as its lines."""
    while True:
        try:
            into.append(sock.recv(65536).decode().split("\n"))
        except BlockingIOError:
            return into


def config_for(tmp_path: Path, base_url: str, port: int, database: str) -> Path:
    """The process tests' config with ``state.database_url`` through the forwarder's port."""
    path = write_config(tmp_path, base_url, BODY)
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{port}/{database}"
    text = path.read_text().replace("[state]\n", f'[state]\ndatabase_url = "{url}"\n', 1)
    path.write_text(text)
    return path


async def statuses_in(host: str, port: int, database: str) -> dict[str, str]:
    """(type day) -> status, read from the real server."""
    engine = create_engine(f"postgresql+asyncpg://postgres@{host}:{port}/{database}")
    try:
        return {
            f"{d.resource_type.value} {d.day}": d.status.value
            for d in await Store(engine, ACCOUNT).list_days()
        }
    finally:
        await engine.dispose()


def assert_no_traceback(daemon: DaemonProcess) -> None:
    """No plain-text traceback on either stream, and every stdout line is JSON."""
    daemon.events()
    assert "Traceback" not in daemon.stderr.read_text()
    assert "Traceback" not in daemon.stdout.read_text()


def named(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e.get("event") == name]


async def test_a_database_that_comes_up_late_is_waited_for(
    tmp_path: Path,
    pg_database: tuple[str, int, str],
    forwarder: Forwarder,
    notify_socket: tuple[socket.socket, str],
) -> None:
    """Refused at start: one store.unavailable (no password), STATUS says so, the watchdog is
    fed, no READY=1; once the port answers: store.available, migrations, READY=1, work done."""
    host, port, database = pg_database
    receiver, socket_path = notify_socket
    clock = shared_clock(SPEED)
    messages: list[list[str]] = []
    environ = {
        TOKEN_ENV: TOKEN,
        "NOTIFY_SOCKET": socket_path,
        # A ping every 0.5 s.
        "WATCHDOG_USEC": "1000000",
    }
    async with running_simulator(simulator_settings(clock)) as sim:
        config = config_for(tmp_path, sim.base_url, forwarder.port, database)
        async with daemon_process(config, clock, tmp_path / "logs", environ=environ) as daemon:
            # Several tries (1 s, then 2 s) go by with the port refusing.
            await daemon.wait_for(
                lambda events: (
                    len(named(events, "store.unavailable")) == 1
                    and sum(
                        1
                        for m in drain(receiver, messages)
                        for line in m
                        if line.startswith("STATUS=waiting for the database")
                    )
                    >= 2
                ),
                within=60,
            )
            await asyncio.sleep(0)
            drain(receiver, messages)
            waiting = [line for m in messages for line in m]
            assert "READY=1" not in waiting
            assert "WATCHDOG=1" in waiting
            (unavailable,) = daemon.named("store.unavailable")
            assert "ConnectionRefusedError" in unavailable["reason"]
            assert PASSWORD not in daemon.stdout.read_text()
            assert PASSWORD not in "\n".join(waiting)
            assert "***" in unavailable["database"]
            assert not daemon.named("daemon.migrated")

            await forwarder.start()
            events = await daemon.wait_for("daemon.started", within=90)
            assert len(named(events, "store.unavailable")) == 1
            names = [e["event"] for e in events]
            assert names.index("store.available") < names.index("daemon.migrated")
            deadline = time.monotonic() + 30
            while "READY=1" not in [line for m in drain(receiver, messages) for line in m]:
                assert time.monotonic() < deadline, messages
                await asyncio.sleep(0.05)
            await daemon.wait_for("job.submitted", within=60)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(30) == 0
        assert_no_traceback(daemon)
    assert await statuses_in(host, port, database)


async def test_sigterm_while_waiting_for_the_database_stops_at_once(
    tmp_path: Path, pg_database: tuple[str, int, str], forwarder: Forwarder
) -> None:
    """A daemon waiting for a database that never comes stops on SIGTERM, exit 0, promptly."""
    _, _, database = pg_database
    clock = shared_clock(SPEED)
    async with running_simulator(simulator_settings(clock)) as sim:
        config = config_for(tmp_path, sim.base_url, forwarder.port, database)
        async with daemon_process(
            config, clock, tmp_path / "logs", environ={TOKEN_ENV: TOKEN}
        ) as daemon:
            await daemon.wait_for("store.unavailable", within=60)
            began = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(30) == 0
            took = time.monotonic() - began
        assert_no_traceback(daemon)
        assert daemon.named("daemon.stopped")
        # Not one more backoff (up to 60 s) or connect timeout (10 s) first.
        assert took < 8, took


async def test_a_database_that_goes_away_while_running_is_waited_for(
    tmp_path: Path, pg_database: tuple[str, int, str], forwarder: Forwarder
) -> None:
    """Connections cut mid-run: one store.unavailable, no pass traceback storm; when it is
    back, store.available, and the backfill ends with every day final and its history whole."""
    host, port, database = pg_database
    clock = shared_clock(SPEED)
    await forwarder.start()
    async with running_simulator(simulator_settings(clock)) as sim:
        config = config_for(tmp_path, sim.base_url, forwarder.port, database)
        async with daemon_process(
            config, clock, tmp_path / "logs", exit_when_done=True, environ={TOKEN_ENV: TOKEN}
        ) as daemon:
            await daemon.wait_for("job.submitted", within=60)
            await forwarder.stop()
            await daemon.wait_for("store.unavailable", within=60)
            # Several tries while it is away (1 s, 2 s, 4 s ...).
            await asyncio.sleep(4)
            await forwarder.start()
            await daemon.wait_for("store.available", within=90)
            assert await daemon.wait(120) == 0
        assert_no_traceback(daemon)
        events = daemon.events()
        assert len(named(events, "store.unavailable")) == 1
        assert not named(events, "scheduler.pass_failed")
        assert named(events, "daemon.all_days_final")

    statuses = await statuses_in(host, port, database)
    assert len(statuses) == 8
    assert set(statuses.values()) <= FINAL
    engine = create_engine(f"postgresql+asyncpg://postgres@{host}:{port}/{database}")
    try:
        store = Store(engine, ACCOUNT)
        days = await store.list_days()
        history: History = {
            (d.resource_type.value, d.day): [
                _flat(c) for c in await store.day_history(DayKey(d.resource_type, d.day))
            ]
            for d in days
        }
        current = {(d.resource_type.value, d.day): d.status.value for d in days}
        # Every transition recorded before, during and after the outage is there, in order.
        assert chain_problems(current, history) == []
    finally:
        await engine.dispose()
