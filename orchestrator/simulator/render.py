"""Twilio's JSON shapes: jobs, days, paging meta and error bodies."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from orchestrator.domain.model import DayStatus
from orchestrator.simulator.engine import CompletedDay, JobView

T = TypeVar("T")

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


# What each error code means in one sentence: Twilio's newer error bodies carry it as ``detail``
# beside ``message``, and the simulator gives every error body the same five keys.
_DETAILS = {
    20001: "A parameter is missing or invalid; the message names it.",
    20003: "Your AccountSid or AuthToken was incorrect.",
    20004: "The resource does not support this HTTP method.",
    20007: "The requested page size is too large.",
    20400: "The daily export limit resets at the start of the next UTC day.",
    20404: "The resource does not exist, was deleted, or is no longer kept.",
    20429: "Too many requests at once; retry after the Retry-After delay.",
    20500: "An error on Twilio's side; retry the request later.",
}


def twilio_error(status: int, code: int, message: str, detail: str | None = None) -> dict[str, Any]:
    """Twilio's error JSON: code, message, more_info, status, and the newer ``detail``."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
        "detail": detail if detail is not None else _DETAILS.get(code, message),
    }


def status_text(status: DayStatus, upper: bool) -> str:
    """'CompletedEmptyRecords', or 'COMPLETED_EMPTY_RECORDS' for jobs rendered upper-case."""
    if not upper:
        return status.value
    return _CAMEL_BOUNDARY.sub("_", status.value).upper()


def naive_timestamp(when: dt.datetime) -> str:
    """Twilio's naive UTC timestamp with milliseconds, e.g. 2021-03-15T20:20:14.547."""
    utc = when.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}"


def job_json(
    view: JobView, *, url: str | None = None, empty_details: bool = False
) -> dict[str, Any]:
    job = view.job
    details: list[dict[str, Any]]
    if empty_details:
        # The spec's own example shows [{}]; an empty list is the other plausible reading.
        details = [{}] if job.seq % 2 else []
    else:
        details = [
            {
                "status": status_text(status, job.upper_case),
                "count": len(days),
                "days": [d.isoformat() for d in days],
            }
            for status, days in view.groups
        ]
    # The spec types job_queue_position as a nullable string; a JSON number is an off-spec
    # quirk a test may ask for (string_queue_position_fraction below 1).
    position: int | str | None = view.queue_position
    if position is not None and job.position_as_string:
        position = str(position)
    body: dict[str, Any] = {
        "friendly_name": job.friendly_name,
        "resource_type": job.resource_type.value,
        "start_day": job.start_day.isoformat(),
        "end_day": job.end_day.isoformat(),
        "webhook_url": job.webhook_url,
        "webhook_method": job.webhook_method,
        "email": job.email,
        "job_sid": job.job_sid,
        "details": details,
        "job_queue_position": position,
        "estimated_completion_time": (
            naive_timestamp(view.estimated_completion)
            if view.estimated_completion is not None
            else None
        ),
    }
    if url is not None:
        body["url"] = url
    return body


def day_json(day: CompletedDay, size: int) -> dict[str, Any]:
    return {
        "day": day.day.isoformat(),
        "size": size,
        "resource_type": day.resource_type.value,
        "create_date": day.created_at.date().isoformat(),
        "friendly_name": day.friendly_name,
    }


# Twilio's codes for a malformed paging parameter and for a PageSize above the maximum.
INVALID_PAGING_CODE = 20001
PAGE_SIZE_TOO_LARGE_CODE = 20007


class PagingError(ValueError):
    """A paging parameter is malformed or out of range; answered 400 with ``code``."""

    def __init__(
        self, message: str, *, code: int = INVALID_PAGING_CODE, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    meta: dict[str, Any]


def _token(offset: int) -> str:
    return f"PT{offset:x}"


def _offset(token: str) -> int:
    if not token.startswith("PT"):
        raise PagingError(f"PageToken {token!r} is not valid")
    try:
        value = int(token[2:], 16)
    except ValueError:
        raise PagingError(f"PageToken {token!r} is not valid") from None
    if value < 0:
        raise PagingError(f"PageToken {token!r} is not valid")
    return value


def _page_size(query: dict[str, str], default: int, maximum: int) -> int:
    """The asked PageSize, refused above the spec's maximum as Twilio does (400, code 20007)."""
    raw = query.get("PageSize")
    if raw is None:
        return min(default, maximum)
    size = _int_param(query, "PageSize", default, 1)
    if size > maximum:
        raise PagingError(
            f"PageSize must be at most {maximum}, got {size}",
            code=PAGE_SIZE_TOO_LARGE_CODE,
            detail=f"The maximum page size is {maximum}.",
        )
    return size


def _int_param(query: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PagingError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise PagingError(f"{name} must be at least {minimum}, got {value}")
    return value


def paginate(
    items: Sequence[T],
    *,
    query: dict[str, str],
    page_url: str,
    key: str,
    default_size: int,
    max_size: int,
) -> Page[T]:
    """One page of ``items`` with Twilio's meta; PageToken wins over Page when both are given.

    A PageSize above ``max_size`` (the spec's maximum) raises PagingError rather than being
    clamped: the spec declares the maximum and Twilio documents error 20007 for it.
    """
    size = _page_size(query, default_size, max_size)
    page = _int_param(query, "Page", 0, 0)
    token = query.get("PageToken")
    offset = _offset(token) if token is not None else page * size

    def url(page_no: int, at: int | None) -> str:
        tail = f"&PageToken={_token(at)}" if at is not None else ""
        return f"{page_url}?PageSize={size}&Page={page_no}{tail}"

    end = offset + size
    meta = {
        "page": page,
        "page_size": size,
        "first_page_url": url(0, None),
        "previous_page_url": url(page - 1, max(0, offset - size)) if page > 0 else None,
        "url": url(page, offset if token is not None else None),
        "next_page_url": url(page + 1, end) if end < len(items) else None,
        "key": key,
    }
    return Page(items=items[offset:end], meta=meta)
