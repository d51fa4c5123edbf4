"""Every policy the workflows follow, as one frozen value built at load and at reload. Pure.

Each policy owns its defaults and its validation (like httpx's ``Timeout``): the configuration
maps keys onto them without restating a default, and workflows are handed a ``Policies``, never
the TOML's shape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from orchestrator.domain.archiving import RetryPolicy
from orchestrator.domain.cleanup import CleanupPolicy
from orchestrator.domain.plan import PlanLimits
from orchestrator.domain.polling import PollPolicy, PollStrategy
from orchestrator.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ResubmitPolicy:
    """What a day that failed in its job becomes."""

    # Failures a day may have and still be resubmitted; one more and it is GaveUp.
    max_resubmits: int = 3
    # A resubmitted day waits this long before a new job may take it.
    delay: dt.timedelta = dt.timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.max_resubmits < 0:
            raise InvalidInput("max_resubmits", f"{self.max_resubmits} is below 0")
        if self.delay < dt.timedelta(0):
            raise InvalidInput("resubmit_delay", "must not be negative")


@dataclass(frozen=True, slots=True)
class AmbiguousCreatePolicy:
    """How long a create with an unclear answer is looked for; how many one day may have."""

    # Looks at Twilio's job list (the first one ``first_lookup_after`` after the create) before
    # a job nobody can find is taken as never created.
    lookups: int = 3
    # The wait before the first look; each later wait doubles, up to ``max_lookup_after``.
    first_lookup_after: dt.timedelta = dt.timedelta(minutes=1)
    max_lookup_after: dt.timedelta = dt.timedelta(hours=1)
    # Ambiguous creates including one day, per UTC day, before the day waits for the next one.
    max_creates_per_day: int = 3

    def __post_init__(self) -> None:
        for name in ("lookups", "max_creates_per_day"):
            if getattr(self, name) < 1:
                raise InvalidInput(name, f"{getattr(self, name)} is not at least 1")
        if self.first_lookup_after <= dt.timedelta(0):
            raise InvalidInput("first_lookup_after", "must be positive")
        if self.max_lookup_after < self.first_lookup_after:
            raise InvalidInput("max_lookup_after", "must not be below first_lookup_after")

    def lookup_delay(self, looked: int) -> dt.timedelta:
        """The wait after ``looked`` looks (0: the wait before the first one)."""
        # In float seconds, capped before it becomes a timedelta: no overflow for any count.
        seconds = self.first_lookup_after.total_seconds() * 2.0 ** min(max(looked, 0), 64)
        return min(dt.timedelta(seconds=min(seconds, 1e9)), self.max_lookup_after)


@dataclass(frozen=True, slots=True)
class Policies:
    """The policies of one loaded configuration."""

    # The daemon's is a PollPolicy; the benchmarks compare other strategies through this.
    poll: PollStrategy = field(default_factory=PollPolicy)
    plan: PlanLimits = field(default_factory=PlanLimits)
    cleanup: CleanupPolicy = field(default_factory=CleanupPolicy)
    resubmit: ResubmitPolicy = field(default_factory=ResubmitPolicy)
    archive_retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Creates with an unclear answer (``domain.ambiguous``).
    ambiguous: AmbiguousCreatePolicy = field(default_factory=AmbiguousCreatePolicy)
