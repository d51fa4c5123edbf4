"""When to archive which day, and what a failed attempt means. Pure: no I/O.

- ``removal_deadline``: Twilio removes a day file seven days after making it. We know when we
  saw the day complete (``completed_at``, never before Twilio made the file) and, from the Days
  list, the UTC date Twilio made it; the earlier estimate wins.
- ``order_by_deadline``: the due days, soonest removal first.
- ``decide_failure``: a failed attempt is retried at once within the pass a bounded number of
  times (a new pre-signed URL for an expired one, a new download for a broken one), then the
  day waits ``backoff(attempts)`` and is tried again on a later pass, for as long as Twilio
  keeps the file. A full or unwritable disk is not retried within the pass.
- ``after_failure``: a pass that gave up on a day counts one more failure in its
  ``ArchiveAttempts`` and says when the next pass may try it; the store writes that value only
  if the day's count is still the one it was computed from.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.domain.model import Day, DayKey

FILE_TTL = dt.timedelta(days=7)


class FailureKind(enum.StrEnum):
    """What went wrong with one attempt to archive a day."""

    EXPIRED_URL = "expired_url"  # the pre-signed URL was refused: resolve the day again
    CORRUPT = "corrupt"  # truncated gzip, a non-JSON line, a size mismatch
    TRANSPORT = "transport"  # the download broke, stalled, or the host failed
    WRITE = "write"  # the disk is full or the directory is not writable
    GONE = "gone"  # Twilio no longer has the file
    UNEXPECTED = "unexpected"  # an error of ours (a bug, the store): not retried in the pass


class Next(enum.StrEnum):
    RETRY_NOW = "retry_now"
    LATER = "later"
    MAKE_AGAIN = "make_again"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying a failed archive; validated on construction."""

    # Attempts of one day within one pass (the first included).
    attempts_per_pass: int = 3
    # Backoff between passes: first_delay * 2 ** (failures - 1), at most max_delay.
    first_delay: dt.timedelta = dt.timedelta(minutes=1)
    max_delay: dt.timedelta = dt.timedelta(hours=1)
    # Share of the delay added at random (spreads retries of many days).
    jitter: float = 0.1
    # From this many failed passes on, a failure is logged at error level.
    alarm_after: int = 5

    def __post_init__(self) -> None:
        if self.attempts_per_pass < 1:
            raise ValueError("attempts_per_pass must be at least 1")
        if self.first_delay <= dt.timedelta(0) or self.max_delay < self.first_delay:
            raise ValueError("need 0 < first_delay <= max_delay")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        if self.alarm_after < 1:
            raise ValueError("alarm_after must be at least 1")


DEFAULT_RETRY_POLICY = RetryPolicy()


def backoff(failures: int, policy: RetryPolicy, rand: float = 0.0) -> dt.timedelta:
    """How long a day waits after its ``failures``-th failed pass (``rand`` in [0, 1))."""
    exponent = min(max(failures, 1) - 1, 30)
    delay = min(policy.first_delay * (1 << exponent), policy.max_delay)
    return delay * (1.0 + policy.jitter * rand)


@dataclass(frozen=True, slots=True)
class ArchiveAttempts:
    """A day's failed passes at archiving its current file, as the store keeps them."""

    attempts: int
    # When the next attempt is due; None = as soon as the day is due for archiving.
    next_attempt_at: dt.datetime | None
    # The last failure, for operators.
    error: str | None


def after_failure(
    previous: ArchiveAttempts,
    now: dt.datetime,
    policy: RetryPolicy,
    rand: float,
    error: str,
) -> ArchiveAttempts:
    """The day's attempts once a pass failed it at ``now`` with ``error`` (``rand`` in [0, 1)).

    One more failure counted; the next attempt is due ``backoff(failures)`` after ``now``.
    """
    failures = previous.attempts + 1
    return ArchiveAttempts(
        attempts=failures, next_attempt_at=now + backoff(failures, policy, rand), error=error
    )


def decide_failure(kind: FailureKind, attempt: int, policy: RetryPolicy) -> Next:
    """After the ``attempt``-th attempt of this pass failed with ``kind``: what next."""
    if kind is FailureKind.GONE:
        return Next.MAKE_AGAIN
    if kind in (FailureKind.WRITE, FailureKind.UNEXPECTED):
        # The disk will not be emptier in a millisecond, nor a bug fixed; other days carry on.
        return Next.LATER
    return Next.RETRY_NOW if attempt < policy.attempts_per_pass else Next.LATER


def removal_deadline(completed_at: dt.datetime, created_on: dt.date | None = None) -> dt.datetime:
    """The latest Twilio can be expected to still have the file."""
    deadline = completed_at + FILE_TTL
    if created_on is not None:
        made = dt.datetime.combine(created_on, dt.time(), tzinfo=dt.UTC)
        deadline = min(deadline, made + FILE_TTL)
    return deadline


def order_by_deadline(
    due: Iterable[Day], created_on: Mapping[DayKey, dt.date] | None = None
) -> list[Day]:
    """``due`` by removal deadline, soonest first; ties by resource type and day.

    A successful day's ``last_changed_at`` is its completion time (a success is final: the
    store writes both together and never changes the day again until it leaves success).
    """
    made = created_on or {}

    def key(day: Day) -> tuple[dt.datetime, str, dt.date]:
        deadline = removal_deadline(day.last_changed_at, made.get(day.key))
        return (deadline, day.resource_type.value, day.day)

    return sorted(due, key=key)
