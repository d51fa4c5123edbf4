"""Pure parsing: the API's JSON -> domain values (RemoteJob, RemoteDay) and page links.

No I/O and no logging. Oddities that are tolerated (an unknown status, an unparseable
timestamp) are reported as ``ParseNote`` values appended to the ``notes`` list the caller passes,
so the client decides how to log them. Anything that breaks the documented shape raises
``MalformedResponse``; a bad day string never gets through (it would end up in a file path).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from orchestrator.domain.model import (
    DayStatus,
    DetailGroup,
    RemoteDay,
    RemoteJob,
    ResourceType,
    is_job_sid,
    parse_day,
)
from orchestrator.errors import InvalidInput, MalformedResponse

# Longest raw value quoted in a note or error message.
_QUOTE_LIMIT = 80


@dataclass(frozen=True, slots=True)
class ParseNote:
    """A tolerated oddity in an answer: ``event`` is the log event name to use."""

    event: str
    field: str
    value: str
    job_sid: str | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list answer: its items and the next page's URL (None on the last page)."""

    items: tuple[T, ...]
    next_page_url: str | None


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "..."


def decode_json(body: bytes, *, what: str) -> Any:
    """``body`` as JSON, else MalformedResponse (the body is not quoted: it may be large)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedResponse(f"{what}: answer is not JSON ({len(body)} bytes)") from None


def _object(data: object, *, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise MalformedResponse(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _optional_str(data: Mapping[str, Any], key: str, *, what: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedResponse(f"{what}: {key} must be a string, got {_quote(value)}")


def _day(value: object, *, field: str, what: str) -> dt.date:
    try:
        return parse_day(value, field=field)
    except InvalidInput as exc:
        raise MalformedResponse(f"{what}: {exc}") from None


def _optional_day(data: Mapping[str, Any], key: str, *, what: str) -> dt.date | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    return _day(value, field=key, what=what)


def parse_resource_type(value: object, *, what: str) -> ResourceType:
    """A resource type in any letter case ("messages" -> MESSAGES), else MalformedResponse."""
    if isinstance(value, str):
        for member in ResourceType:
            if value.lower() == member.value.lower():
                return member
    raise MalformedResponse(f"{what}: unknown resource_type {_quote(value)}")


def _resource_type(
    data: Mapping[str, Any], fallback: ResourceType | None, *, what: str
) -> ResourceType:
    value = data.get("resource_type")
    if value is None and fallback is not None:
        return fallback
    return parse_resource_type(value, what=what)


# Naive timestamps seen from Twilio and proxies; tried in order after fromisoformat.
_TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%a, %d %b %Y %H:%M:%S %z",  # RFC 2822, as in other Twilio APIs' date fields
    "%a, %d %b %Y %H:%M:%S GMT",
)
# Python 3.11's fromisoformat takes at most 6 fractional digits; trim longer ones.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: object) -> dt.datetime | None:
    """An aware UTC datetime from a timestamp string; naive means UTC. None if unparseable.

    Accepts "2024-01-01 10:00:00", "2024-01-01T10:00:00", with or without fractional
    seconds, with "Z" or an offset, and RFC 2822 dates.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    parsed: dt.datetime | None = None
    iso = _LONG_FRACTION.sub(r"\1", text)
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(iso)
    except ValueError:
        for fmt in _TIMESTAMP_FORMATS:
            try:
                parsed = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def parse_queue_position(value: object) -> int | None:
    """3 or "3" -> 3; None, "" -> None; anything else -> None (the caller notes it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _detail_entries(details: object, *, what: str) -> list[object]:
    if details is None:
        return []
    if isinstance(details, list):
        return details
    if isinstance(details, dict):
        # The spec's fetch example has "details": {}; a non-empty object is one group.
        return [details] if details else []
    raise MalformedResponse(f"{what}: details must be a list, got {type(details).__name__}")


def parse_details(
    details: object, *, job_sid: str | None = None, notes: list[ParseNote] | None = None
) -> tuple[DetailGroup, ...]:
    """A job's ``details`` -> DetailGroups, statuses in any case, unknown ones kept as UNKNOWN.

    Tolerates null/absent details, ``{}`` entries, empty or null ``days``. Raises
    MalformedResponse when an entry or a day is not the documented shape.
    """
    what = f"details of {job_sid}" if job_sid else "details"
    groups: list[DetailGroup] = []
    for entry in _detail_entries(details, what=what):
        if not isinstance(entry, dict):
            raise MalformedResponse(f"{what}: entry must be an object, got {_quote(entry)}")
        raw_days = entry.get("days")
        if raw_days is None:
            raw_days = []
        if not isinstance(raw_days, list):
            raise MalformedResponse(f"{what}: days must be a list, got {_quote(raw_days)}")
        raw_status = entry.get("status")
        if raw_status is None and not raw_days:
            continue  # an empty placeholder such as {} or {"count": 0}
        if not isinstance(raw_status, str):
            raise MalformedResponse(f"{what}: status must be a string, got {_quote(raw_status)}")
        status = DayStatus.from_twilio(raw_status)
        if status is DayStatus.UNKNOWN and notes is not None:
            notes.append(ParseNote("twilio.unknown_status", "status", raw_status, job_sid))
        days = tuple(_day(day, field="days", what=what) for day in raw_days)
        groups.append(DetailGroup(status=status, raw_status=raw_status, days=days))
    return tuple(groups)


def parse_job(
    data: object,
    *,
    resource_type: ResourceType | None = None,
    notes: list[ParseNote] | None = None,
) -> RemoteJob:
    """One job object -> RemoteJob. ``resource_type`` fills in a missing ``resource_type``."""
    job = _object(data, what="job")
    job_sid = job.get("job_sid")
    if not is_job_sid(job_sid):
        raise MalformedResponse(f"job: job_sid missing or invalid: {_quote(job_sid)}")
    assert isinstance(job_sid, str)  # narrowed by is_job_sid
    what = f"job {job_sid}"

    raw_position = job.get("job_queue_position")
    position = parse_queue_position(raw_position)
    if position is None and raw_position not in (None, "") and notes is not None:
        notes.append(
            ParseNote(
                "twilio.unparseable_field", "job_queue_position", _quote(raw_position), job_sid
            )
        )
    raw_eta = job.get("estimated_completion_time")
    eta = parse_timestamp(raw_eta)
    if eta is None and raw_eta not in (None, "") and notes is not None:
        notes.append(
            ParseNote(
                "twilio.unparseable_field", "estimated_completion_time", _quote(raw_eta), job_sid
            )
        )

    return RemoteJob(
        job_sid=job_sid,
        friendly_name=_optional_str(job, "friendly_name", what=what),
        resource_type=_resource_type(job, resource_type, what=what),
        start_day=_optional_day(job, "start_day", what=what),
        end_day=_optional_day(job, "end_day", what=what),
        details=parse_details(job.get("details"), job_sid=job_sid, notes=notes),
        job_queue_position=position,
        estimated_completion_time=eta,
        webhook_url=_optional_str(job, "webhook_url", what=what),
        webhook_method=_optional_str(job, "webhook_method", what=what),
        email=_optional_str(job, "email", what=what),
    )


def _size(value: object, *, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise MalformedResponse(f"{what}: size must be a byte count, got {_quote(value)}")


def parse_remote_day(data: object, *, resource_type: ResourceType | None = None) -> RemoteDay:
    """One entry of the Days list -> RemoteDay (the day validated with parse_day)."""
    entry = _object(data, what="day")
    day = _day(entry.get("day"), field="day", what="day")
    what = f"day {day.isoformat()}"
    return RemoteDay(
        resource_type=_resource_type(entry, resource_type, what=what),
        day=day,
        size=_size(entry.get("size"), what=what),
        create_date=_optional_str(entry, "create_date", what=what),
        friendly_name=_optional_str(entry, "friendly_name", what=what),
    )


def _next_page_url(page: Mapping[str, Any], *, what: str) -> str | None:
    meta = page.get("meta")
    if meta is None:
        return None
    meta = _object(meta, what=f"{what} meta")
    value = meta.get("next_page_url")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: next_page_url must be a string, got {_quote(value)}")
    return value


def _items(page: Mapping[str, Any], key: str, *, what: str) -> list[object]:
    items = page.get(key)
    if not isinstance(items, list):
        raise MalformedResponse(f"{what}: {key!r} must be a list")
    return items


def parse_jobs_page(
    data: object, *, resource_type: ResourceType, notes: list[ParseNote] | None = None
) -> Page[RemoteJob]:
    """A page of the Jobs list -> its jobs and the next page's URL."""
    page = _object(data, what="jobs page")
    jobs = tuple(
        parse_job(item, resource_type=resource_type, notes=notes)
        for item in _items(page, "jobs", what="jobs page")
    )
    return Page(jobs, _next_page_url(page, what="jobs page"))


def parse_days_page(data: object, *, resource_type: ResourceType) -> Page[RemoteDay]:
    """A page of the Days list -> its days and the next page's URL."""
    page = _object(data, what="days page")
    days = tuple(
        parse_remote_day(item, resource_type=resource_type)
        for item in _items(page, "days", what="days page")
    )
    return Page(days, _next_page_url(page, what="days page"))


def _absolute_http_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return value
    return None


def parse_day_redirect(body: bytes, location: str | None) -> str:
    """The pre-signed file URL of a Day answer: ``redirect_to`` from the body, else Location."""
    from_body: str | None = None
    try:
        data = json.loads(body) if body else None
    except (UnicodeDecodeError, ValueError):
        data = None
    if isinstance(data, dict):
        from_body = _absolute_http_url(data.get("redirect_to"))
    url = from_body or _absolute_http_url(location)
    if url is None:
        raise MalformedResponse("day: answer has neither a redirect_to nor a Location URL")
    return url
