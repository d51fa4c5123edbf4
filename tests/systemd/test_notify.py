"""sd_notify messages, checked on a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator.systemd import Notifier

# sun_path holds 108 bytes including the terminating NUL.
_MAX_UNIX_PATH = 100


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
    """A datagram socket playing systemd's notification socket, bound at ``socket_path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(socket_path))
        sock.settimeout(2)
        yield sock
    finally:
        sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def _nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    return False


def _notifier(path: Path) -> Notifier:
    return Notifier.from_environ({"NOTIFY_SOCKET": str(path)})


def test_ready_sends_ready(receiver: socket.socket, socket_path: Path) -> None:
    """ready() sends READY=1 alone."""
    assert _notifier(socket_path).ready() is True
    assert _recv(receiver) == ["READY=1"]


def test_ready_with_status(receiver: socket.socket, socket_path: Path) -> None:
    """ready(status=...) sends READY=1 and STATUS= in one datagram."""
    _notifier(socket_path).ready(status="watching 4 exports")
    assert _recv(receiver) == ["READY=1", "STATUS=watching 4 exports"]


def test_stopping(receiver: socket.socket, socket_path: Path) -> None:
    """stopping() sends STOPPING=1."""
    _notifier(socket_path).stopping()
    assert _recv(receiver) == ["STOPPING=1"]


def test_reloading_sends_monotonic_usec(receiver: socket.socket, socket_path: Path) -> None:
    """reloading() sends RELOADING=1 and the current CLOCK_MONOTONIC in microseconds."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    _notifier(socket_path).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = _recv(receiver)
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_status(receiver: socket.socket, socket_path: Path) -> None:
    """status(text) sends STATUS=text."""
    _notifier(socket_path).status("3 jobs running")
    assert _recv(receiver) == ["STATUS=3 jobs running"]


def test_status_newlines_flattened(receiver: socket.socket, socket_path: Path) -> None:
    """A newline in a status cannot smuggle in another assignment."""
    _notifier(socket_path).status("line one\nREADY=1")
    assert _recv(receiver) == ["STATUS=line one READY=1"]


def test_watchdog(receiver: socket.socket, socket_path: Path) -> None:
    """watchdog() sends WATCHDOG=1."""
    _notifier(socket_path).watchdog()
    assert _recv(receiver) == ["WATCHDOG=1"]


def test_extend_timeout(receiver: socket.socket, socket_path: Path) -> None:
    """extend_timeout(seconds) sends EXTEND_TIMEOUT_USEC in microseconds."""
    _notifier(socket_path).extend_timeout(1.5)
    assert _recv(receiver) == ["EXTEND_TIMEOUT_USEC=1500000"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_namespace() -> None:
    """An '@' NOTIFY_SOCKET names a socket in the abstract namespace."""
    name = f"orchestrator-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.enabled
        assert notifier.ready() is True
        assert _recv(sock) == ["READY=1"]
        assert repr(notifier) == f"Notifier(address='@{name}')"


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}], ids=["unset", "empty"])
def test_noop_without_notify_socket(environ: dict[str, str]) -> None:
    """Without NOTIFY_SOCKET every method is a silent no-op that returns False."""
    notifier = Notifier.from_environ(environ)
    with capture_logs() as logs:
        results = [
            notifier.ready(status="x"),
            notifier.stopping(),
            notifier.reloading(),
            notifier.status("x"),
            notifier.watchdog(),
        ]
    assert not notifier.enabled
    assert results == [False] * 5
    assert logs == []


def test_missing_socket_is_logged_not_raised(tmp_path: Path) -> None:
    """Sending to a socket path that does not exist logs systemd.notify_failed and returns."""
    notifier = _notifier(tmp_path / "gone.sock")
    with capture_logs() as logs:
        assert notifier.ready() is False
    assert [entry["event"] for entry in logs] == ["systemd.notify_failed"]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["message"] == "READY=1"


def test_closed_socket_is_logged_not_raised(socket_path: Path) -> None:
    """A socket file nobody listens on any more (connection refused) is logged, not raised."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(socket_path))
    sock.close()
    with capture_logs() as logs:
        assert _notifier(socket_path).watchdog() is False
    assert [entry["event"] for entry in logs] == ["systemd.notify_failed"]


def test_unsupported_address_disables() -> None:
    """A NOTIFY_SOCKET we cannot use (e.g. vsock) is warned about once and then ignored."""
    with capture_logs() as logs:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"})
        assert notifier.ready() is False
    assert not notifier.enabled
    assert [entry["event"] for entry in logs] == ["systemd.notify_socket_unsupported"]


def test_one_datagram_per_message(receiver: socket.socket, socket_path: Path) -> None:
    """Each call is exactly one datagram, in call order."""
    notifier = _notifier(socket_path)
    notifier.status("a")
    notifier.ready()
    assert _recv(receiver) == ["STATUS=a"]
    assert _recv(receiver) == ["READY=1"]
    assert _nothing_waiting(receiver)
