"""The client's knobs: where, how fast, how long, how often to retry. Validated on creation.

Like httpx's ``Timeout``/``Limits``: a bad value fails here, naming the field, rather than
surfacing later as a confusing aiohttp or stamina error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.errors import InvalidInput

# The one owner of the default (the configuration imports it).
DEFAULT_BASE_URL = "https://bulkexports.twilio.com"
# The smaller of the documented PageSize maxima (Jobs: 1000, Days: 400).
MAX_PAGE_SIZE = 400


def _positive(field: str, value: float, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput(field, f"must be a positive finite number, got {value!r}")


def _non_negative(field: str, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidInput(field, f"must be a finite number >= 0, got {value!r}")


def _positive_int(field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(field, f"must be an integer >= 1, got {value!r}")


def check_base_url(raw: object, *, field: str = "base_url") -> str:
    """An absolute http(s) URL without credentials, query or fragment; trailing '/' removed.

    The one check of a base URL (the configuration's ``twilio.base_url`` uses it too). The
    value is never echoed: it may hold credentials.
    """
    if not isinstance(raw, str):
        raise InvalidInput(field, "must be a non-empty URL string")
    parts = urlsplit(raw)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(field, "must not contain credentials (user:password@)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field, f"must be an http(s) URL like {DEFAULT_BASE_URL}")
    if parts.query or parts.fragment:
        raise InvalidInput(field, "must not have a query or fragment")
    return raw.rstrip("/")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Settings of one ``BulkExportsClient``; every field is checked in ``__post_init__``.

    Timeouts are seconds. ``max_attempts`` and ``retry_timeout`` bound every retried call
    (including the first attempt); ``wait_*`` shape the exponential backoff with jitter;
    a server's Retry-After is honoured up to ``max_retry_after``.
    """

    base_url: str = DEFAULT_BASE_URL
    # One API request, connect to last byte.
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    # Downloads have no total timeout (files can be large); only the gap between two reads.
    download_read_timeout: float = 60.0
    download_chunk_size: int = 64 * 1024
    max_attempts: int = 5
    retry_timeout: float = 120.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 1.0
    wait_exp_base: float = 2.0
    max_retry_after: float = 120.0
    # Client-wide: all API requests of the process share these.
    requests_per_second: float = 10.0
    max_concurrent_requests: int = 5
    max_concurrent_downloads: int = 4
    # None: let Twilio pick (50). At most 400 (the Days list maximum).
    page_size: int | None = None
    # A guard against a server that keeps handing out next pages.
    max_pages: int = 1000
    user_agent: str = "orchestrator-bulkexports/0.1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", check_base_url(self.base_url))
        for name in (
            "request_timeout",
            "connect_timeout",
            "download_read_timeout",
            "retry_timeout",
            "wait_max",
            "max_retry_after",
            "requests_per_second",
        ):
            _positive(name, getattr(self, name))
        for name in ("wait_initial", "wait_jitter"):
            _non_negative(name, getattr(self, name))
        if (
            isinstance(self.wait_exp_base, bool)
            or not isinstance(self.wait_exp_base, int | float)
            or not math.isfinite(self.wait_exp_base)
            or self.wait_exp_base < 1
        ):
            raise InvalidInput(
                "wait_exp_base", f"must be a number >= 1, got {self.wait_exp_base!r}"
            )
        for name in (
            "download_chunk_size",
            "max_attempts",
            "max_concurrent_requests",
            "max_concurrent_downloads",
            "max_pages",
        ):
            _positive_int(name, getattr(self, name))
        if self.page_size is not None:
            _positive_int("page_size", self.page_size)
            if self.page_size > MAX_PAGE_SIZE:
                raise InvalidInput("page_size", f"must be at most {MAX_PAGE_SIZE}")
        if not isinstance(self.user_agent, str) or not self.user_agent.isprintable():
            raise InvalidInput("user_agent", "must be a printable string")
