"""Pure mapping of error answers and Retry-After values, table-driven."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from orchestrator.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    DownloadExpired,
    NotFound,
    RateLimited,
    ServerError,
)
from orchestrator.twilio.errors_mapping import (
    describe_body,
    download_error_from_response,
    error_from_response,
    parse_retry_after,
    sanitize_text,
)

NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)


def twilio(code: int, message: str, status: int) -> bytes:
    return json.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    ).encode()


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (400, twilio(20001, "Invalid parameter", 400), BadRequest, 20001),
        (401, twilio(20003, "Authenticate", 401), AuthenticationError, 20003),
        (403, twilio(20003, "Permission denied", 403), AuthenticationError, 20003),
        (400, twilio(20003, "Authenticate", 400), AuthenticationError, 20003),
        (404, twilio(20404, "Not found", 404), NotFound, 20404),
        (429, twilio(20429, "Too Many Requests", 429), RateLimited, 20429),
        (503, twilio(20429, "Too Many Requests", 503), RateLimited, 20429),
        (500, twilio(20500, "Internal Server Error", 500), ServerError, 20500),
        (504, b"", ServerError, None),
        (409, twilio(20409, "Conflict", 409), ApiError, 20409),
        (405, b"", ApiError, None),
    ],
)
def test_status_and_code_pick_the_error_class(
    status: int, body: bytes, cls: type[ApiError], code: int | None
) -> None:
    """429/20429 -> RateLimited, 401/403/20003 -> AuthenticationError, 400, 404, 5xx, others."""
    exc = error_from_response(status, body, content_type="application/json")
    assert type(exc) is cls
    assert exc.status == status
    assert exc.code == code


def test_twilio_body_fields_are_kept() -> None:
    """code, message and more_info come from Twilio's JSON."""
    exc = error_from_response(400, twilio(20001, "Invalid StartDay", 400))
    assert (exc.code, exc.message, exc.more_info) == (
        20001,
        "Invalid StartDay",
        "https://www.twilio.com/docs/errors/20001",
    )
    assert str(exc) == "HTTP 400 (Twilio code 20001): Invalid StartDay"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "type": "https://www.twilio.com/docs/errors/20001",
                "title": "Bad Request",
                "status": 400,
                "code": 20001,
                "detail": "EndDay must be 2 days ago",
            },
            (
                20001,
                "Bad Request: EndDay must be 2 days ago",
                "https://www.twilio.com/docs/errors/20001",
            ),
        ),
        ({"type": "about:blank", "title": "Not Found", "status": 404}, (None, "Not Found", None)),
        ({"title": "Same", "detail": "Same"}, (None, "Same", None)),
        ({"detail": "only detail", "code": "20001"}, (20001, "only detail", None)),
        ({"message": "m", "title": "t", "code": True}, (None, "m", None)),
    ],
)
def test_rfc9457_bodies(
    body: dict[str, object], expected: tuple[int | None, str | None, str | None]
) -> None:
    """Problem details give code, title/detail as message and type as more_info."""
    assert describe_body(json.dumps(body).encode(), "application/problem+json") == expected


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            "non-JSON answer (text/html): 502 Bad Gateway",
        ),
        (
            b"<html><body><h1>Oops</h1><script>var secret=1</script>"
            b"<p>try&nbsp;later</p></body></html>",
            "text/html; charset=utf-8",
            "non-JSON answer (text/html): Oops try later",
        ),
        (b"plain failure\r\n\x00\x07", "text/plain", "non-JSON answer (text/plain): plain failure"),
        (
            b"<Error><Code>SlowDown</Code><Message>Reduce rate</Message></Error>",
            "application/xml",
            "SlowDown: Reduce rate",
        ),
        (b"[1, 2]", None, "non-JSON answer (unknown type): [1, 2]"),
        (b"", None, None),
    ],
)
def test_non_json_bodies_become_short_clean_text(
    body: bytes, content_type: str | None, message: str | None
) -> None:
    """HTML loses its markup and scripts, XML gives Code: Message, control chars go."""
    assert describe_body(body, content_type)[1] == message


def test_long_html_is_truncated() -> None:
    """A large proxy page keeps at most about 200 characters."""
    exc = error_from_response(502, b"<p>" + b"word " * 1000 + b"</p>", content_type="text/html")
    assert len(exc.message) < 260
    assert exc.message.endswith("...")


def test_empty_body_uses_the_reason_phrase() -> None:
    """Without a body the message is the HTTP reason phrase."""
    assert error_from_response(503, b"").message == "Service Unavailable"
    assert error_from_response(599, b"").message == "error"


def test_scrub_is_applied_to_message_and_more_info() -> None:
    """The scrub callback removes secrets the body might echo."""
    body = json.dumps(
        {"code": 1, "message": "token sekrit-123 bad", "more_info": "x sekrit-123"}
    ).encode()
    exc = error_from_response(400, body, scrub=lambda s: s.replace("sekrit-123", "[REDACTED]"))
    assert "sekrit" not in str(exc) and "sekrit" not in (exc.more_info or "")


def test_rate_limited_carries_retry_after() -> None:
    """RateLimited keeps the Retry-After it was given."""
    exc = error_from_response(429, b"", retry_after=3.0)
    assert isinstance(exc, RateLimited) and exc.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, DownloadExpired),
        (403, DownloadExpired),
        (404, NotFound),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (410, ApiError),
    ],
)
def test_download_errors(status: int, cls: type[ApiError]) -> None:
    """File host: 400/403 expired, 404 gone, 429 rate limited, 5xx server, others ApiError."""
    exc = download_error_from_response(status, b"<Error><Code>X</Code></Error>")
    assert type(exc) is cls
    assert exc.message == "X"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        ("Sun, 10 Mar 2024 12:00:30 GMT", 30.0),
        ("Sun, 10 Mar 2024 11:00:00 GMT", 0.0),
        ("Sunday, 10-Mar-24 12:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Delta-seconds or an HTTP-date (relative to the injected now); garbage is None."""
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_date_uses_the_clock_conversion() -> None:
    """An HTTP-date gap is converted to real seconds by the clock (a sped-up clock waits less)."""
    got = parse_retry_after(
        "Sun, 10 Mar 2024 12:01:40 GMT", now=NOW, real_seconds=lambda d: d.total_seconds() / 100
    )
    assert got == 1.0


def test_sanitize_text() -> None:
    """Tags, entities, control characters and whitespace runs are cleaned."""
    assert sanitize_text("<b>a&amp;b</b>\n\n\tc\x1b[31m") == "a&b c [31m"
