"""Waiting for the database: how long to wait before the next try, and when to say so.

A daemon whose database is not there (yet: a PostgreSQL server still booting, or one that went
away while we ran) waits for it instead of exiting. Two pure decisions:

- ``ReconnectBackoff.delay(failures, rand)``: about 1 s after the first failed try, doubling up
  to 60 s, with a little jitter (``rand`` in [0, 1) is passed in, like the poll policy's), so a
  fleet restarted together does not knock on the server in step. Never more than ``maximum``.
- ``Outage``: what we know of the current outage. ``failed(reason, now)`` returns the next
  state and whether this failure starts an outage (log ``store.unavailable`` once, not once per
  try); ``recovered(now)`` returns how long the outage lasted (None when there was none), so
  ``store.available`` is logged once when the database is back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class ReconnectBackoff:
    """Seconds between tries: ``first`` doubling (``factor``) up to ``maximum``, +-``jitter``."""

    first: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    # A share of the delay: 0.1 means up to 10 % shorter or longer (never above maximum).
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.maximum:
            raise ValueError(f"need 0 < first <= maximum, got {self.first}, {self.maximum}")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, failures: int, rand: float = 0.5) -> float:
        """Seconds to wait after the ``failures``-th failed try in a row (1 for the first)."""
        if failures < 1:
            raise ValueError(f"failures counts from 1, got {failures}")
        # Capped exponent: 2.0 ** 10_000 would overflow a float.
        exponent = min(failures - 1, 64)
        base = min(self.maximum, self.first * self.factor**exponent)
        spread = 1.0 + self.jitter * (2.0 * rand - 1.0)
        return max(0.0, min(self.maximum, base * spread))


@dataclass(frozen=True, slots=True)
class Outage:
    """The database's availability as this process saw it: up, or down since a moment."""

    down_since: dt.datetime | None = None
    failures: int = 0
    reason: str | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, reason: str, now: dt.datetime) -> tuple[Outage, bool]:
        """The state after a failed try, and whether it starts an outage (say so once)."""
        if self.down_since is None:
            return Outage(down_since=now, failures=1, reason=reason), True
        return replace(self, failures=self.failures + 1, reason=reason), False

    def recovered(self, now: dt.datetime) -> tuple[Outage, dt.timedelta | None]:
        """The state after a successful try, and how long the outage lasted (None: no outage)."""
        if self.down_since is None:
            return self, None
        return Outage(), max(dt.timedelta(0), now - self.down_since)
