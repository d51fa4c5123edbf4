"""What systemd sees while the daemon waits for a PostgreSQL server that refuses connections:
STATUS says so, WATCHDOG=1 keeps coming, READY=1 never does, and a stop ends the wait at once.

No server is needed: the URL points at a loopback port that is bound but not listening.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from orchestrator.daemon import Daemon
from orchestrator.domain.reconnect import ReconnectBackoff

from .test_notify import _MAX_UNIX_PATH

pytest.importorskip("asyncpg")

PASSWORD = "pw-that-must-not-show-91c2"


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    """A path to bind a Unix socket at, short enough for sun_path."""
    path = tmp_path / "notify.sock"
    if len(str(path)) < _MAX_UNIX_PATH:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as short:
        yield Path(short) / "n.sock"


@pytest.fixture
def receiver(socket_path: Path) -> Iterator[socket.socket]:
    """systemd's notification socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(socket_path))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses every connection for the test's length."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def received(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.extend(sock.recv(65536).decode().split("\n"))
        except BlockingIOError:
            return into


async def test_waiting_for_the_database_shows_in_status_and_feeds_the_watchdog(
    tmp_path: Path, receiver: socket.socket, socket_path: Path, refused_port: int
) -> None:
    """STATUS=waiting for the database (no password), WATCHDOG=1 pings, no READY=1; a stop
    ends the wait at once with exit 0."""
    config = tmp_path / "config.toml"
    url = f"postgresql+asyncpg://orch:{PASSWORD}@127.0.0.1:{refused_port}/orch"
    config.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "AC{"3" * 32}"
            auth_token_env = "WAIT_TOKEN"
            base_url = "http://127.0.0.1:9"

            [state]
            directory = "{tmp_path / "state"}"
            database_url = "{url}"

            [jobs]
            name_prefix = "orch-wait"

            [logging]
            format = "json"

            [[exports]]
            name = "m"
            resource_type = "Messages"
            last_days = 2
            """
        )
    )
    stream = io.StringIO()
    daemon = Daemon(
        config,
        environ={
            "WAIT_TOKEN": "t" * 32,
            "NOTIFY_SOCKET": str(socket_path),
            "WATCHDOG_USEC": "200000",
        },
        log_stream=stream,
        # Short waits keep the test quick; the doubling is the same.
        reconnect=ReconnectBackoff(first=0.05, maximum=0.2),
    )
    lines: list[str] = []
    run = asyncio.create_task(daemon.run())
    try:
        deadline = time.monotonic() + 30
        while (
            sum(1 for line in received(receiver, lines) if line.startswith("STATUS=waiting")) < 3
            or "WATCHDOG=1" not in lines
        ):
            assert not run.done(), stream.getvalue()[-2000:]
            assert time.monotonic() < deadline, lines
            await asyncio.sleep(0.02)
        began = time.monotonic()
        daemon.request_stop()
        assert await asyncio.wait_for(run, 10) == 0
        took = time.monotonic() - began
    finally:
        daemon.request_stop()
        structlog.reset_defaults()
    received(receiver, lines)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    names = [e["event"] for e in events]
    assert "READY=1" not in lines
    assert "STOPPING=1" in lines
    assert names.count("store.unavailable") == 1
    assert "daemon.migrated" not in names
    assert names[-1] == "daemon.stopped"
    assert PASSWORD not in stream.getvalue()
    assert not any(PASSWORD in line for line in lines)
    status = next(line for line in lines if line.startswith("STATUS=waiting"))
    assert "ConnectionRefusedError" in status
    assert took < 5, took
