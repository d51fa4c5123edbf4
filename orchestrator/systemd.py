"""Talking to systemd: sd_notify(3) messages and the service watchdog, with no third-party library.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the Linux abstract namespace). It is small
enough to own, and the maintained Python bindings are synchronous C extensions we would not gain
from. Everything here is a no-op when the daemon does not run under systemd (no ``NOTIFY_SOCKET``),
and a failed send is logged, never raised: losing a status line must not take the daemon down.

The watchdog pings come from a task on the daemon's own event loop (``run_watchdog``), so a loop
that is blocked or wedged stops pinging and systemd restarts the service, which is the point.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from orchestrator.logs import get_logger

__all__ = ["Notifier", "run_watchdog", "watchdog_interval"]

_LOGGER_NAME = "orchestrator.systemd"


def _address_from(value: str) -> str | None:
    """The socket address for a ``NOTIFY_SOCKET`` value, or None when we cannot use it.

    '@' marks the Linux abstract namespace, spelled with a leading NUL byte on the socket API.
    Other forms (e.g. ``vsock:`` from systemd >= 254, meant for VMs) are not ours to support.
    """
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _one_line(text: str) -> str:
    # A newline inside a value would start a new KEY=VALUE assignment in the datagram.
    return " ".join(text.splitlines())


class Notifier:
    """Sends sd_notify(3) messages to systemd; does nothing when not started by systemd.

    Each message opens, uses and closes its own non-blocking datagram socket, as libsystemd
    does: there is no descriptor to leak or close, and a full receive queue makes the send fail
    (logged) instead of blocking the event loop.
    """

    def __init__(
        self,
        address: str | None,
        *,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._address = address
        self._log = logger if logger is not None else get_logger(_LOGGER_NAME)

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> Notifier:
        """A notifier for ``environ["NOTIFY_SOCKET"]``; a disabled one when unset or unusable."""
        log = logger if logger is not None else get_logger(_LOGGER_NAME)
        raw = environ.get("NOTIFY_SOCKET", "")
        if not raw:
            return cls(None, logger=log)
        address = _address_from(raw)
        if address is None:
            log.warning("systemd.notify_socket_unsupported", notify_socket=raw)
        return cls(address, logger=log)

    @property
    def enabled(self) -> bool:
        """Whether messages are actually sent anywhere."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True when systemd got it.

        False when disabled or when sending failed (the failure is logged, not raised).
        """
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            self._log.warning(
                "systemd.notify_failed",
                message=assignments[0] if assignments else "",
                error=repr(exc),
            )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: systemd marks the unit active."""
        return self.notify("READY=1", *self._status_fields(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (sent on SIGTERM, before draining)."""
        return self.notify("STOPPING=1", *self._status_fields(status))

    def reloading(self, status: str | None = None) -> bool:
        """A configuration reload has begun; follow with ``ready()`` when it is done.

        Type=notify-reload requires MONOTONIC_USEC alongside RELOADING=1 so systemd can tell
        this reload apart from an earlier one.
        """
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(
            "RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", *self._status_fields(status)
        )

    def status(self, text: str) -> bool:
        """A one-line, human-readable state shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Tell systemd we are alive (WatchdogSec=)."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the start/stop timeout fires (e.g. slow migrations)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    @staticmethod
    def _status_fields(status: str | None) -> tuple[str, ...]:
        return () if status is None else (f"STATUS={_one_line(status)}",)

    def __repr__(self) -> str:
        shown = None if self._address is None else self._address.replace("\0", "@", 1)
        return f"Notifier(address={shown!r})"


def watchdog_interval(
    environ: Mapping[str, str] = os.environ, *, pid: int | None = None
) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``WATCHDOG_USEC``), or None for no watchdog.

    None when WATCHDOG_USEC is unset, not a positive integer, or when WATCHDOG_PID names
    another process (the variables were meant for a parent and leaked to us). ``pid`` defaults
    to ``os.getpid()``.
    """
    raw_usec = environ.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = environ.get("WATCHDOG_PID", "").strip()
    if raw_pid:
        try:
            wanted_pid = int(raw_pid)
        except ValueError:
            return None
        if wanted_pid != (os.getpid() if pid is None else pid):
            return None
    # Half the deadline, as sd_watchdog_enabled(3) advises, so one late ping is not fatal.
    return usec / 2 / 1_000_000


async def run_watchdog(notifier: Notifier, interval: float, health: Callable[[], bool]) -> None:
    """Ping WATCHDOG=1 every ``interval`` seconds while ``health()`` holds; run as a task.

    Returns (and so stops pinging, letting systemd restart us) once ``health()`` is false.
    It runs on the daemon's loop on purpose: if that loop is blocked, the pings stop too.
    Cancel the task to stop it on shutdown.
    """
    if interval <= 0:
        raise ValueError(f"watchdog interval must be positive, got {interval}")
    log = get_logger(_LOGGER_NAME)
    while True:
        try:
            healthy = health()
        except Exception:
            # A broken health check is an unhealthy daemon: stop pinging rather than crash.
            log.exception("systemd.watchdog_health_failed")
            return
        if not healthy:
            log.error("systemd.watchdog_unhealthy", interval=interval)
            return
        notifier.watchdog()
        await asyncio.sleep(interval)
