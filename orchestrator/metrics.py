"""The daemon's Prometheus metrics: one ``CollectorRegistry`` per daemon, small typed methods.

Not the client library's global default registry: every ``Metrics`` owns its registry, so two
daemons (or two tests) in one process never share a counter. Exposition is prometheus-client's
(``render``); nothing here writes the text format by hand.

Two kinds of values:

- counted in process, from start-up: Twilio requests (``observe_request``, called by the client
  once per attempt that got an answer or failed on the wire), retries (``observe_retry``),
  archived files, bytes and failures (``archive_report``), passes run, pass successes and failures
  (``track_pass``);
- read from the database at scrape time (``StoreSnapshot``, set with ``set_snapshot`` just
  before ``render``): days per export and status, days at risk and the time left, the oldest
  Pending day, jobs by state, the day quota used against its budget.

Labels stay low-cardinality: routes are the client's route templates, statuses are HTTP codes
or one of a few words, passes come from ``wiring.PASSES``; never a day or a job SID.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator import __version__
from orchestrator.domain.archiving import FailureKind
from orchestrator.domain.model import JobState
from orchestrator.domain.observed import StoreSnapshot
from orchestrator.logs import get_logger

if TYPE_CHECKING:  # annotations only: the archive workflow is not loaded by this module
    from orchestrator.store.repository import Store
    from orchestrator.workflows.archive import ArchiveReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Twilio answers in tens to hundreds of milliseconds; a slow list or a retry wait takes seconds.
REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# An archive failure's reason: the domain's failure kinds, "gone", or "unknown".
_ARCHIVE_REASONS = frozenset(kind.value for kind in FailureKind)

log = get_logger(__name__)

Pass = Callable[[], Awaitable[None]]


class _SnapshotCollector(Collector):
    """The database's gauges, from the last snapshot set (nothing before the first scrape)."""

    def __init__(self) -> None:
        self.snapshot: StoreSnapshot | None = None
        self.budget = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        if snap is None:
            return
        days = GaugeMetricFamily(
            "orchestrator_days",
            "Recorded days of each export's wanted range, by status.",
            labels=["export", "resource_type", "status"],
        )
        for (export, resource_type, status), count in sorted(snap.export_days.items()):
            days.add_metric([export, resource_type.value, status.value], count)
        yield days
        at_risk = GaugeMetricFamily(
            "orchestrator_days_at_risk",
            "Successful days whose file is on Twilio and not archived yet.",
            labels=["resource_type"],
        )
        expiry = GaugeMetricFamily(
            "orchestrator_day_file_expiry_seconds",
            "Seconds until Twilio removes the earliest unarchived day file (negative: overdue).",
            labels=["resource_type"],
        )
        for resource_type, risk in sorted(snap.at_risk.items()):
            at_risk.add_metric([resource_type.value], risk.count)
            expiry.add_metric([resource_type.value], risk.expiry_seconds(snap.taken_at))
        yield at_risk
        yield expiry
        pending = GaugeMetricFamily(
            "orchestrator_oldest_pending_day_age_seconds",
            "How long the longest-waiting Pending day has been Pending (0: none waits).",
            labels=["resource_type"],
        )
        types = sorted({key[1] for key in snap.export_days} | set(snap.oldest_pending_since))
        for resource_type in types:
            pending.add_metric(
                [resource_type.value], snap.oldest_pending_age_seconds(resource_type)
            )
        yield pending
        jobs = GaugeMetricFamily("orchestrator_jobs", "Jobs by state.", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], snap.jobs.get(state, 0))
        yield jobs
        yield GaugeMetricFamily(
            "orchestrator_quota_days_used",
            "Days requested from Twilio in jobs created this UTC day.",
            value=snap.quota_days_used,
        )
        yield GaugeMetricFamily(
            "orchestrator_quota_days_budget",
            "Days the daemon may request per UTC day ([jobs] daily_day_budget).",
            value=self.budget,
        )


class Metrics:
    """Every metric of one daemon, in its own registry.

    ``passes``: the pass names (``wiring.PASSES``); each gets its success timestamp (0 until
    it first succeeds: the alert rules rely on it) and its failure count from start-up.
    ``wall_time``: seconds since the epoch for the pass timestamps (Prometheus compares them
    with its ``time()``; the daemon's clock may be simulated).
    """

    def __init__(
        self,
        *,
        passes: Iterable[str] = (),
        version: str | None = None,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._wall_time = wall_time
        registry = self.registry
        self._requests = Counter(
            "orchestrator_twilio_requests",
            "Twilio API requests by route template and answer (HTTP status, or transport_error).",
            ["route", "status"],
            registry=registry,
        )
        self._durations = Histogram(
            "orchestrator_twilio_request_duration_seconds",
            "Time from sending a Twilio API request to its answer (or its failure).",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._retries = Counter(
            "orchestrator_twilio_retries",
            "Twilio API requests sent again, by the reason of the failure before.",
            ["reason"],
            registry=registry,
        )
        self._archive_files = Counter(
            "orchestrator_archive_files", "Day files archived since start-up.", registry=registry
        )
        self._archive_bytes = Counter(
            "orchestrator_archive_bytes",
            "Bytes of the day files archived since start-up.",
            registry=registry,
        )
        self._archive_failures = Counter(
            "orchestrator_archive_failures",
            "Days an archive pass gave up on, by reason (expired_url, corrupt, transport, "
            "write, gone, unknown).",
            ["reason"],
            registry=registry,
        )
        self._pass_success = Gauge(
            "orchestrator_pass_last_success_timestamp_seconds",
            "When each pass last finished without an error (0: not yet since start-up).",
            ["pass"],
            registry=registry,
        )
        self._passes = Counter(
            "orchestrator_passes",
            "Passes run to their end or to an error, since start-up (the soak benchmark counts "
            "them).",
            ["pass"],
            registry=registry,
        )
        self._pass_failures = Counter(
            "orchestrator_pass_failures",
            "Passes that ended with an error, since start-up.",
            ["pass"],
            registry=registry,
        )
        self._credentials_ok = Gauge(
            "orchestrator_twilio_credentials_ok",
            "1 unless Twilio rejected the credentials (the daemon stopped calling it then).",
            registry=registry,
        )
        self._leader = Gauge(
            "orchestrator_leader",
            "1 while this daemon leads its account and does the work; 0 while it stands by.",
            registry=registry,
        )
        build = Gauge(
            "orchestrator_build_info",
            "Always 1; the version is the label.",
            ["version"],
            registry=registry,
        )
        build.labels(version=version or __version__).set(1)
        self._credentials_ok.set(1)
        # A standby until it wins the account's lock (``set_leader``).
        self._leader.set(0)
        for name in passes:
            self._pass_success.labels(name).set(0)
            self._pass_failures.labels(name)
            self._passes.labels(name)
        self._snapshot = _SnapshotCollector()
        registry.register(self._snapshot)

    # ------------------------------------------------------------------ Twilio client

    def observe_request(self, route: str, status: str, seconds: float) -> None:
        """One attempt of a Twilio API request ended: its answer's status (or a failure word)."""
        self._requests.labels(route, status).inc()
        self._durations.labels(route).observe(max(0.0, seconds))

    def observe_retry(self, route: str, reason: str) -> None:
        """A Twilio API request is sent again after a failure of ``reason``."""
        self._retries.labels(reason).inc()

    # ------------------------------------------------------------------ passes

    def pass_succeeded(self, name: str, at: float | None = None) -> None:
        self._pass_success.labels(name).set(self._wall_time() if at is None else at)

    def pass_failed(self, name: str) -> None:
        self._pass_failures.labels(name).inc()

    def track_pass(self, name: str, run: Pass) -> Pass:
        """``run``, recording its success or failure (the failure still propagates)."""

        async def tracked() -> None:
            try:
                await run()
            except Exception:
                # Not CancelledError (a BaseException): a pass cut short by the drain is
                # neither a success nor a failure.
                self._passes.labels(name).inc()
                self.pass_failed(name)
                raise
            self._passes.labels(name).inc()
            self.pass_succeeded(name)

        return tracked

    # ------------------------------------------------------------------ archive

    def archived(self, size: int) -> None:
        self._archive_files.inc()
        self._archive_bytes.inc(max(0, size))

    def archive_failed(self, reason: str) -> None:
        known = reason if reason in _ARCHIVE_REASONS or reason == "gone" else "unknown"
        self._archive_failures.labels(known).inc()

    async def archive_report(self, report: ArchiveReport, store: Store) -> None:
        """Count one archive pass's outcomes; sizes and reasons are read back from the store."""
        for key in report.stored:
            day = await store.get_day(key)
            self.archived(day.archive.size if day is not None and day.archive else 0)
        for key in report.failed:
            attempts = await store.archive_attempts(key)
            error = attempts.error if attempts is not None else None
            # The workflow writes "<kind>: <message>".
            self.archive_failed((error or "").split(":", 1)[0])
        for _ in report.gone:
            self.archive_failed("gone")

    # ------------------------------------------------------------------ scrape

    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)

    def set_credentials_ok(self, ok: bool) -> None:
        self._credentials_ok.set(1 if ok else 0)

    def set_snapshot(self, snapshot: StoreSnapshot, *, budget: int) -> None:
        """The database's gauges for the next ``render``."""
        self._snapshot.snapshot = snapshot
        self._snapshot.budget = budget

    def clear_snapshot(self) -> None:
        """Leave the database's gauges out of the next ``render`` (the database failed)."""
        self._snapshot.snapshot = None

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
