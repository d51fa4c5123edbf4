"""The one place that reads the wall clock.

Everything else receives a ``Clock`` (or a ``now`` value) so tests, the demo and the benchmarks
can run on manual or sped-up time.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...

    def real_seconds(self, simulated: dt.timedelta) -> float:
        """How many real seconds pass while this clock advances by ``simulated``."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def real_seconds(self, simulated: dt.timedelta) -> float:
        return max(0.0, simulated.total_seconds())

    def __repr__(self) -> str:
        return "SystemClock()"


class ScaledClock:
    """A clock that runs ``speed`` times faster than real time from ``start``.

    Two ScaledClocks built with the same ``start``, ``speed`` and ``anchor`` agree, which is how
    the demo and the benchmarks keep the simulator and the daemon on one timeline.
    """

    def __init__(
        self, speed: float, start: dt.datetime | None = None, anchor: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self.start = (start or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        self.anchor = time.monotonic() if anchor is None else anchor

    def now(self) -> dt.datetime:
        elapsed = (time.monotonic() - self.anchor) * self.speed
        return self.start + dt.timedelta(seconds=elapsed)

    def real_seconds(self, simulated: dt.timedelta) -> float:
        return max(0.0, simulated.total_seconds() / self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed}, start={self.start.isoformat()})"


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        self._now += delta
        return self._now

    def set(self, when: dt.datetime) -> None:
        self._now = when.astimezone(dt.UTC)

    def real_seconds(self, simulated: dt.timedelta) -> float:
        return 0.0

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
