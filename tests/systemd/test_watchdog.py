"""The watchdog: WATCHDOG_USEC parsing and the event-loop ping task."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator.systemd import Notifier, run_watchdog, watchdog_interval

_PID = 4242
_INTERVAL = 0.01
# Generous bound so a slow CI machine does not flake; the tests normally take milliseconds.
_DEADLINE = 5.0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, None, id="unset"),
        pytest.param({"WATCHDOG_USEC": ""}, None, id="empty"),
        pytest.param({"WATCHDOG_USEC": "sixty"}, None, id="not-a-number"),
        pytest.param({"WATCHDOG_USEC": "0"}, None, id="zero"),
        pytest.param({"WATCHDOG_USEC": "-5"}, None, id="negative"),
        pytest.param({"WATCHDOG_USEC": "60000000"}, 30.0, id="normal"),
        pytest.param({"WATCHDOG_USEC": "1000"}, 0.0005, id="tiny"),
        pytest.param({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}, 30.0, id="pid-is-us"),
        pytest.param({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None, id="pid-mismatch"),
        pytest.param({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}, None, id="pid-bad"),
        pytest.param({"WATCHDOG_PID": "4242"}, None, id="pid-without-usec"),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    """Half of WATCHDOG_USEC in seconds, or None when unset, invalid or meant for another PID."""
    assert watchdog_interval(environ, pid=_PID) == expected


def test_watchdog_interval_defaults_to_own_pid() -> None:
    """Without ``pid=``, WATCHDOG_PID is compared with this process's PID."""
    environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(environ) == 1.0


@pytest.fixture
def receiver() -> Iterator[tuple[socket.socket, Notifier]]:
    """A non-blocking datagram socket playing systemd, and a Notifier aimed at it."""
    with (
        tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as short,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = Path(short) / "n.sock"
        sock.bind(str(path))
        sock.setblocking(False)
        yield sock, Notifier.from_environ({"NOTIFY_SOCKET": str(path)})


async def _recv(sock: socket.socket) -> str:
    data = await asyncio.get_running_loop().sock_recv(sock, 4096)
    return data.decode("utf-8")


def _drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode("utf-8"))
        except BlockingIOError:
            return messages


async def test_pings_repeatedly(receiver: tuple[socket.socket, Notifier]) -> None:
    """run_watchdog sends WATCHDOG=1 again and again while healthy."""
    sock, notifier = receiver
    task = asyncio.create_task(run_watchdog(notifier, _INTERVAL, lambda: True))
    try:
        async with asyncio.timeout(_DEADLINE):
            assert await _recv(sock) == "WATCHDOG=1"
            assert await _recv(sock) == "WATCHDOG=1"
            assert await _recv(sock) == "WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_stops_when_unhealthy(receiver: tuple[socket.socket, Notifier]) -> None:
    """Once health() is false the task logs and returns; no further pings are sent."""
    sock, notifier = receiver
    answers = iter([True, True, True, False])
    with capture_logs() as logs:
        async with asyncio.timeout(_DEADLINE):
            await run_watchdog(notifier, _INTERVAL, lambda: next(answers))
    assert _drain(sock) == ["WATCHDOG=1"] * 3
    assert [entry["event"] for entry in logs] == ["systemd.watchdog_unhealthy"]


async def test_unhealthy_from_the_start(receiver: tuple[socket.socket, Notifier]) -> None:
    """An unhealthy daemon never pings at all."""
    sock, notifier = receiver
    async with asyncio.timeout(_DEADLINE):
        await run_watchdog(notifier, _INTERVAL, lambda: False)
    assert _drain(sock) == []


async def test_failing_health_check_stops_pings(receiver: tuple[socket.socket, Notifier]) -> None:
    """A health check that raises counts as unhealthy: logged, no crash, no more pings."""
    sock, notifier = receiver

    def broken() -> bool:
        raise RuntimeError("database gone")

    with capture_logs() as logs:
        async with asyncio.timeout(_DEADLINE):
            await run_watchdog(notifier, _INTERVAL, broken)
    assert _drain(sock) == []
    assert [entry["event"] for entry in logs] == ["systemd.watchdog_health_failed"]


async def test_cancellation_is_clean(receiver: tuple[socket.socket, Notifier]) -> None:
    """Cancelling the task (shutdown) ends it as cancelled, with nothing logged."""
    sock, notifier = receiver
    with capture_logs() as logs:
        task = asyncio.create_task(run_watchdog(notifier, 3600, lambda: True))
        async with asyncio.timeout(_DEADLINE):
            assert await _recv(sock) == "WATCHDOG=1"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()
    assert logs == []


async def test_blocked_loop_stops_pings() -> None:
    """Pings come from the event loop, so a blocked loop sends none while it is blocked."""
    sent: list[float] = []

    class Recording(Notifier):
        def watchdog(self) -> bool:
            sent.append(time.monotonic())
            return True

    block = 0.2
    task = asyncio.create_task(run_watchdog(Recording(None), _INTERVAL, lambda: True))
    try:
        await asyncio.sleep(0.05)
        time.sleep(block)  # noqa: ASYNC251 - blocking the loop on purpose is the point of the test
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert max(gaps) >= block


async def test_rejects_non_positive_interval() -> None:
    """A zero interval would spin the loop; it is refused."""
    with pytest.raises(ValueError, match="positive"):
        await run_watchdog(Notifier(None), 0, lambda: True)
