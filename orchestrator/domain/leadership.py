"""One active daemon per account: when the leader may act, and how a standby describes it.

Two ``orchestrator run`` on one database share the work safely by leadership: the holder of
the account's lock (``store.leadership``) runs the passes; the others stand by and try for the
lock every ``takeover_interval``. These are the pure parts, in real (monotonic) seconds, never
the daemon's possibly sped-up clock:

- ``HaPolicy``: how often a standby tries for the lock, and the lease. The leader confirms it
  still holds the lock every ``heartbeat`` (a fifth of the lease) and gives a confirmation at
  most ``confirm_timeout`` (half the lease). On PostgreSQL the lock's session is ended by the
  server once idle for a lease (``idle_session_timeout``), so a leader that stops confirming
  (paused, partitioned, its event loop stuck) loses the lock one lease after its last
  confirmation, and not before.
- ``Lease``: the leader acts (sends Twilio a request, opens a write) only within one lease of
  the *start* of its last successful confirmation. A lease started before the server's idle
  clock did, so it always runs out before a standby can be given the lock: a leader resumed
  after a long pause finds its lease over and acts on nothing until it has confirmed again,
  which fails if the lock was lost. A lease that ran out while the lock is still held (a
  confirmation late on a busy machine) is renewed by the next confirmation: nobody else can
  have been given a lock we still hold.
- ``Leader``: who leads, as the leader recorded it (host, pid, since, epoch); ``describe`` is
  the words the standby's log and systemd STATUS use.

The epoch is the fence in the database: each takeover increments it, and every write of a
leader checks, inside its transaction, that the epoch is still the one it took over with
(``Store`` does; a write of a deposed leader is refused whole).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from orchestrator.errors import InvalidInput

# Bounds of the [ha] durations: a try more often than every second is a load on the
# database for nothing; a lease under 3 s leaves a busy machine no room for a heartbeat.
MIN_TAKEOVER_INTERVAL = dt.timedelta(seconds=1)
MAX_TAKEOVER_INTERVAL = dt.timedelta(hours=1)
MIN_LEASE = dt.timedelta(seconds=3)
MAX_LEASE = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class HaPolicy:
    """A standby's cadence and the leader's lease; validated here, defaults here."""

    takeover_interval: dt.timedelta = dt.timedelta(seconds=5)
    lease: dt.timedelta = dt.timedelta(seconds=10)

    def __post_init__(self) -> None:
        for name, value, low, high in (
            (
                "takeover_interval",
                self.takeover_interval,
                MIN_TAKEOVER_INTERVAL,
                MAX_TAKEOVER_INTERVAL,
            ),
            ("lease", self.lease, MIN_LEASE, MAX_LEASE),
        ):
            if not low <= value <= high:
                raise InvalidInput(
                    name,
                    f"must be between {low.total_seconds():g} s and {high.total_seconds():g} s,"
                    f" got {value.total_seconds():g} s",
                )

    @property
    def takeover_seconds(self) -> float:
        return self.takeover_interval.total_seconds()

    @property
    def lease_seconds(self) -> float:
        return self.lease.total_seconds()

    @property
    def heartbeat_seconds(self) -> float:
        """How often the leader confirms it holds the lock: five times a lease."""
        return self.lease_seconds / 5

    @property
    def confirm_timeout_seconds(self) -> float:
        """A confirmation that takes longer than this failed: the lock is given up."""
        return self.lease_seconds / 2


@dataclass(frozen=True, slots=True)
class Lease:
    """The leader's right to act: from ``confirmed_at`` (monotonic seconds) for ``seconds``."""

    confirmed_at: float
    seconds: float

    def holds(self, now: float) -> bool:
        """May the leader act at ``now``? Only within the lease (a clock going back: no)."""
        return self.confirmed_at <= now < self.confirmed_at + self.seconds

    def renewed(self, started: float) -> Lease:
        """The lease after a confirmation that started at ``started`` succeeded."""
        return Lease(max(self.confirmed_at, started), self.seconds)


@dataclass(frozen=True, slots=True)
class Leader:
    """The leader of an account, as it recorded itself on taking over (``epoch`` None: known
    only from its lock file, not from the database)."""

    host: str
    pid: int
    since: dt.datetime
    epoch: int | None = None

    def describe(self) -> str:
        """``host pid N since ISO`` for logs, STATUS lines and ``status``."""
        since = self.since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"{self.host} pid {self.pid} since {since}"


def standby_status(leader: Leader | None) -> str:
    """The systemd STATUS text of a standby."""
    if leader is None:
        return "standby: another instance holds the lock"
    return f"standby: {leader.describe()} is active"
