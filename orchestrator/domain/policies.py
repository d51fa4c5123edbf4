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
class Policies:
    """The policies of one loaded configuration."""

    # The daemon's is a PollPolicy; the benchmarks compare other strategies through this.
    poll: PollStrategy = field(default_factory=PollPolicy)
    plan: PlanLimits = field(default_factory=PlanLimits)
    cleanup: CleanupPolicy = field(default_factory=CleanupPolicy)
    resubmit: ResubmitPolicy = field(default_factory=ResubmitPolicy)
    archive_retry: RetryPolicy = field(default_factory=RetryPolicy)
