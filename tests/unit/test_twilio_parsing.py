"""Pure parsing of Bulk Exports answers: every quirk, table-driven."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestrator.domain.model import DayStatus, DetailGroup, ResourceType
from orchestrator.errors import MalformedResponse
from orchestrator.twilio.parsing import (
    ParseNote,
    decode_json,
    parse_day_redirect,
    parse_days_page,
    parse_details,
    parse_job,
    parse_jobs_page,
    parse_queue_position,
    parse_remote_day,
    parse_resource_type,
    parse_timestamp,
)

SID = "JS" + "a" * 32
D1 = dt.date(2024, 1, 1)
D2 = dt.date(2024, 1, 2)
UTC = dt.UTC


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (None, ()),
        ([], ()),
        ({}, ()),
        ([{}], ()),
        ([{}, {}], ()),
        ([{"count": 0}], ()),
        (
            [{"status": "Completed", "count": 0, "days": []}],
            (DetailGroup(DayStatus.COMPLETED, "Completed", ()),),
        ),
        ([{"status": "Running", "days": None}], (DetailGroup(DayStatus.RUNNING, "Running", ()),)),
        (
            [{"status": "COMPLETED", "count": 2, "days": ["2024-01-01", "2024-01-02"]}],
            (DetailGroup(DayStatus.COMPLETED, "COMPLETED", (D1, D2)),),
        ),
        (
            [
                {"status": "completed_empty_records", "days": ["2024-01-01"]},
                {},
                {"status": "Failed", "days": ["2024-01-02"]},
            ],
            (
                DetailGroup(DayStatus.COMPLETED_EMPTY_RECORDS, "completed_empty_records", (D1,)),
                DetailGroup(DayStatus.FAILED, "Failed", (D2,)),
            ),
        ),
        # A single group given as an object instead of a list.
        (
            {"status": "Submitted", "count": 1, "days": ["2024-01-01"]},
            (DetailGroup(DayStatus.SUBMITTED, "Submitted", (D1,)),),
        ),
        (
            [{"status": "Exploded", "days": ["2024-01-01"]}],
            (DetailGroup(DayStatus.UNKNOWN, "Exploded", (D1,)),),
        ),
    ],
)
def test_parse_details_tolerates_documented_quirks(
    details: Any, expected: tuple[DetailGroup, ...]
) -> None:
    """null, [], {}, {} entries, empty/null days, any case and unknown statuses all parse."""
    assert parse_details(details) == expected


@pytest.mark.parametrize(
    "details",
    [
        "Completed",
        42,
        [1],
        [["Completed"]],
        [{"status": 3, "days": ["2024-01-01"]}],
        [{"days": ["2024-01-01"]}],
        [{"status": "Completed", "days": "2024-01-01"}],
        [{"status": "Completed", "days": ["2024-1-1"]}],
        [{"status": "Completed", "days": ["2024-02-30"]}],
        [{"status": "Completed", "days": ["../../etc/passwd"]}],
        [{"status": "Completed", "days": [20240101]}],
    ],
)
def test_parse_details_rejects_broken_shapes(details: Any) -> None:
    """Entries or days of the wrong shape raise MalformedResponse."""
    with pytest.raises(MalformedResponse):
        parse_details(details)


def test_unknown_status_is_noted() -> None:
    """An unknown status adds a twilio.unknown_status note carrying the raw text and SID."""
    notes: list[ParseNote] = []
    parse_details([{"status": "Paused", "days": []}], job_sid=SID, notes=notes)
    assert notes == [ParseNote("twilio.unknown_status", "status", "Paused", SID)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-01 10:00:00", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00:00", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2021-03-15T20:20:14.547", dt.datetime(2021, 3, 15, 20, 20, 14, 547000, tzinfo=UTC)),
        ("2024-01-01 10:00:00.5", dt.datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2024-01-01T10:00:00.1234567", dt.datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-01-01T10:00:00Z", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T12:00:00+02:00", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("Mon, 01 Jan 2024 10:00:00 +0000", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("  2024-01-01 10:00:00 ", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("", None),
        ("soon", None),
        ("2024-13-01 10:00:00", None),
        (None, None),
        (1704103200, None),
    ],
)
def test_parse_timestamp_formats(raw: object, expected: dt.datetime | None) -> None:
    """Naive timestamps are UTC; several layouts parse; anything else is None."""
    parsed = parse_timestamp(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3, 3),
        ("3", 3),
        (" 12 ", 12),
        ("0", 0),
        (None, None),
        ("", None),
        ("first", None),
        (True, None),
        (1.5, None),
    ],
)
def test_parse_queue_position(raw: object, expected: int | None) -> None:
    """An int or a digit string is the position; anything else is None."""
    assert parse_queue_position(raw) == expected


def job(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_sid": SID,
        "friendly_name": "orch-Messages-20240101-20240102-a1",
        "resource_type": "Messages",
        "start_day": "2024-01-01",
        "end_day": "2024-01-02",
        "details": [{"status": "Completed", "count": 2, "days": ["2024-01-01", "2024-01-02"]}],
        "webhook_url": "https://h.example.com",
        "webhook_method": "POST",
        "email": "ops@example.com",
        "job_queue_position": "1",
        "estimated_completion_time": "2024-01-03 00:00:00",
    }
    data.update(overrides)
    return data


def test_parse_job_full() -> None:
    """Every documented field lands in RemoteJob."""
    parsed = parse_job(job())
    assert parsed.job_sid == SID
    assert parsed.resource_type is ResourceType.MESSAGES
    assert (parsed.start_day, parsed.end_day) == (D1, D2)
    assert parsed.day_statuses() == {D1: DayStatus.COMPLETED, D2: DayStatus.COMPLETED}
    assert parsed.job_queue_position == 1
    assert parsed.estimated_completion_time == dt.datetime(2024, 1, 3, tzinfo=UTC)
    assert (parsed.webhook_url, parsed.webhook_method, parsed.email) == (
        "https://h.example.com",
        "POST",
        "ops@example.com",
    )


def test_parse_job_minimal_uses_fallback_resource_type() -> None:
    """Only a job_sid: everything else None/empty, resource type from the request."""
    parsed = parse_job({"job_sid": SID}, resource_type=ResourceType.CALLS)
    assert parsed.resource_type is ResourceType.CALLS
    assert parsed.details == ()
    assert parsed.start_day is None
    assert parsed.estimated_completion_time is None


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "job",
        job(job_sid=None),
        {k: v for k, v in job().items() if k != "job_sid"},
        job(job_sid="JS123"),
        job(job_sid="XX" + "a" * 32),
        job(resource_type="Faxes"),
        job(resource_type=None),
        job(start_day="start_day"),
        job(end_day="2024/01/02"),
        job(friendly_name=12),
        job(details="oops"),
    ],
)
def test_parse_job_rejects_malformed(data: Any) -> None:
    """A job without a valid SID, resource type or days, or with wrong types, is malformed."""
    with pytest.raises(MalformedResponse):
        parse_job(data)


def test_parse_job_resource_type_any_case() -> None:
    """'PARTICIPANTS' maps to the enum member."""
    assert parse_job(job(resource_type="PARTICIPANTS")).resource_type is ResourceType.PARTICIPANTS


def test_parse_job_notes_unparseable_fields() -> None:
    """A bad ETA or queue position becomes None and is noted, not raised."""
    notes: list[ParseNote] = []
    parsed = parse_job(
        job(estimated_completion_time="later", job_queue_position="n/a"), notes=notes
    )
    assert parsed.estimated_completion_time is None
    assert parsed.job_queue_position is None
    assert {n.field for n in notes} == {"estimated_completion_time", "job_queue_position"}
    assert all(n.event == "twilio.unparseable_field" for n in notes)


def test_parse_jobs_page_and_next_link() -> None:
    """A jobs page yields its jobs and meta.next_page_url; null/absent means last page."""
    data = {
        "jobs": [job(), job(job_sid="JS" + "b" * 32)],
        "meta": {"next_page_url": "https://x/v1/Exports/Messages/Jobs?Page=1"},
    }
    page = parse_jobs_page(data, resource_type=ResourceType.MESSAGES)
    assert [j.job_sid for j in page.items] == [SID, "JS" + "b" * 32]
    assert page.next_page_url == "https://x/v1/Exports/Messages/Jobs?Page=1"
    assert parse_jobs_page({"jobs": []}, resource_type=ResourceType.MESSAGES).next_page_url is None
    assert (
        parse_jobs_page(
            {"jobs": [], "meta": {"next_page_url": None}}, resource_type=ResourceType.MESSAGES
        ).next_page_url
        is None
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"jobs": None},
        {"jobs": {}},
        {"jobs": [], "meta": []},
        {"jobs": [], "meta": {"next_page_url": 3}},
        [],
    ],
)
def test_parse_jobs_page_rejects_malformed(data: Any) -> None:
    """A page without a jobs list or with a broken meta is malformed."""
    with pytest.raises(MalformedResponse):
        parse_jobs_page(data, resource_type=ResourceType.MESSAGES)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        ({"day": "2024-01-01", "size": 100}, 100),
        ({"day": "2024-01-01", "size": "100"}, 100),
        ({"day": "2024-01-01", "size": None}, None),
        ({"day": "2024-01-01"}, None),
    ],
)
def test_parse_remote_day(data: dict[str, Any], size: int | None) -> None:
    """A day entry: the date validated, size as int or None."""
    parsed = parse_remote_day(data, resource_type=ResourceType.CALLS)
    assert parsed.day == D1
    assert parsed.size == size
    assert parsed.resource_type is ResourceType.CALLS


@pytest.mark.parametrize(
    "data",
    [
        {"day": None},
        {},
        {"day": "2024-01-01T00:00:00"},
        {"day": "../2024-01-01"},
        {"day": "2024-01-01", "size": -1},
        {"day": "2024-01-01", "size": "big"},
        {"day": "2024-01-01", "resource_type": "Faxes"},
    ],
)
def test_parse_remote_day_rejects_malformed(data: dict[str, Any]) -> None:
    """A day entry with a bad day, size or resource type is malformed."""
    with pytest.raises(MalformedResponse):
        parse_remote_day(data, resource_type=ResourceType.CALLS)


def test_parse_days_page() -> None:
    """A days page yields RemoteDays and the next link."""
    page = parse_days_page(
        {"days": [{"day": "2024-01-02", "size": 5}], "meta": {"next_page_url": None}},
        resource_type=ResourceType.MESSAGES,
    )
    assert [d.day for d in page.items] == [D2]
    assert page.next_page_url is None


@pytest.mark.parametrize(
    ("body", "location", "expected"),
    [
        (
            b'{"redirect_to": "https://s3.example.com/a?sig=1"}',
            None,
            "https://s3.example.com/a?sig=1",
        ),
        (
            b'{"redirect_to": "https://s3.example.com/a"}',
            "https://other.example.com/b",
            "https://s3.example.com/a",
        ),
        (b"", "https://s3.example.com/b", "https://s3.example.com/b"),
        (b"<html>moved</html>", "https://s3.example.com/c", "https://s3.example.com/c"),
        (b'{"redirect_to": null}', "https://s3.example.com/d", "https://s3.example.com/d"),
        (b'{"redirect_to": "/relative"}', "https://s3.example.com/e", "https://s3.example.com/e"),
    ],
)
def test_parse_day_redirect(body: bytes, location: str | None, expected: str) -> None:
    """redirect_to from the body wins; Location is the fallback."""
    assert parse_day_redirect(body, location) == expected


@pytest.mark.parametrize(
    ("body", "location"),
    [(b"", None), (b"{}", None), (b'{"redirect_to": "ftp://x"}', "javascript:alert(1)")],
)
def test_parse_day_redirect_without_url_is_malformed(body: bytes, location: str | None) -> None:
    """No absolute http(s) URL anywhere: MalformedResponse."""
    with pytest.raises(MalformedResponse):
        parse_day_redirect(body, location)


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"<html>"])
def test_decode_json_rejects_non_json(body: bytes) -> None:
    """Bodies that are not JSON raise MalformedResponse naming the byte count, not the body."""
    with pytest.raises(MalformedResponse) as caught:
        decode_json(body, what="job")
    assert f"{len(body)} bytes" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"), [("Messages", ResourceType.MESSAGES), ("calls", ResourceType.CALLS)]
)
def test_parse_resource_type_any_case(raw: str, expected: ResourceType) -> None:
    """Resource types in answers are matched without regard to case."""
    assert parse_resource_type(raw, what="x") is expected
