"""How the simulator behaves: timings, rendering quirks, content sizes and injected faults.

Everything is a frozen value; the simulator copies the mutable bits (``next N`` fault counters)
into its own runtime state, so one settings object can start several simulators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.clock import Clock, SystemClock
from orchestrator.domain.model import ResourceType

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "simulator-auth-token"
DEFAULT_API_KEY_SID = "SK" + "0" * 32
DEFAULT_API_KEY_SECRET = "simulator-api-key-secret"

DayRef = tuple[ResourceType, dt.date]


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {value}")


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Seeded, reproducible faults. Fractions apply per request (or per day / job); ``*_next``
    counters fire on the next N eligible requests, which makes one fault testable in isolation.
    """

    # Days whose job ends with them Failed (after the internal ErrorDuringRun retries).
    failed_day_fraction: float = 0.0
    # Days that pass through ErrorDuringRun once, then complete.
    error_during_run_fraction: float = 0.0
    # The first job that covers one of these days fails it; a later job completes it.
    fail_first_attempt_days: frozenset[DayRef] = frozenset()
    # Every job that covers one of these days fails it.
    always_fail_days: frozenset[DayRef] = frozenset()
    # These days pass through ErrorDuringRun once in every job, then complete.
    error_during_run_days: frozenset[DayRef] = frozenset()
    # Jobs that stay Submitted forever (they hold no running slot and block nobody).
    stuck_job_fraction: float = 0.0
    stuck_first_jobs: int = 0

    # 429 / 20429 "too many concurrent requests"; the request is never processed.
    rate_limit_fraction: float = 0.0
    rate_limit_next: int = 0
    # None sends no Retry-After header at all.
    retry_after_seconds: float | None = 1.0
    # 500/503 before processing; a seeded half of them is HTML from a "proxy".
    server_error_fraction: float = 0.0
    server_error_next: int = 0
    server_error_html_fraction: float = 0.5
    # The answer is delayed by real seconds AFTER the request was processed, so a client that
    # times out may still have created its job.
    slow_fraction: float = 0.0
    slow_next: int = 0
    slow_seconds: float = 5.0
    # The connection is closed without an answer, before processing the request.
    drop_fraction: float = 0.0
    drop_next: int = 0
    # The request is processed (a job may be created), then the connection is closed.
    drop_after_fraction: float = 0.0
    drop_after_next: int = 0
    # A 2xx JSON answer has its body cut short.
    malformed_json_fraction: float = 0.0
    malformed_json_next: int = 0
    # A day file is served cut short (a complete HTTP answer holding a truncated gzip).
    truncated_file_fraction: float = 0.0
    truncated_file_next: int = 0
    # Requested days allowed per UTC calendar day (Twilio reports about 366); None = unlimited.
    daily_day_quota: int | None = None
    # HTTP faults apply only to these "METHOD template" routes, e.g.
    # "POST /v1/Exports/{ResourceType}/Jobs" (file truncation: "GET /_files/{ResourceType}/{Day}");
    # empty = every /v1 route and every file download.
    http_fault_routes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in (
            "failed_day_fraction",
            "error_during_run_fraction",
            "stuck_job_fraction",
            "rate_limit_fraction",
            "server_error_fraction",
            "server_error_html_fraction",
            "slow_fraction",
            "drop_fraction",
            "drop_after_fraction",
            "malformed_json_fraction",
            "truncated_file_fraction",
        ):
            _check_fraction(name, getattr(self, name))
        for name in (
            "stuck_first_jobs",
            "rate_limit_next",
            "server_error_next",
            "slow_next",
            "drop_next",
            "drop_after_next",
            "malformed_json_next",
            "truncated_file_next",
        ):
            _check_count(name, getattr(self, name))
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        if self.retry_after_seconds is not None and self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")
        if self.daily_day_quota is not None and self.daily_day_quota < 1:
            raise ValueError("daily_day_quota must be at least 1")


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """One simulated Twilio account and how its Bulk Exports service behaves."""

    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = field(default=DEFAULT_AUTH_TOKEN, repr=False)
    # API key SID (SK...) -> secret.
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    seed: int = 0
    clock: Clock = field(default_factory=SystemClock)
    faults: FaultSettings = field(default_factory=FaultSettings)

    # Lifecycle (simulated time).
    max_running_jobs: int = 2
    job_base_seconds: float = 30.0
    day_seconds: tuple[float, float] = (5.0, 20.0)
    retry_delay_seconds: float = 60.0
    max_day_attempts: int = 3
    delete_grace: dt.timedelta = dt.timedelta(minutes=2)
    finished_job_ttl: dt.timedelta = dt.timedelta(days=7)
    file_ttl: dt.timedelta = dt.timedelta(days=7)
    download_url_ttl: dt.timedelta = dt.timedelta(hours=1)

    # Rendering quirks the docs allow; clients must cope with both readings.
    eta_noise: float = 0.3
    # The spec types job_queue_position as a (nullable) string, so 1.0 keeps to it. Below 1.0
    # a seeded share of jobs answers a JSON number instead: off-spec, only for tests of a
    # client's tolerance.
    string_queue_position_fraction: float = 1.0
    upper_case_status_fraction: float = 0.2
    # Fraction of create answers whose ``details`` is an empty list.
    empty_details_on_create_fraction: float = 0.2

    # Day files.
    records_per_day: tuple[int, int] = (5, 50)
    empty_day_fraction: float = 0.1
    empty_days: frozenset[DayRef] = frozenset()
    # When set, every non-empty day file grows to about this many gzip bytes (streamed).
    day_target_bytes: int | None = None
    # None: 6 for record-count files; 0 (stored deflate, still valid gzip) for target-size
    # files, which keeps a 500 MB file to seconds per streaming pass.
    compress_level: int | None = None
    file_chunk_bytes: int = 256 * 1024

    # Paging.
    default_page_size: int = 50
    # Requests kept in the inspection log (counts are never dropped).
    request_log_limit: int = 100_000

    def __post_init__(self) -> None:
        if not self.account_sid.startswith("AC") or len(self.account_sid) != 34:
            raise ValueError("account_sid must be AC followed by 32 characters")
        if not self.auth_token:
            raise ValueError("auth_token must not be empty")
        for sid, secret in self.api_keys.items():
            if not sid.startswith("SK") or not secret:
                raise ValueError("api_keys maps SK... SIDs to non-empty secrets")
        if self.max_running_jobs < 1:
            raise ValueError("max_running_jobs must be at least 1")
        if self.max_day_attempts < 1:
            raise ValueError("max_day_attempts must be at least 1")
        low, high = self.day_seconds
        if low < 0 or high < low:
            raise ValueError("day_seconds must be a (low, high) range of non-negative seconds")
        if self.job_base_seconds < 0 or self.retry_delay_seconds < 0:
            raise ValueError("job_base_seconds and retry_delay_seconds must not be negative")
        lo_rec, hi_rec = self.records_per_day
        if lo_rec < 0 or hi_rec < lo_rec:
            raise ValueError("records_per_day must be a (low, high) range of counts")
        for name in (
            "eta_noise",
            "string_queue_position_fraction",
            "upper_case_status_fraction",
            "empty_details_on_create_fraction",
            "empty_day_fraction",
        ):
            _check_fraction(name, getattr(self, name))
        if self.day_target_bytes is not None and self.day_target_bytes < 1:
            raise ValueError("day_target_bytes must be positive")
        if self.compress_level is not None and not 0 <= self.compress_level <= 9:
            raise ValueError("compress_level must be within 0..9")
        if self.file_chunk_bytes < 1024:
            raise ValueError("file_chunk_bytes must be at least 1024")
        if not 1 <= self.default_page_size <= 1000:
            raise ValueError("default_page_size must be within 1..1000")

    def credentials(self) -> dict[str, str]:
        """Every accepted username -> password pair."""
        return {self.account_sid: self.auth_token, **self.api_keys}
