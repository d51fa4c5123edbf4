"""What every workflow is given: the store, the client, the clock, the policies, API health.

Workflows never see the configuration file's shape: ``policies`` is the one frozen value of
every policy (built at load and reload), and the few other values they need (the job name
prefix, the exports, where archived files go) come alongside. ``orchestrator.wiring`` builds it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.archive.layout import ArchiveDestination
from orchestrator.clock import Clock
from orchestrator.domain.model import DayChange
from orchestrator.domain.policies import Policies
from orchestrator.domain.submit_hold import SubmitHold
from orchestrator.domain.wanted import ExportSpec
from orchestrator.errors import AuthenticationError, StoreError
from orchestrator.logs import get_logger
from orchestrator.store.repository import Store
from orchestrator.twilio import BulkExportsClient

log = get_logger(__name__)


@dataclass
class ApiHealth:
    """Whether the daemon may call Twilio with one set of credentials.

    After a 401/403 every further call would fail the same way and look like an attack, so
    the daemon stops calling Twilio until the configuration is fixed and reloaded. A reload
    gives the new context a new ApiHealth and retires the old one: a pass still running with
    the old credentials stops at its next check, and its 401s say nothing about the new ones.
    """

    auth_failure: str | None = None
    on_change: Callable[[ApiHealth], None] | None = field(default=None, repr=False)
    retired: bool = False

    @property
    def healthy(self) -> bool:
        return self.auth_failure is None and not self.retired

    def record_auth_failure(self, error: AuthenticationError) -> None:
        if self.retired:
            return
        first = self.auth_failure is None
        self.auth_failure = f"Twilio rejected the credentials: {error}"
        if first:
            log.error(
                "twilio.auth_failed",
                status=error.status,
                code=error.code,
                message=error.message,
                action="stopped calling Twilio; fix the credentials and reload (SIGHUP)",
            )
            if self.on_change is not None:
                self.on_change(self)

    def retire(self) -> None:
        """These credentials were replaced by a reload."""
        self.retired = True


@dataclass
class SubmitState:
    """The pause after refused creates (``domain.submit_hold``).

    Kept in memory: after a restart or a reload (often the operator's fix) creates are tried at
    once, and a cause that persists brings the pause back within one refusal.
    """

    hold: SubmitHold = field(default_factory=SubmitHold)


@dataclass(frozen=True)
class WorkflowContext:
    store: Store
    client: BulkExportsClient
    clock: Clock
    policies: Policies
    # Our jobs' friendly names start with it; cleanup never deletes a job without it.
    name_prefix: str
    exports: tuple[ExportSpec, ...]
    # None: archiving is off.
    archive: ArchiveDestination | None
    health: ApiHealth
    # A number in [0, 1) for poll jitter; injected so tests are reproducible.
    random: Callable[[], float]
    submits: SubmitState = field(default_factory=SubmitState)

    def now(self) -> dt.datetime:
        return self.clock.now()


def error_fields(error: BaseException) -> dict[str, object]:
    """How one item's error is logged: what it was, and the traceback unless it is a store
    failure (expected in operation, its message says it all; an outage shows one per item)."""
    fields: dict[str, object] = {"error": str(error), "error_type": type(error).__name__}
    if not isinstance(error, StoreError):
        fields["exc_info"] = error
    return fields


def log_changes(changes: Iterable[DayChange]) -> None:
    """One ``day.status_changed`` event per recorded transition."""
    for change in changes:
        fields = {
            "resource_type": change.resource_type.value,
            "day": change.day.isoformat(),
            "job_sid": change.job_sid,
            "from_status": change.from_status.value if change.from_status else None,
            "to_status": change.to_status.value,
            "observed_by": change.observed_by.value,
        }
        if change.to_status.value == "GaveUp":
            log.error("day.status_changed", **fields)
        else:
            log.info("day.status_changed", **fields)
