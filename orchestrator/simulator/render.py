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


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
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


class PagingError(ValueError):
    """A paging parameter is malformed."""


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
    """One page of ``items`` with Twilio's meta; PageToken wins over Page when both are given."""
    size = min(_int_param(query, "PageSize", default_size, 1), max_size)
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
