"""TOML -> frozen, validated settings. Every config error is one line naming the file and the key.

``load_settings(path, environ=...)`` reads the file (tomllib), validates it with pydantic (frozen
models, unknown keys are errors), then resolves the Twilio secret from the environment or a file.
Any problem raises ``ConfigError`` whose message reads ``<file>:<dotted.key>: <what is wrong>``,
e.g. ``config.toml:exports[1].end_day: '2024-02-30' is not a real calendar date``.

Rules the file format documents (see config.example.toml):

- Relative paths in the file (``state.directory``, ``archive.directory``) are relative to the
  directory holding the configuration file.
- ``state.directory`` defaults to the first entry of ``$STATE_DIRECTORY`` (set by systemd's
  ``StateDirectory=``), else ``/var/lib/orchestrator``.
- ``jobs.name_prefix`` defaults to ``"orch-"`` + the first 8 hex digits of
  ``sha256(account_sid + "\\n" + state directory)``: stable across restarts, different for two
  installs sharing an account, and computed without I/O.
- Secret files (``auth_token_file``, ``api_key_secret_file``): an absolute path is read as is; a
  relative path is read from ``$CREDENTIALS_DIRECTORY`` when that is set (systemd's
  ``LoadCredential=``), else from the configuration file's directory. Never both: when systemd
  hands credentials over, a stray file next to the config cannot shadow them.
- Secrets never appear in messages or reprs: the Twilio secret lives in a hidden slot of
  ``orchestrator.twilio.Credentials``, the database URL is a ``SecretStr``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
import re
import string
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.archive.layout import DEFAULT_TEMPLATE as DEFAULT_PATH_TEMPLATE
from orchestrator.archive.layout import (
    ArchiveDestination,
    ArchiveUrl,
    archive_path,
    parse_archive_url,
)
from orchestrator.domain.archiving import RetryPolicy
from orchestrator.domain.cleanup import CleanupPolicy
from orchestrator.domain.leadership import HaPolicy
from orchestrator.domain.model import ResourceType, parse_day
from orchestrator.domain.plan import PlanLimits
from orchestrator.domain.policies import AmbiguousCreatePolicy, Policies, ResubmitPolicy
from orchestrator.domain.polling import PollPolicy
from orchestrator.domain.wanted import ExportSpec, FixedRange, LastDays, OpenEnded, Period
from orchestrator.errors import ConfigError, InvalidInput
from orchestrator.twilio.credentials import ACCOUNT_SID, API_KEY_SID, Credentials
from orchestrator.twilio.settings import DEFAULT_BASE_URL, check_base_url

DEFAULT_STATE_DIRECTORY = Path("/var/lib/orchestrator")
# The policies' own defaults: the sections below map keys onto them without restating one.
_POLL = PollPolicy()
_PLAN = PlanLimits()
_RESUBMIT = ResubmitPolicy()
_AMBIGUOUS = AmbiguousCreatePolicy()
# AmbiguousCreatePolicy's field -> its [jobs] key.
_AMBIGUOUS_KEYS = {
    "lookups": "ambiguous_lookups",
    "first_lookup_after": "ambiguous_first_lookup",
    "max_lookup_after": "ambiguous_max_lookup",
    "max_creates_per_day": "max_ambiguous_creates_per_day",
}
_CLEANUP = CleanupPolicy()
_HA = HaPolicy()
# A secret file larger than this is not a token file (and we never read a huge file into memory).
_MAX_SECRET_FILE_BYTES = 4096
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOOKS_LIKE_SECRET = re.compile(r"^[0-9a-fA-F]{32}$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TEMPLATE_FIELDS = frozenset({"resource_type", "yyyy", "mm", "dd", "day"})
_DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
# The day a path template is tried on at load (a two-digit month and day, like most days).
_SAMPLE_DAY = dt.date(2024, 11, 30)
# A configuration file larger than this is refused unread (``--config /dev/zero``).
MAX_CONFIG_BYTES = 1024 * 1024


class _KeyedError(ValueError):
    """A validation problem of a key below the model that raises it (a model validator's loc
    stops at the model; the converter appends ``key``)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(message)

    @classmethod
    def of(cls, error: InvalidInput, keys: Mapping[str, str] | None = None) -> _KeyedError:
        """A policy's ``InvalidInput``, under the key its field maps to (``keys``, else itself)."""
        key = (keys or {}).get(error.field, error.field)
        return cls(key, str(error).removeprefix(f"{error.field}: "))


# ---------------------------------------------------------------------------
# Value parsers (raise ValueError; pydantic attaches the key)


def parse_duration(raw: object) -> dt.timedelta:
    """``"30s"``, ``"15m"``, ``"24h"``, ``"7d"`` or combinations in that order (``"1h30m"``).

    Anything else, or a value no ``timedelta`` can hold (``"1000000000d"``, a number with
    thousands of digits), is a ``ValueError`` naming the value: never an OverflowError.
    """
    if isinstance(raw, dt.timedelta):
        return raw
    shown = _shown_duration(raw)
    match = _DURATION.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None or not any(match.groups()):
        raise ValueError(f"{shown} is not a duration like '30s', '15m', '24h', '7d' or '1h30m'")
    try:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (OverflowError, ValueError):
        # int() refuses more than 4,300 digits; timedelta more than 999,999,999 days.
        raise ValueError(f"{shown} is far too long a duration") from None


def _shown_duration(raw: object) -> str:
    if isinstance(raw, str | int | float):
        shown = repr(raw)
        return shown if len(shown) <= 40 else shown[:37] + "..."
    return type(raw).__name__


def format_duration(value: dt.timedelta) -> str:
    """``dt.timedelta(days=30)`` -> ``"30d"``: the inverse of ``parse_duration`` (whole seconds)."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _duration(*, maximum: dt.timedelta, positive: bool) -> Callable[[object], dt.timedelta]:
    """A duration key: parsed, then kept above zero (``positive``, else at least zero) and at most
    ``maximum``. The bounds (documented in config.example.toml) keep every derived time (``now +
    delay``, a scheduler interval in seconds) far from datetime's limits."""

    def check(raw: object) -> dt.timedelta:
        value = parse_duration(raw)
        if positive and value <= dt.timedelta(0):
            raise ValueError("must be longer than zero")
        if value < dt.timedelta(0):
            raise ValueError("must not be negative")
        if value > maximum:
            raise ValueError(
                f"{_shown_duration(raw)} is longer than the maximum, {format_duration(maximum)}"
            )
        return value

    return check


def _to_day(raw: object) -> dt.date:
    # TOML dates arrive as date, strings as str; a TOML date-time is a date subclass: refuse it.
    if isinstance(raw, dt.datetime):
        raise ValueError(f"{raw.isoformat()} is a date-time; write a day like 2024-01-31")
    if isinstance(raw, dt.date):
        return raw
    try:
        return parse_day(raw)
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix(f"{exc.field}: ")) from None


def _to_resource_type(raw: object) -> ResourceType:
    try:
        return ResourceType.parse(raw)
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix(f"{exc.field}: ")) from None


def _sid_checker(kind: str, pattern: re.Pattern[str]) -> Any:
    def check(value: str) -> str:
        # Never echo the value: a secret pasted into the wrong key must not reach a log.
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {kind!r} followed by 32 hex digits")
        return value

    return check


def _check_env_name(value: str) -> str:
    if _LOOKS_LIKE_SECRET.fullmatch(value):
        raise ValueError("must name an environment variable; it looks like the secret itself")
    if not _ENV_NAME.fullmatch(value):
        raise ValueError("must be an environment variable name (letters, digits, '_')")
    return value


def _check_file_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# Upper bounds of durations (config.example.toml documents them): a request or a download
# stall longer than an hour is a mistake; any other duration longer than 30 days is one too.
MAX_TIMEOUT = dt.timedelta(hours=1)
MAX_DURATION = dt.timedelta(days=30)
Duration = Annotated[dt.timedelta, BeforeValidator(_duration(maximum=MAX_DURATION, positive=False))]
PositiveDuration = Annotated[
    dt.timedelta, BeforeValidator(_duration(maximum=MAX_DURATION, positive=True))
]
Timeout = Annotated[dt.timedelta, BeforeValidator(_duration(maximum=MAX_TIMEOUT, positive=True))]
DayValue = Annotated[dt.date, BeforeValidator(_to_day)]
EnvName = Annotated[StrictStr, AfterValidator(_check_env_name)]
FileName = Annotated[StrictStr, AfterValidator(_check_file_name)]
# TOML has inf and nan: every float key is finite (allow_inf_nan=False) and bounded.
MAX_REQUESTS_PER_SECOND = 1000.0
Rate = Annotated[float, Field(strict=True, gt=0, le=MAX_REQUESTS_PER_SECOND, allow_inf_nan=False)]


class _Frozen(BaseModel):
    # hide_input_in_errors: a str(ValidationError) never shows values (a secret might be one).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# ---------------------------------------------------------------------------
# Sections


class TwilioSettings(_Frozen):
    """[twilio]: the account, where its secret comes from, and how hard to use the API."""

    account_sid: Annotated[StrictStr, AfterValidator(_sid_checker("AC", ACCOUNT_SID))]
    auth_token_env: EnvName | None = None
    auth_token_file: FileName | None = None
    api_key_sid: Annotated[StrictStr, AfterValidator(_sid_checker("SK", API_KEY_SID))] | None = None
    api_key_secret_env: EnvName | None = None
    api_key_secret_file: FileName | None = None
    base_url: StrictStr = DEFAULT_BASE_URL
    requests_per_second: Rate = 10.0
    max_concurrent_requests: Annotated[StrictInt, Field(ge=1, le=100)] = 4
    request_timeout: Timeout = dt.timedelta(seconds=30)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # The client's own check (twilio/ owns it); it never echoes the value.
        try:
            return check_base_url(value)
        except InvalidInput as exc:
            raise ValueError(str(exc).removeprefix(f"{exc.field}: ")) from None

    @model_validator(mode="after")
    def _one_auth_method(self) -> TwilioSettings:
        token = (self.auth_token_env, self.auth_token_file)
        secret = (self.api_key_secret_env, self.api_key_secret_file)
        if all(v is not None for v in token):
            raise _KeyedError("auth_token_file", "give auth_token_env or auth_token_file, not both")
        if all(v is not None for v in secret):
            raise _KeyedError(
                "api_key_secret_file", "give api_key_secret_env or api_key_secret_file, not both"
            )
        has_token = any(v is not None for v in token)
        has_secret = any(v is not None for v in secret)
        if self.api_key_sid is None and has_secret:
            raise _KeyedError("api_key_sid", "an API key secret is given but no api_key_sid")
        if self.api_key_sid is not None and not has_secret:
            raise _KeyedError(
                "api_key_secret_env", "api_key_sid needs api_key_secret_env or api_key_secret_file"
            )
        if has_token and self.api_key_sid is not None:
            raise _KeyedError(
                "api_key_sid",
                "give one auth method: an auth token (auth_token_env/auth_token_file) "
                "or an API key (api_key_sid + secret), not both",
            )
        if not has_token and self.api_key_sid is None:
            raise _KeyedError(
                "auth_token_env",
                "no credentials: set auth_token_env or auth_token_file "
                "(or api_key_sid with api_key_secret_env or api_key_secret_file)",
            )
        return self


class StateSettings(_Frozen):
    """[state]: where the daemon keeps its database."""

    directory: Path = DEFAULT_STATE_DIRECTORY
    # May carry a password (PostgreSQL): a secret like the others.
    database_url: SecretStr = SecretStr(
        f"sqlite+aiosqlite:///{DEFAULT_STATE_DIRECTORY}/orchestrator.sqlite"
    )

    @field_validator("database_url", mode="before")
    @classmethod
    def _check_database_url(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        scheme = raw.partition("://")[0]
        if "://" not in raw or scheme not in _DATABASE_SCHEMES:
            raise ValueError(
                f"must start with one of {', '.join(s + '://' for s in _DATABASE_SCHEMES)}"
            )
        return value


class JobsSettings(_Frozen):
    """[jobs]: how jobs are named and how many Twilio may be asked for."""

    name_prefix: StrictStr
    max_days_per_job: Annotated[StrictInt, Field(ge=1, le=366)] = _PLAN.max_days_per_job
    max_live_jobs: Annotated[StrictInt, Field(ge=1)] = _PLAN.max_live_jobs
    max_resubmits: Annotated[StrictInt, Field(ge=0)] = _RESUBMIT.max_resubmits
    resubmit_delay: Duration = _RESUBMIT.delay
    daily_day_budget: Annotated[StrictInt, Field(ge=1)] = _PLAN.daily_day_budget
    stale_after: PositiveDuration = _CLEANUP.stale_after
    # A create whose answer was unclear: how often to look for it, how many a day may have.
    ambiguous_lookups: Annotated[StrictInt, Field(ge=1, le=100)] = _AMBIGUOUS.lookups
    ambiguous_first_lookup: PositiveDuration = _AMBIGUOUS.first_lookup_after
    ambiguous_max_lookup: PositiveDuration = _AMBIGUOUS.max_lookup_after
    max_ambiguous_creates_per_day: Annotated[StrictInt, Field(ge=1, le=100)] = (
        _AMBIGUOUS.max_creates_per_day
    )

    @field_validator("name_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX.fullmatch(value) or value.endswith("-"):
            raise ValueError(
                f"{value!r} must be 1-32 characters of letters, digits, '_', '.', '-', "
                "starting with a letter or digit and not ending with '-'"
            )
        return value

    @model_validator(mode="after")
    def _policies_accept(self) -> JobsSettings:
        # The policies validate their own values; their field names are this section's keys.
        try:
            self.plan_limits()
            self.resubmit_policy()
        except InvalidInput as exc:
            raise _KeyedError.of(exc) from None
        try:
            self.ambiguous_policy()
        except InvalidInput as exc:
            raise _KeyedError.of(exc, _AMBIGUOUS_KEYS) from None
        return self

    def plan_limits(self) -> PlanLimits:
        return PlanLimits(
            max_days_per_job=self.max_days_per_job,
            max_live_jobs=self.max_live_jobs,
            daily_day_budget=self.daily_day_budget,
        )

    def resubmit_policy(self) -> ResubmitPolicy:
        return ResubmitPolicy(max_resubmits=self.max_resubmits, delay=self.resubmit_delay)

    def ambiguous_policy(self) -> AmbiguousCreatePolicy:
        return AmbiguousCreatePolicy(
            lookups=self.ambiguous_lookups,
            first_lookup_after=self.ambiguous_first_lookup,
            max_lookup_after=self.ambiguous_max_lookup,
            max_creates_per_day=self.max_ambiguous_creates_per_day,
        )


class PollingSettings(_Frozen):
    """[polling]: backoff between polls of one job."""

    initial_delay: PositiveDuration = _POLL.initial
    max_delay: PositiveDuration = _POLL.max
    multiplier: Annotated[float, Field(strict=True, ge=1, le=10, allow_inf_nan=False)] = (
        _POLL.multiplier
    )
    jitter: Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)] = _POLL.jitter
    max_eta_wait: PositiveDuration = _POLL.max_eta_wait

    @model_validator(mode="after")
    def _ordered(self) -> PollingSettings:
        # PollPolicy owns the rules between the values (max_delay >= initial_delay, ...).
        try:
            self.poll_policy()
        except InvalidInput as exc:
            raise _KeyedError.of(exc) from None
        return self

    def poll_policy(self) -> PollPolicy:
        return PollPolicy(
            initial=self.initial_delay,
            max=self.max_delay,
            multiplier=self.multiplier,
            jitter=self.jitter,
            max_eta_wait=self.max_eta_wait,
        )


class CleanupSettings(_Frozen):
    """[cleanup]: which jobs to delete and how often to look."""

    interval: PositiveDuration = dt.timedelta(minutes=10)
    # Looking for orphans means listing every job on Twilio: at start-up, then this often.
    orphan_interval: PositiveDuration = dt.timedelta(hours=6)
    delete_finished_jobs: StrictBool = _CLEANUP.delete_finished
    delete_orphans: StrictBool = _CLEANUP.delete_orphans


# [archive] keys naming a secret file, per URL scheme -> the obstore option each one sets.
_ARCHIVE_SECRET_FILES: dict[str, dict[str, str]] = {
    "s3": {
        "access_key_id_file": "access_key_id",
        "secret_access_key_file": "secret_access_key",
        "session_token_file": "session_token",
    },
    "gs": {"service_account_file": "service_account_key"},
    "az": {"account_key_file": "account_key"},
}
# A GCS service-account key is a JSON document, larger than a token.
_MAX_KEY_FILE_BYTES = 64 * 1024


class ArchiveSettings(_Frozen):
    """[archive]: where day files are kept; absent = archiving off.

    Exactly one of ``directory`` (a local directory) and ``url`` (``s3://bucket/prefix``,
    ``gs://bucket/prefix``, ``az://container/prefix`` or ``file:///directory``; a file URL is
    read as ``directory``). Object storage takes its credentials from the cloud's standard chain
    (environment, profiles, instance or workload identity) unless ``*_file`` keys name files
    holding them; those are read when the configuration is loaded, kept in hidden slots, and
    never shown in a message or a repr.
    """

    directory: Path | None = None
    url: StrictStr | None = None
    # S3-compatible services (MinIO, Ceph, R2, Wasabi), a GCS or Azure emulator.
    endpoint: StrictStr | None = None
    region: StrictStr | None = None
    # Plain http to ``endpoint`` (a loopback test server); https otherwise.
    allow_http: StrictBool = False
    access_key_id_file: FileName | None = None
    secret_access_key_file: FileName | None = None
    session_token_file: FileName | None = None
    service_account_file: FileName | None = None
    account_name: StrictStr | None = None
    account_key_file: FileName | None = None
    path_template: StrictStr = DEFAULT_PATH_TEMPLATE
    max_concurrent_downloads: Annotated[StrictInt, Field(ge=1, le=32)] = 2
    download_read_timeout: Timeout = dt.timedelta(seconds=60)
    _options: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _one_location(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        has_dir, has_url = data.get("directory") is not None, data.get("url") is not None
        if has_dir and has_url:
            raise _KeyedError("url", "give directory or url, not both")
        if not has_dir and not has_url:
            raise _KeyedError(
                "directory",
                "is required (or url = 's3://bucket/prefix', 'gs://...', 'az://...', "
                "'file:///path')",
            )
        url = data.get("url")
        if isinstance(url, str) and url.lower().startswith("file:"):
            location = _parse_archive_url(url)
            data = {k: v for k, v in data.items() if k != "url"}
            data["directory"] = str(location.directory)
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _parse_archive_url(value).url

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None or parts.query:
            raise ValueError("must not carry credentials or a query")
        return value.rstrip("/")

    @field_validator("path_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid template: {exc}") from None
        unknown = fields - _TEMPLATE_FIELDS
        if unknown:
            allowed = ", ".join("{" + f + "}" for f in sorted(_TEMPLATE_FIELDS))
            raise ValueError(f"unknown field {{{sorted(unknown)[0]}}}; allowed: {allowed}")
        if "resource_type" not in fields or not ("day" in fields or {"yyyy", "mm", "dd"} <= fields):
            raise ValueError("must contain {resource_type} and {day} (or {yyyy}, {mm} and {dd})")
        sample = value.format(
            resource_type="Calls", yyyy="2024", mm="01", dd="31", day="2024-01-31"
        )
        path = Path(sample)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the archive directory")
        # What the archive pass will do with it, by the very function it uses: a template that
        # renders here renders there (no conversion or format spec, no hidden or empty part).
        for resource_type in ResourceType:
            try:
                archive_path(Path("/archive"), value, resource_type, _SAMPLE_DAY)
            except InvalidInput as exc:
                detail = str(exc).removeprefix(f"{exc.field}: ")
                raise ValueError(
                    f"{value!r} cannot be used for a {resource_type.value} file of "
                    f"{_SAMPLE_DAY.isoformat()}: {detail}"
                ) from None
        return value

    @model_validator(mode="after")
    def _object_options(self, info: ValidationInfo) -> ArchiveSettings:
        scheme = self.scheme
        given = {
            key
            for keys in _ARCHIVE_SECRET_FILES.values()
            for key in keys
            if getattr(self, key) is not None
        }
        allowed = set(_ARCHIVE_SECRET_FILES.get(scheme, {}))
        extra = sorted(given - allowed)
        if extra:
            raise _KeyedError(extra[0], f"does not apply to {scheme}:// archives")
        if scheme == "file":
            for key in ("endpoint", "region", "account_name"):
                if getattr(self, key) is not None:
                    raise _KeyedError(key, "applies to object storage only (url = 's3://...')")
            if self.allow_http:
                raise _KeyedError("allow_http", "applies to object storage only")
            return self
        if self.region is not None and scheme != "s3":
            raise _KeyedError("region", f"applies to s3:// only, not {scheme}://")
        if self.account_name is not None and scheme != "az":
            raise _KeyedError("account_name", f"applies to az:// only, not {scheme}://")
        if self.allow_http and self.endpoint is None:
            raise _KeyedError("allow_http", "needs an endpoint (plain http to the cloud: never)")
        if self.endpoint is not None and self.endpoint.startswith("http:") and not self.allow_http:
            raise _KeyedError("endpoint", "is plain http: set allow_http = true to allow it")
        if scheme == "s3" and (self.access_key_id_file is None) != (
            self.secret_access_key_file is None
        ):
            raise _KeyedError(
                "secret_access_key_file"
                if self.secret_access_key_file is None
                else "access_key_id_file",
                "give access_key_id_file and secret_access_key_file together",
            )
        if (
            scheme == "s3"
            and self.session_token_file is not None
            and not given - {"session_token_file"}
        ):
            raise _KeyedError("session_token_file", "needs access_key_id_file too")
        if not isinstance(info.context, dict):
            # Settings(...) passing the loaded section on: its secrets were read at load.
            return self
        environ: Mapping[str, str] = info.context.get("environ", os.environ)
        base_dir: Path = info.context.get("base_dir", Path("."))
        options: dict[str, SecretStr] = {}
        for key, option in _ARCHIVE_SECRET_FILES[scheme].items():
            name = getattr(self, key)
            if name is not None:
                options[option] = SecretStr(
                    _read_archive_secret(key, name, environ=environ, base_dir=base_dir)
                )
        if self.account_name is not None:
            options["account_name"] = SecretStr(self.account_name)
        self._options = options
        return self

    @property
    def scheme(self) -> str:
        """``file`` for a local archive, else the URL's scheme (``s3``, ``gs``, ``az``)."""
        return "file" if self.url is None else self.url.partition("://")[0]

    def object_options(self) -> dict[str, str]:
        """The obstore options the ``*_file`` keys (and ``account_name``) give; secrets."""
        return {key: value.get_secret_value() for key, value in self._options.items()}

    def secrets(self) -> list[str]:
        """The secret values read from ``*_file`` keys (for the log redactor)."""
        return [
            value.get_secret_value()
            for key, value in self._options.items()
            if key != "account_name"
        ]

    def describe(self) -> str:
        """Where files go, for a report line (no secret)."""
        return self.url if self.url is not None else str(self.directory)

    def destination(self) -> ArchiveDestination:
        """What the archive pass needs of this section (wiring adds the target)."""
        return ArchiveDestination(
            directory=self.directory,
            path_template=self.path_template,
            max_concurrent_downloads=self.max_concurrent_downloads,
        )


def _parse_archive_url(raw: str) -> ArchiveUrl:
    try:
        return parse_archive_url(raw)
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix(f"{exc.field}: ")) from None


def _read_archive_secret(key: str, name: str, *, environ: Mapping[str, str], base_dir: Path) -> str:
    """The secret in the file ``key`` names (a JSON key file may span lines)."""
    if key != "service_account_file":
        secret, _origin, _key = _read_secret(
            key, None, key, name, environ=environ, base_dir=base_dir
        )
        return secret
    path = secret_file_path(name, environ=environ, base_dir=base_dir)
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise _KeyedError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise _KeyedError(key, f"{path} is larger than {_MAX_KEY_FILE_BYTES} bytes")
    try:
        document = json.loads(data)
    except ValueError:
        raise _KeyedError(key, f"{path} is not a JSON service-account key") from None
    if not isinstance(document, dict) or "private_key" not in document:
        raise _KeyedError(key, f"{path} is not a service-account key (no private_key)")
    return data.decode("utf-8")


class LoggingSettings(_Frozen):
    """[logging]"""

    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["auto", "json", "console", "journal"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class HttpSettings(_Frozen):
    """[http]: the read-only endpoint (/metrics, /livez, /readyz, the status page)."""

    # host:port ("[::1]:9464" for IPv6); "" turns the endpoint off. Loopback by default: the
    # status page names the exports and jobs, so expose it only behind a firewall.
    listen: StrictStr = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        if value:
            split_listen(value)
        return value

    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when the endpoint is off."""
        return split_listen(self.listen) if self.listen else None


class HaSettings(_Frozen):
    """[ha]: two instances for high availability (``domain.leadership``)."""

    # How often a standby tries for the lock; the leader's lease (a leader that cannot confirm
    # its lock for this long stops acting; on PostgreSQL a standby may take over after it).
    takeover_interval: PositiveDuration = _HA.takeover_interval
    lease: PositiveDuration = _HA.lease

    @model_validator(mode="after")
    def _bounded(self) -> HaSettings:
        try:
            self.ha_policy()
        except InvalidInput as exc:
            raise _KeyedError.of(exc) from None
        return self

    def ha_policy(self) -> HaPolicy:
        return HaPolicy(takeover_interval=self.takeover_interval, lease=self.lease)


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'{value!r} must be host:port (port 0-65535), or "" for off')
    return host, int(port)


class ExportSettings(_Frozen):
    """One [[exports]] entry: a name, a resource type and exactly one period."""

    name: StrictStr
    resource_type: Annotated[ResourceType, BeforeValidator(_to_resource_type)]
    start_day: DayValue | None = None
    end_day: DayValue | None = None
    last_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _EXPORT_NAME.fullmatch(value):
            raise ValueError(f"{value!r} must be 1-64 characters of letters, digits, '_', '.', '-'")
        return value

    @model_validator(mode="after")
    def _one_period(self) -> ExportSettings:
        if self.last_days is not None and (self.start_day or self.end_day):
            raise _KeyedError(
                "last_days",
                "give either start_day (with an optional end_day) or last_days, not both",
            )
        if self.last_days is None and self.start_day is None:
            key = "start_day"
            raise _KeyedError(
                key,
                "end_day needs a start_day"
                if self.end_day
                else "is required (or give last_days = N instead)",
            )
        if self.start_day and self.end_day and self.end_day < self.start_day:
            raise _KeyedError("end_day", f"{self.end_day} is before start_day {self.start_day}")
        return self

    def to_spec(self) -> ExportSpec:
        """The domain value of this entry."""
        period: Period
        if self.last_days is not None:
            period = LastDays(self.last_days)
        elif self.end_day is not None:
            assert self.start_day is not None  # checked by _one_period
            period = FixedRange(self.start_day, self.end_day)
        else:
            assert self.start_day is not None  # checked by _one_period
            period = OpenEnded(self.start_day)
        return ExportSpec(name=self.name, resource_type=self.resource_type, period=period)


class ConfigFile(_Frozen):
    """The configuration file's shape, with derived defaults filled in; no secrets resolved."""

    twilio: TwilioSettings
    state: StateSettings = StateSettings()
    jobs: JobsSettings
    polling: PollingSettings = PollingSettings()
    cleanup: CleanupSettings = CleanupSettings()
    archive: ArchiveSettings | None = None
    logging: LoggingSettings = LoggingSettings()
    http: HttpSettings = HttpSettings()
    ha: HaSettings = HaSettings()
    exports: tuple[ExportSettings, ...]

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        # Defaults that depend on the environment, the file's location or other keys. Pure: the
        # environment and the base directory come in the validation context.
        if not isinstance(data, dict) or not isinstance(info.context, dict):
            return data
        environ: Mapping[str, str] = info.context.get("environ", {})
        base_dir: Path = info.context.get("base_dir", Path("."))
        data = dict(data)
        state = data.get("state", {})
        if isinstance(state, dict):
            state = dict(state)
            directory = state.get("directory")
            if directory is None:
                from_systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
                directory = from_systemd or str(DEFAULT_STATE_DIRECTORY)
            if isinstance(directory, str):
                directory = str(base_dir / directory)
                state["directory"] = directory
                state.setdefault(
                    "database_url", f"sqlite+aiosqlite:///{directory}/orchestrator.sqlite"
                )
            data["state"] = state
            jobs = data.get("jobs", {})
            twilio = data.get("twilio")
            account_sid = twilio.get("account_sid") if isinstance(twilio, dict) else None
            if isinstance(jobs, dict) and isinstance(directory, str):
                jobs = dict(jobs)
                if isinstance(account_sid, str):
                    jobs.setdefault("name_prefix", default_name_prefix(account_sid, directory))
                data["jobs"] = jobs
        archive = data.get("archive")
        if isinstance(archive, dict) and isinstance(archive.get("directory"), str):
            data["archive"] = {**archive, "directory": str(base_dir / archive["directory"])}
        return data

    @field_validator("exports")
    @classmethod
    def _some_exports(cls, value: tuple[ExportSettings, ...]) -> tuple[ExportSettings, ...]:
        if not value:
            raise ValueError("at least one [[exports]] table is required")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ConfigFile:
        # Case-insensitive: "calls" and "Calls" would read as one export in logs.
        first: dict[str, int] = {}
        for i, export in enumerate(self.exports):
            folded = export.name.casefold()
            if folded in first:
                j = first[folded]
                raise _KeyedError(
                    f"exports[{i}].name",
                    f"{export.name!r} is already the name of exports[{j}] "
                    f"({self.exports[j].name!r}); export names must be unique",
                )
            first[folded] = i
        return self


class Settings(ConfigFile):
    """The whole validated configuration, secrets resolved. Build it with ``load_settings``.

    ``policies`` is built once, when the settings are (at load and at reload), and is what
    workflows are given; ``credentials`` is the client's own ``Credentials`` value.
    """

    # Credentials is a plain class (twilio/ owns it); pydantic only checks its type.
    model_config = ConfigDict(arbitrary_types_allowed=True)

    source: str
    credentials: Credentials
    _policies: Policies = PrivateAttr()
    _export_specs: tuple[ExportSpec, ...] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._export_specs = tuple(export.to_spec() for export in self.exports)
        self._policies = Policies(
            poll=self.polling.poll_policy(),
            plan=self.jobs.plan_limits(),
            cleanup=CleanupPolicy(
                stale_after=self.jobs.stale_after,
                delete_finished=self.cleanup.delete_finished_jobs,
                delete_orphans=self.cleanup.delete_orphans,
                archive_enabled=self.archive is not None,
            ),
            resubmit=self.jobs.resubmit_policy(),
            archive_retry=RetryPolicy(),
            ambiguous=self.jobs.ambiguous_policy(),
        )

    @property
    def policies(self) -> Policies:
        """Every policy of this configuration, as one frozen value."""
        return self._policies

    def export_specs(self) -> tuple[ExportSpec, ...]:
        return self._export_specs

    def archive_destination(self) -> ArchiveDestination | None:
        """Where day files go; None when archiving is off."""
        return self.archive.destination() if self.archive is not None else None

    def plan_limits(self) -> PlanLimits:
        return self._policies.plan

    def poll_policy(self) -> PollPolicy:
        return self.polling.poll_policy()

    def cleanup_policy(self) -> CleanupPolicy:
        return self._policies.cleanup


# ---------------------------------------------------------------------------
# Loading


def default_name_prefix(account_sid: str, state_directory: str) -> str:
    """``orch-`` + 8 hex digits of sha256(account SID, newline, state directory)."""
    digest = hashlib.sha256(f"{account_sid}\n{state_directory}".encode()).hexdigest()
    return f"orch-{digest[:8]}"


def secret_file_path(raw: str, *, environ: Mapping[str, str], base_dir: Path) -> Path:
    """Where a ``*_file`` key points: absolute as is; relative in $CREDENTIALS_DIRECTORY when set,
    else in the configuration file's directory."""
    path = Path(raw)
    if path.is_absolute():
        return path
    credentials_directory = environ.get("CREDENTIALS_DIRECTORY")
    if credentials_directory:
        return Path(credentials_directory) / path
    return base_dir / path


def _read_secret(
    env_key: str,
    env_name: str | None,
    file_key: str,
    file_name: str | None,
    *,
    environ: Mapping[str, str],
    base_dir: Path,
) -> tuple[str, str, str]:
    """(secret, where it came from, the key that named it)."""
    if env_name is not None:
        value = environ.get(env_name)
        if value is None:
            raise _KeyedError(env_key, f"environment variable {env_name} is not set")
        if not value.strip():
            raise _KeyedError(env_key, f"environment variable {env_name} is empty")
        return value.strip(), f"environment variable {env_name}", env_key
    assert file_name is not None  # TwilioSettings checked one of the two is given
    path = secret_file_path(file_name, environ=environ, base_dir=base_dir)
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise _KeyedError(file_key, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise _KeyedError(file_key, f"{path} is larger than {_MAX_SECRET_FILE_BYTES} bytes")
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _KeyedError(file_key, f"{path} is not UTF-8 text") from None
    if not value:
        raise _KeyedError(file_key, f"{path} is empty")
    if any(ch.isspace() for ch in value):
        raise _KeyedError(file_key, f"{path} must hold the secret alone on one line")
    return value, f"file {path}", file_key


def _resolve_credentials(
    twilio: TwilioSettings, *, environ: Mapping[str, str], base_dir: Path
) -> Credentials:
    """Read the secret the [twilio] section points to. Raises ``_KeyedError`` (key in [twilio])."""
    if twilio.api_key_sid is not None:
        secret, origin, key = _read_secret(
            "api_key_secret_env",
            twilio.api_key_secret_env,
            "api_key_secret_file",
            twilio.api_key_secret_file,
            environ=environ,
            base_dir=base_dir,
        )
        try:
            return Credentials.from_api_key(
                twilio.account_sid, twilio.api_key_sid, secret, origin=origin
            )
        except InvalidInput as exc:
            raise _KeyedError.of(exc, {exc.field: key}) from None
    secret, origin, key = _read_secret(
        "auth_token_env",
        twilio.auth_token_env,
        "auth_token_file",
        twilio.auth_token_file,
        environ=environ,
        base_dir=base_dir,
    )
    try:
        return Credentials.from_auth_token(twilio.account_sid, secret, origin=origin)
    except InvalidInput as exc:
        raise _KeyedError.of(exc, {exc.field: key}) from None


def _dotted(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where ``loc`` points (for "did you mean" hints)."""
    if len(loc) == 1:
        return list(ConfigFile.model_fields)
    sections: dict[str, type[BaseModel]] = {
        "twilio": TwilioSettings,
        "state": StateSettings,
        "jobs": JobsSettings,
        "polling": PollingSettings,
        "cleanup": CleanupSettings,
        "archive": ArchiveSettings,
        "logging": LoggingSettings,
        "http": HttpSettings,
        "ha": HaSettings,
        "exports": ExportSettings,
    }
    model = sections.get(str(loc[0]))
    return list(model.model_fields) if model is not None else []


def _shown(value: object) -> str | None:
    """A short repr of a scalar input, else None."""
    if isinstance(value, bool | int | float | str | dt.date):
        shown = repr(value)
        return shown if len(shown) <= 40 else shown[:37] + "..."
    return None


def _one_line(exc: ValidationError, source: str) -> ConfigError:
    """The first validation error as one ``ConfigError`` line naming the key."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    kind = error["type"]
    if isinstance(cause, _KeyedError):
        key = ".".join(part for part in (_dotted(loc), cause.key) if part)
        return ConfigError(cause.message, source=source, key=key)
    key = _dotted(loc)
    if isinstance(cause, ValueError):
        message = str(cause)
    elif kind == "missing":
        message = "is required"
        if loc == ("exports",):
            message = "at least one [[exports]] table is required"
    elif kind == "extra_forbidden":
        message = "unknown key"
        if loc and loc[-1] in ("auth_token", "api_key_secret", "password", "secret"):
            message += (
                "; never write a secret in this file: use auth_token_env or auth_token_file "
                "(api_key_secret_env or api_key_secret_file)"
            )
        else:
            close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
    else:
        # pydantic's own short message, e.g. "Input should be a valid integer".
        message = error["msg"].replace("Input should be", "must be")
        # Values under [twilio] are never echoed: a secret pasted into the wrong key stays out.
        shown = _shown(error.get("input")) if loc[:1] != ("twilio",) else None
        if shown is not None:
            message += f", got {shown}"
    return ConfigError(" ".join(message.split()), source=source, key=key)


def _read_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        # Never more than the cap (plus one byte, to tell): /dev/zero is answered at once.
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the file is larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a configuration file",
            source=source,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text", source=source) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=source) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError("invalid TOML: values are nested too deeply", source=source) from None


def load_config_file(path: Path, *, environ: Mapping[str, str] = os.environ) -> ConfigFile:
    """Read and validate the configuration without resolving secrets.

    For commands that only read or change local state (status, history, retry, migrate): an
    operator's shell need not hold the Twilio token to run them.
    """
    # Absolute, so derived paths (the SQLite URL) do not depend on a later working directory.
    base_dir = path.absolute().parent
    raw = _read_toml(path)
    try:
        return ConfigFile.model_validate(raw, context={"environ": environ, "base_dir": base_dir})
    except ValidationError as exc:
        raise _one_line(exc, str(path)) from None
    except RecursionError:
        raise ConfigError("values are nested too deeply", source=str(path)) from None


def load_settings(
    path: Path, *, environ: Mapping[str, str] = os.environ, check_paths: bool = True
) -> Settings:
    """Read, validate and resolve the configuration at ``path``; ``ConfigError`` on any problem.

    What ``run`` and ``check-config`` (and a reload) read, so ``check-config`` says OK only to
    what ``run`` can use: with ``check_paths`` (the default), also that the directories the
    daemon writes can be made and written by this user (``check_directories``).
    """
    source = str(path)
    file = load_config_file(path, environ=environ)
    if check_paths:
        check_directories(file, source=source)
    try:
        credentials = _resolve_credentials(
            file.twilio, environ=environ, base_dir=path.absolute().parent
        )
    except ValidationError as exc:
        raise _one_line(exc, source) from None
    except _KeyedError as exc:
        raise ConfigError(exc.message, source=source, key=f"twilio.{exc.key}") from None
    fields = {name: getattr(file, name) for name in ConfigFile.model_fields}
    return Settings(**fields, source=source, credentials=credentials)


def sqlite_database_path(url: str) -> Path | None:
    """The file of a ``sqlite+aiosqlite:///PATH`` URL; None for PostgreSQL or in-memory."""
    scheme, _, rest = url.partition(":///")
    if not scheme.startswith("sqlite") or not rest:
        return None
    database = rest.split("?", 1)[0]
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def check_directories(file: ConfigFile, *, source: str) -> None:
    """The SQLite database's directory (and ``state.directory`` with it) and the archive
    directory: each an existing writable directory, or one this user can create. Creates
    nothing. ``ConfigError`` naming the key otherwise."""
    url = file.state.database_url.get_secret_value()
    database = sqlite_database_path(url)
    if database is not None:
        _check_directory(file.state.directory, source=source, key="state.directory")
        if database.parent != file.state.directory:
            _check_directory(database.parent, source=source, key="state.database_url")
    if file.archive is not None and file.archive.directory is not None:
        # A bucket is checked by ``check-config --connect`` (a probe object), not here.
        _check_directory(file.archive.directory, source=source, key="archive.directory")


def _check_directory(directory: Path, *, source: str, key: str) -> None:
    """``directory`` is a directory this user can write, or the nearest existing ancestor is
    (so ``mkdir -p`` would succeed)."""
    probe = directory
    while True:
        try:
            is_dir = probe.is_dir()
            exists = is_dir or probe.exists() or probe.is_symlink()
        except OSError as exc:
            raise ConfigError(
                f"cannot look at {probe}: {exc.strerror or exc}", source=source, key=key
            ) from None
        if exists or probe == probe.parent:
            break
        probe = probe.parent
    if not is_dir:
        what = "" if probe == directory else f"cannot be created: {probe} "
        raise ConfigError(f"{directory} {what}is not a directory", source=source, key=key)
    if not os.access(probe, os.W_OK | os.X_OK):
        detail = "is not writable" if probe == directory else f"cannot be created in {probe}"
        raise ConfigError(
            f"{directory} {detail} by this user (uid {os.geteuid()})", source=source, key=key
        )


def redaction_secrets(settings: Settings) -> list[str]:
    """The secrets the log redactor must scrub: the Twilio secret and any database password."""
    secrets = [settings.credentials.password.get_secret_value()]
    password = urlsplit(settings.state.database_url.get_secret_value()).password
    if password:
        secrets.append(password)
    return secrets
