"""Client settings, credentials and input checks: validated on creation, secrets never shown."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestrator.errors import InvalidInput
from orchestrator.twilio import ClientSettings, Credentials
from orchestrator.twilio.validation import (
    check_day,
    check_email,
    check_http_url,
    check_range,
    check_webhook,
    safe_url,
)

ACCOUNT_SID = "AC" + "1" * 32
KEY_SID = "SK" + "2" * 32
TOKEN = "tok-abcdef0123456789"
NOW = dt.datetime(2024, 3, 10, 0, 30, tzinfo=dt.UTC)


def test_default_settings_are_valid() -> None:
    """The defaults point at Twilio's US1 host."""
    assert ClientSettings().base_url == "https://bulkexports.twilio.com"


def test_base_url_trailing_slash_dropped() -> None:
    """A trailing slash is removed so paths join cleanly."""
    assert ClientSettings(base_url="http://127.0.0.1:8080/").base_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base_url": "bulkexports.twilio.com"}, "base_url"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": "https://x/?a=1"}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"request_timeout": float("inf")}, "request_timeout"),
        ({"request_timeout": "30"}, "request_timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"download_read_timeout": 0}, "download_read_timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"retry_timeout": float("nan")}, "retry_timeout"),
        ({"wait_initial": -0.1}, "wait_initial"),
        ({"wait_jitter": -1}, "wait_jitter"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
        ({"requests_per_second": 0}, "requests_per_second"),
        ({"max_concurrent_requests": 0}, "max_concurrent_requests"),
        ({"max_concurrent_downloads": -2}, "max_concurrent_downloads"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 401}, "page_size"),
        ({"download_chunk_size": 0}, "download_chunk_size"),
        ({"user_agent": "a\nb"}, "user_agent"),
    ],
)
def test_bad_settings_name_their_field(overrides: dict[str, Any], field: str) -> None:
    """Every invalid value raises InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as caught:
        ClientSettings(**overrides)
    assert caught.value.field == field


def test_base_url_with_credentials_is_refused_without_echo() -> None:
    """A base URL with user:password@ is refused and the password is not repeated."""
    with pytest.raises(InvalidInput) as caught:
        ClientSettings(base_url=f"https://{ACCOUNT_SID}:{TOKEN}@bulkexports.twilio.com")
    assert TOKEN not in str(caught.value)


def test_credentials_reprs_hide_secrets() -> None:
    """repr and str show SIDs, never the token, the key secret or the encoded header."""
    token_creds = Credentials.from_auth_token(ACCOUNT_SID, TOKEN)
    key_creds = Credentials.from_api_key(ACCOUNT_SID, KEY_SID, TOKEN)
    for creds in (token_creds, key_creds):
        encoded = creds.authorization_header().split()[1]
        for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
            assert TOKEN not in text
            assert encoded not in text
        assert set(creds.secret_values()) == {TOKEN, encoded}
    assert ACCOUNT_SID in repr(token_creds)
    assert KEY_SID in repr(key_creds)
    assert token_creds.username == ACCOUNT_SID
    assert key_creds.username == KEY_SID
    assert key_creds.account_sid == ACCOUNT_SID


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("AC123", TOKEN), {}, "account_sid"),
        (("SK" + "1" * 32, TOKEN), {}, "account_sid"),
        ((ACCOUNT_SID, ""), {}, "auth_token"),
        ((ACCOUNT_SID, "has space"), {}, "auth_token"),
        ((ACCOUNT_SID, "line\nbreak"), {}, "auth_token"),
        ((ACCOUNT_SID, TOKEN), {"api_key_sid": "AC" + "1" * 32}, "api_key_sid"),
        ((ACCOUNT_SID, "bad secret\r\n"), {"api_key_sid": KEY_SID}, "api_key_secret"),
    ],
)
def test_bad_credentials_are_refused_without_echoing_secrets(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    """Malformed SIDs or secrets raise InvalidInput naming the field; the secret is not quoted."""
    with pytest.raises(InvalidInput) as caught:
        Credentials(*args, **kwargs)
    assert caught.value.field == field
    assert args[1] not in str(caught.value) or not args[1]


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2024-03-01", "2024-02-01", "start_day"),
        ("2024-03-01", "2024-03-09", "end_day"),
        ("2024-3-1", "2024-03-02", "start_day"),
        (dt.date(2024, 3, 1), dt.datetime(2024, 3, 2), "end_day"),
        (20240301, "2024-03-02", "start_day"),
    ],
)
def test_check_range_rejects(start: object, end: object, field: str) -> None:
    """Out-of-order, too-recent or badly typed days are refused naming the field."""
    with pytest.raises(InvalidInput) as caught:
        check_range(start, end, now=NOW)
    assert caught.value.field == field


def test_check_range_accepts_the_last_eligible_day() -> None:
    """At 00:30 UTC on 2024-03-10 the latest end day is 2024-03-08."""
    assert check_range("2024-03-08", dt.date(2024, 3, 8), now=NOW) == (dt.date(2024, 3, 8),) * 2


def test_check_day_accepts_dates_and_strings() -> None:
    """A date passes through, a yyyy-mm-dd string is parsed."""
    assert check_day("2024-02-29", field="day") == dt.date(2024, 2, 29)
    assert check_day(dt.date(2024, 2, 29), field="day") == dt.date(2024, 2, 29)


@pytest.mark.parametrize(
    ("url", "method", "expected"),
    [
        (None, None, None),
        ("https://h.example.com/x", "get", ("https://h.example.com/x", "GET")),
        ("http://h.example.com", "POST", ("http://h.example.com", "POST")),
    ],
)
def test_check_webhook_accepts(
    url: str | None, method: str | None, expected: tuple[str, str] | None
) -> None:
    """Both or neither; the method upper-cased."""
    assert check_webhook(url, method) == expected


@pytest.mark.parametrize("email", ["ops@example.com", None])
def test_check_email_accepts(email: str | None) -> None:
    """One address or None."""
    assert check_email(email) == email


@pytest.mark.parametrize("email", ["", "a@b", "a b@c.d", "x@y.z\n", 5])
def test_check_email_rejects(email: object) -> None:
    """Anything but one plausible address is refused."""
    with pytest.raises(InvalidInput):
        check_email(email)


@pytest.mark.parametrize("url", ["https://h:99999/x", "https://h.example.com/a\r\nb", 3])
def test_check_http_url_rejects(url: object) -> None:
    """Bad ports, control characters and non-strings are refused."""
    with pytest.raises(InvalidInput):
        check_http_url(url, field="url")


def test_safe_url_drops_query_and_fragment() -> None:
    """A pre-signed URL's signature never reaches a log or message."""
    assert (
        safe_url("https://b.s3.amazonaws.com:443/AC/f.gz?X-Amz-Signature=abc#x")
        == "https://b.s3.amazonaws.com:443/AC/f.gz"
    )
