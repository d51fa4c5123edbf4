"""Unit tests of the domain's value types."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.model import (
    DayStatus,
    JobState,
    ResourceType,
    check_job_sid,
    friendly_name,
    has_prefix,
    latest_eligible_day,
    parse_day,
)
from orchestrator.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Completed", DayStatus.COMPLETED),
        ("COMPLETED", DayStatus.COMPLETED),
        ("completed", DayStatus.COMPLETED),
        ("CompletedEmptyRecords", DayStatus.COMPLETED_EMPTY_RECORDS),
        ("COMPLETED_EMPTY_RECORDS", DayStatus.COMPLETED_EMPTY_RECORDS),
        ("ErrorDuringRun", DayStatus.ERROR_DURING_RUN),
        ("ERROR_DURING_RUN", DayStatus.ERROR_DURING_RUN),
        ("Submitted", DayStatus.SUBMITTED),
        ("RUNNING", DayStatus.RUNNING),
        ("Failed", DayStatus.FAILED),
        ("RunningToBeDeleted", DayStatus.RUNNING_TO_BE_DELETED),
        ("DeletedByUserRequest", DayStatus.DELETED_BY_USER_REQUEST),
        ("Exploded", DayStatus.UNKNOWN),
        ("", DayStatus.UNKNOWN),
        # Our own statuses are never accepted from Twilio.
        ("Pending", DayStatus.UNKNOWN),
        ("GaveUp", DayStatus.UNKNOWN),
    ],
)
def test_status_from_twilio_accepts_any_case(raw: str, expected: DayStatus) -> None:
    """Twilio's status strings map in any case; unknown ones become UNKNOWN."""
    assert DayStatus.from_twilio(raw) is expected


@pytest.mark.parametrize(
    ("status", "final", "success", "in_flight", "lost"),
    [
        (DayStatus.PENDING, False, False, False, False),
        (DayStatus.SUBMITTED, False, False, True, False),
        (DayStatus.RUNNING, False, False, True, False),
        (DayStatus.ERROR_DURING_RUN, False, False, True, False),
        (DayStatus.COMPLETED, True, True, False, False),
        (DayStatus.COMPLETED_EMPTY_RECORDS, True, True, False, False),
        (DayStatus.FAILED, False, False, False, True),
        (DayStatus.RUNNING_TO_BE_DELETED, False, False, False, True),
        (DayStatus.DELETED_BY_USER_REQUEST, False, False, False, True),
        (DayStatus.GAVE_UP, True, False, False, False),
        (DayStatus.UNKNOWN, False, False, False, False),
    ],
)
def test_status_classes(
    status: DayStatus, final: bool, success: bool, in_flight: bool, lost: bool
) -> None:
    """Each status belongs to exactly the classes the model documents."""
    assert (status.is_final, status.is_success, status.is_in_flight, status.is_lost_by_job) == (
        final,
        success,
        in_flight,
        lost,
    )


@pytest.mark.parametrize("raw", ["2024-02-30", "2024-1-01", "20240101", "../etc", "", None, 7])
def test_parse_day_rejects_non_dates(raw: object) -> None:
    """Only real yyyy-mm-dd dates parse; the error names the field."""
    with pytest.raises(InvalidInput) as caught:
        parse_day(raw, field="StartDay")
    assert caught.value.field == "StartDay"


def test_parse_day_accepts_real_date() -> None:
    """A real yyyy-mm-dd date parses to that date."""
    assert parse_day("2024-02-29") == dt.date(2024, 2, 29)


def test_resource_type_parse() -> None:
    """Resource types must be spelled exactly as Twilio spells them."""
    assert ResourceType.parse("Calls") is ResourceType.CALLS
    with pytest.raises(InvalidInput, match="resource_type"):
        ResourceType.parse("calls")


def test_job_sid_check() -> None:
    """SIDs must be JS followed by 32 hex digits."""
    good = "JS" + "0123456789abcdefABCDEF0123456789"
    assert check_job_sid(good) == good
    for bad in ("JS123", "XX" + "0" * 32, "JS" + "g" * 32, None):
        with pytest.raises(InvalidInput):
            check_job_sid(bad)


def test_latest_eligible_day_is_two_days_before_utc_today() -> None:
    """The last eligible end day is today (UTC) minus two, whatever the input's zone."""
    plus_five = dt.timezone(dt.timedelta(hours=5))
    # 2024-03-10 03:00 at +05:00 is still 2024-03-09 in UTC.
    assert latest_eligible_day(dt.datetime(2024, 3, 10, 3, 0, tzinfo=plus_five)) == dt.date(
        2024, 3, 7
    )


def test_friendly_name_is_deterministic_and_prefixed() -> None:
    """Names depend only on their inputs and carry the prefix."""
    start, end = dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    name = friendly_name("orch-x1", ResourceType.CALLS, start, end, 2)
    assert name == "orch-x1-Calls-20240101-20240131-a2"
    assert has_prefix(name, "orch-x1")
    assert not has_prefix(name, "orch-x")
    assert not has_prefix(None, "orch-x1")


def test_live_job_states() -> None:
    """Only submitting and active jobs hold days."""
    assert {s for s in JobState if s.is_live} == {JobState.SUBMITTING, JobState.ACTIVE}
