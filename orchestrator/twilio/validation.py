"""Pure checks of what a caller asks for, run before anything is sent.

Each failure raises ``InvalidInput`` naming the parameter. Nothing here touches the network.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from orchestrator.domain.model import ResourceType, latest_eligible_day, parse_day
from orchestrator.errors import InvalidInput

WEBHOOK_METHODS = frozenset({"GET", "POST"})
# Generous: Twilio documents no limit; ours are ~50 characters.
MAX_FRIENDLY_NAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_resource_type(raw: object) -> ResourceType:
    """A ResourceType or its exact Twilio spelling ("Messages")."""
    return ResourceType.parse(raw, field="resource_type")


def check_day(raw: object, *, field: str) -> dt.date:
    """A ``date`` (not a datetime) or a strict yyyy-mm-dd string naming a real day."""
    if isinstance(raw, dt.datetime):
        raise InvalidInput(field, "must be a date, not a datetime")
    if isinstance(raw, dt.date):
        return raw
    return parse_day(raw, field=field)


def check_range(start_day: object, end_day: object, *, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """start <= end <= the last day Twilio accepts at ``now`` (today UTC minus two days)."""
    start = check_day(start_day, field="start_day")
    end = check_day(end_day, field="end_day")
    if start > end:
        raise InvalidInput("start_day", f"{start.isoformat()} is after end_day {end.isoformat()}")
    latest = latest_eligible_day(now)
    if end > latest:
        raise InvalidInput(
            "end_day",
            f"{end.isoformat()} is later than {latest.isoformat()}, "
            "the last day Twilio accepts now",
        )
    return start, end


def check_friendly_name(raw: object) -> str:
    """A non-empty name without control characters, at most 255 characters."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("friendly_name", "must be a non-empty string")
    if _CONTROL.search(raw):
        raise InvalidInput("friendly_name", "must not contain control characters")
    if len(raw) > MAX_FRIENDLY_NAME:
        raise InvalidInput("friendly_name", f"must be at most {MAX_FRIENDLY_NAME} characters")
    return raw


def check_http_url(raw: object, *, field: str) -> str:
    """An absolute http(s) URL without embedded credentials (the value is not echoed)."""
    if not isinstance(raw, str) or _CONTROL.search(raw):
        raise InvalidInput(field, "must be a URL string without control characters")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field, "must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(field, "must not contain credentials (user:password@)")
    try:
        parts.port  # noqa: B018 -- evaluated for its ValueError on a bad port
    except ValueError:
        raise InvalidInput(field, "has an invalid port") from None
    return raw


def check_webhook(url: object, method: object) -> tuple[str, str] | None:
    """Both WebhookUrl and WebhookMethod (GET or POST, any case) or neither."""
    if url is None and method is None:
        return None
    if url is None or method is None:
        missing = "webhook_url" if url is None else "webhook_method"
        raise InvalidInput(
            missing, "webhook_url and webhook_method go together: give both or neither"
        )
    checked_url = check_http_url(url, field="webhook_url")
    if not isinstance(method, str) or method.upper() not in WEBHOOK_METHODS:
        raise InvalidInput("webhook_method", f"{method!r} is not GET or POST")
    return checked_url, method.upper()


def check_email(raw: object) -> str | None:
    """None, or one plausible e-mail address."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _EMAIL.fullmatch(raw) or _CONTROL.search(raw):
        raise InvalidInput("email", "must be one e-mail address")
    return raw


def safe_url(url: str) -> str:
    """``url`` without its query and fragment: a pre-signed URL's signature is a credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
