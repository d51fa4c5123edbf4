"""Pure mapping: an HTTP error answer (status, headers, body) -> an exception of errors.py.

Understands Twilio's JSON errors ``{code, message, more_info, status}``, RFC 9457 problem
details ``{type, title, status, detail, code}``, S3-style XML errors from the file host and
anything else (an HTML page from a proxy), which becomes the status plus a short, sanitized
text. Twilio's code and message are kept; nothing else from the request is ever quoted.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import http
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    DownloadExpired,
    NotFound,
    RateLimited,
    ServerError,
)

# Twilio error codes with a fixed meaning whatever the HTTP status says.
AUTHENTICATION_FAILED = 20003
TOO_MANY_REQUESTS = 20429
# Longest text kept from a non-JSON body.
MAX_TEXT = 200

_TAG = re.compile(r"<[^>]*>")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_XML_CODE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]")
_SPACES = re.compile(r"\s+")


def _identity(text: str) -> str:
    return text


def sanitize_text(raw: str, *, limit: int = MAX_TEXT) -> str:
    """Markup, control characters and runs of whitespace removed; at most ``limit`` chars."""
    text = _SCRIPT_OR_STYLE.sub(" ", raw)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _NOT_PRINTABLE.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return sanitize_text(value, limit=500)
    return None


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _json_object(body: bytes) -> Mapping[str, Any] | None:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_body(
    body: bytes, content_type: str | None
) -> tuple[int | None, str | None, str | None]:
    """(code, message, more_info) from an error body of any kind; Nones when absent.

    Twilio JSON: ``message``; RFC 9457: ``detail`` (with ``title`` in front when both differ)
    and ``type`` as more_info unless it is "about:blank"; other bodies: a sanitized excerpt
    (the HTML <title> when there is one).
    """
    data = _json_object(body) if body else None
    if data is not None:
        code = _code(data.get("code"))
        title = _text(data.get("title"))
        detail = _text(data.get("detail"))
        message = _text(data.get("message"))
        if message is None and (title or detail):
            message = (
                f"{title}: {detail}" if title and detail and title != detail else title or detail
            )
        more_info = _text(data.get("more_info"))
        problem_type = _text(data.get("type"))
        if more_info is None and problem_type and problem_type != "about:blank":
            more_info = problem_type
        return code, message, more_info
    if not body:
        return None, None, None
    text = _decode(body)
    if "<Code>" in text:  # S3-style XML error
        code_match, message_match = _XML_CODE.search(text), _XML_MESSAGE.search(text)
        parts = [sanitize_text(m.group(1), limit=100) for m in (code_match, message_match) if m]
        if parts:
            return None, ": ".join(parts), None
    title_match = _TITLE.search(text)
    excerpt = sanitize_text(title_match.group(1) if title_match else text)
    kind = (content_type or "unknown type").split(";")[0].strip()
    return None, f"non-JSON answer ({kind}): {excerpt}" if excerpt else None, None


def error_from_response(
    status: int,
    body: bytes,
    *,
    content_type: str | None = None,
    retry_after: float | None = None,
    scrub: Callable[[str], str] = _identity,
) -> ApiError:
    """The exception for an API error answer. ``scrub`` removes known secrets from the text.

    429 or code 20429 -> RateLimited (with ``retry_after``); 401, 403 or code 20003 ->
    AuthenticationError; 400 -> BadRequest; 404 -> NotFound; 5xx -> ServerError; other
    statuses -> ApiError.
    """
    code, message, more_info = describe_body(body, content_type)
    text = scrub(message or _reason(status))
    more = scrub(more_info) if more_info else None
    if status == 429 or code == TOO_MANY_REQUESTS:
        return RateLimited(status, text, code=code, more_info=more, retry_after=retry_after)
    if status in (401, 403) or code == AUTHENTICATION_FAILED:
        return AuthenticationError(status, text, code=code, more_info=more)
    cls: type[ApiError]
    if status == 400:
        cls = BadRequest
    elif status == 404:
        cls = NotFound
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(status, text, code=code, more_info=more)


def download_error_from_response(
    status: int,
    body: bytes,
    *,
    content_type: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """The exception for an error answer of the file host (S3-like, pre-signed URL).

    400/403 -> DownloadExpired (the URL expired or was refused: resolve it again);
    404 -> NotFound; 429 -> RateLimited; 5xx -> ServerError; others -> ApiError.
    """
    _, message, _ = describe_body(body, content_type)
    text = message or _reason(status)
    if status in (400, 403):
        return DownloadExpired(status, text)
    if status == 404:
        return NotFound(status, text)
    if status == 429:
        return RateLimited(status, text, retry_after=retry_after)
    if status >= 500:
        return ServerError(status, text)
    return ApiError(status, text)


def parse_retry_after(
    value: str | None,
    *,
    now: dt.datetime,
    real_seconds: Callable[[dt.timedelta], float] | None = None,
) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date; None if bad.

    A date is compared with ``now`` (the injected clock's time) and the gap turned into real
    seconds with ``real_seconds`` (the clock's conversion; plain seconds when None). A date in
    the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    gap = when - now
    if gap <= dt.timedelta(0):
        return 0.0
    return real_seconds(gap) if real_seconds is not None else gap.total_seconds()
