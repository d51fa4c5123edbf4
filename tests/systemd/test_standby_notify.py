"""What systemd hears from a standby: READY=1, STATUS=standby naming the leader, the watchdog fed,
then STATUS=running once it takes over. Two daemons in this process on one SQLite database."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from orchestrator.daemon import Daemon
from orchestrator.simulator import running_simulator
from tests.e2e.process_support import (
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    shared_clock,
    simulator_settings,
    write_config,
)

# Generous: a busy machine may be slow to start a daemon; nothing waits this long when well.
DEADLINE = 60.0
BODY = f"""
[jobs]
name_prefix = "{PREFIX}"

[ha]
takeover_interval = "1s"
lease = "3s"

[[exports]]
name = "next-year"
resource_type = "Messages"
start_day = "2027-06-01"
end_day = "2027-06-05"
"""


class Systemd:
    """A datagram socket playing systemd for one daemon: every message it was sent, in order."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self.messages: list[str] = []

    def environ(self) -> dict[str, str]:
        return {
            TOKEN_ENV: TOKEN,
            "NOTIFY_SOCKET": str(self.path),
            # A ping every 0.25 s (half of WATCHDOG_USEC).
            "WATCHDOG_USEC": "500000",
            "WATCHDOG_PID": str(os.getpid()),
        }

    async def wait_for(self, wanted: str) -> list[str]:
        """Messages up to and including the first that contains ``wanted``."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(DEADLINE):
            while not any(wanted in m for m in self.messages):
                self.messages.append((await loop.sock_recv(self.sock, 4096)).decode())
        return self.messages


@pytest.fixture
def systemds() -> Iterator[tuple[Systemd, Systemd]]:
    """Two systemd notification sockets (short paths: AF_UNIX limits them)."""
    with (
        tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as short,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as first,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as second,
    ):
        pair = []
        for name, sock in (("a", first), ("b", second)):
            path = Path(short) / f"{name}.sock"
            sock.bind(str(path))
            sock.setblocking(False)
            pair.append(Systemd(sock, path))
        yield pair[0], pair[1]


async def test_a_standby_is_ready_names_the_leader_and_takes_over_when_it_stops(
    tmp_path: Path, systemds: tuple[Systemd, Systemd]
) -> None:
    """B: READY=1 with STATUS=standby naming A (this pid), watchdog pings while standing by;
    after A stops (and frees the lock), STATUS=running."""
    leader_sd, standby_sd = systemds
    clock = shared_clock(60.0)
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, BODY)
        leader = Daemon(config, clock=clock, environ=leader_sd.environ(), log_stream=io.StringIO())
        first = asyncio.create_task(leader.run())
        standby = Daemon(
            config, clock=clock, environ=standby_sd.environ(), log_stream=io.StringIO()
        )
        second: asyncio.Task[int] | None = None
        try:
            before = await leader_sd.wait_for("READY=1")
            assert any("STATUS=running" in m for m in before)
            second = asyncio.create_task(standby.run())
            seen = await standby_sd.wait_for("READY=1")
            ready = next(m for m in seen if "READY=1" in m)
            assert f"STATUS=standby: {socket.gethostname()} pid {os.getpid()} since" in ready
            assert ready.endswith("is active")
            # Standing by is not being stuck: the watchdog is fed.
            await standby_sd.wait_for("WATCHDOG=1")
            leader.request_stop()
            assert await asyncio.wait_for(first, DEADLINE) == 0
            taken = await standby_sd.wait_for("STATUS=running")
            assert not any(
                "standby" in m for m in taken[taken.index(ready) + 1 :] if "STATUS=running" in m
            )
        finally:
            leader.request_stop()
            standby.request_stop()
            for task in (first, second):
                if task is not None:
                    await asyncio.wait_for(task, DEADLINE)
            structlog.reset_defaults()
