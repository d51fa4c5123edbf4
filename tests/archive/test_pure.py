"""Pure parts of archiving: the layout, the removal order, the retry decisions, the verifier,
the verify-archive report."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from pathlib import Path, PurePosixPath

import pytest

from orchestrator.archive.layout import archive_path, check_template, relative_path
from orchestrator.archive.verify import MAX_LINE_BYTES, StreamVerifier
from orchestrator.domain.archiving import (
    ArchiveAttempts,
    FailureKind,
    Next,
    RetryPolicy,
    after_failure,
    backoff,
    decide_failure,
    order_by_deadline,
    removal_deadline,
)
from orchestrator.domain.model import Day, DayKey, DayStatus, ResourceType
from orchestrator.errors import DownloadCorrupt, InvalidInput
from orchestrator.report import render_verify_report
from orchestrator.workflows.verify_archive import FileProblem, Problem, VerifyReport

T = "{resource_type}/{yyyy}/{mm}/{day}.json.gz"
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("template", "resource_type", "day", "expected"),
    [
        (T, "Calls", dt.date(2024, 1, 31), "Calls/2024/01/2024-01-31.json.gz"),
        (T, ResourceType.MESSAGES, "2024-12-01", "Messages/2024/12/2024-12-01.json.gz"),
        (
            "{resource_type}-{yyyy}{mm}{dd}.gz",
            "Conferences",
            "2024-02-29",
            "Conferences-20240229.gz",
        ),
    ],
)
def test_relative_path_fills_the_template(
    template: str, resource_type: str, day: dt.date | str, expected: str
) -> None:
    """Known placeholders fill in; the result is a plain relative path."""
    assert relative_path(template, resource_type, day) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "day",
    ["../../etc/passwd", "2024-01-01/../../x", "2024-13-01", "2024-1-1", "", "2024-01-01\x00", 7],
)
def test_a_bad_day_string_never_becomes_a_path(day: object) -> None:
    """A day that is not a strict yyyy-mm-dd date is refused before any path is built."""
    with pytest.raises(InvalidInput):
        relative_path(T, "Calls", day)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "template",
    [
        "{resource_type}/{day.__class__}.gz",
        "{resource_type}/{day!r}.gz",
        "{resource_type}/{day:>40}.gz",
        "{resource_type}/{user}/{day}.gz",
        "{day}.gz",
        "{resource_type}/../{day}.gz",
        "/{resource_type}/{day}.gz",
        "{resource_type}//{day}.gz",
        "{resource_type}/.hidden/{day}.gz",
        "{resource_type}/{day",
    ],
)
def test_templates_with_anything_but_plain_known_placeholders_are_refused(template: str) -> None:
    """Attribute access, conversions, specs, unknown names and escaping paths are refused."""
    with pytest.raises(InvalidInput):
        relative_path(template, "Calls", "2024-01-01")


def test_unknown_resource_type_is_refused_and_the_path_stays_under_the_directory(
    tmp_path: Path,
) -> None:
    """Only Twilio's resource types make paths; the joined path is under the directory."""
    with pytest.raises(InvalidInput):
        archive_path(tmp_path, T, "../Calls", "2024-01-01")
    path = archive_path(tmp_path, T, "Calls", "2024-01-01")
    assert path.is_relative_to(tmp_path)
    assert check_template(T) == T


def _day(kind: ResourceType, day: int, completed: dt.datetime) -> Day:
    return Day(
        resource_type=kind,
        day=dt.date(2026, 2, day),
        status=DayStatus.COMPLETED,
        first_wanted_at=NOW,
        last_changed_at=completed,
    )


def test_due_days_go_soonest_removal_first() -> None:
    """Ordered by completion + 7 days, earlier when Twilio says it made the file earlier."""
    a = _day(ResourceType.CALLS, 1, NOW)
    b = _day(ResourceType.CALLS, 2, NOW - dt.timedelta(hours=5))
    c = _day(ResourceType.MESSAGES, 3, NOW + dt.timedelta(hours=1))
    made_early = {c.key: dt.date(2026, 2, 20)}
    assert order_by_deadline([a, b, c]) == [b, a, c]
    assert order_by_deadline([a, b, c], made_early) == [c, b, a]
    assert removal_deadline(NOW) == NOW + dt.timedelta(days=7)
    assert removal_deadline(NOW, dt.date(2026, 2, 27)) == dt.datetime(2026, 3, 6, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("kind", "attempt", "expected"),
    [
        (FailureKind.CORRUPT, 1, Next.RETRY_NOW),
        (FailureKind.CORRUPT, 3, Next.LATER),
        (FailureKind.TRANSPORT, 2, Next.RETRY_NOW),
        (FailureKind.EXPIRED_URL, 3, Next.LATER),
        (FailureKind.WRITE, 1, Next.LATER),
        (FailureKind.GONE, 1, Next.MAKE_AGAIN),
    ],
)
def test_failure_decisions(kind: FailureKind, attempt: int, expected: Next) -> None:
    """Bounded retries within a pass; a full disk and a gone file are not retried at once."""
    assert decide_failure(kind, attempt, RetryPolicy(attempts_per_pass=3)) is expected


def test_backoff_doubles_up_to_the_cap() -> None:
    """1, 2, 4 ... minutes, never more than the cap; jitter only lengthens."""
    policy = RetryPolicy(first_delay=dt.timedelta(minutes=1), max_delay=dt.timedelta(minutes=10))
    assert [backoff(n, policy).total_seconds() / 60 for n in (1, 2, 3, 4, 5, 99)] == [
        1,
        2,
        4,
        8,
        10,
        10,
    ]
    assert backoff(1, policy, 0.5) == dt.timedelta(minutes=1.05)
    with pytest.raises(ValueError):
        RetryPolicy(attempts_per_pass=0)


MINUTE = dt.timedelta(minutes=1)
TEN = RetryPolicy(first_delay=MINUTE, max_delay=10 * MINUTE, jitter=0.1)


@pytest.mark.parametrize(
    ("previous", "rand", "expected"),
    [
        (ArchiveAttempts(0, None, None), 0.0, ArchiveAttempts(1, NOW + MINUTE, "e")),
        (ArchiveAttempts(0, None, None), 0.5, ArchiveAttempts(1, NOW + 1.05 * MINUTE, "e")),
        (ArchiveAttempts(1, NOW, "old"), 0.0, ArchiveAttempts(2, NOW + 2 * MINUTE, "e")),
        (ArchiveAttempts(3, None, "old"), 0.0, ArchiveAttempts(4, NOW + 8 * MINUTE, "e")),
        (ArchiveAttempts(4, NOW, "old"), 0.0, ArchiveAttempts(5, NOW + 10 * MINUTE, "e")),
        (ArchiveAttempts(40, NOW, "old"), 0.99, ArchiveAttempts(41, NOW + 10.99 * MINUTE, "e")),
    ],
)
def test_a_failed_pass_counts_one_more_and_backs_off_from_now(
    previous: ArchiveAttempts, rand: float, expected: ArchiveAttempts
) -> None:
    """One more failure; the next attempt waits backoff(failures) after now; the error is new."""
    assert after_failure(previous, NOW, TEN, rand, "e") == expected


def _lines(n: int) -> bytes:
    return b"".join(json.dumps({"i": i, "pad": "x" * 50}).encode() + b"\n" for i in range(n))


def _feed(data: bytes, size: int, **kwargs: bool) -> tuple[int, int]:
    verifier = StreamVerifier(**kwargs)
    for start in range(0, len(data), size):
        verifier.feed(data[start : start + size])
    facts = verifier.finish()
    return facts.size, facts.record_count


@pytest.mark.parametrize("chunk", [1, 13, 4096, 10**7])
def test_the_verifier_counts_records_across_chunks_and_gzip_members(chunk: int) -> None:
    """Lines split anywhere and concatenated gzip members count right; sha256 is of the bytes."""
    data = gzip.compress(_lines(300)) + gzip.compress(_lines(5) + b'{"last": true}')
    assert _feed(data, chunk) == (len(data), 306)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(_lines(100))[:-9], "truncated"),
        (gzip.compress(_lines(3) + b"not json\n"), "line 4 is not JSON"),
        (gzip.compress(b"[1, 2]\n"), "not an object"),
        (gzip.compress(_lines(2)) + b"garbage", "not a valid gzip"),
        (zlib.compress(_lines(2)), "not a valid gzip"),
        (b"", "empty"),
        (gzip.compress(_lines(2)) + gzip.compress(_lines(2))[:15], "truncated"),
    ],
)
def test_the_verifier_refuses_broken_files(data: bytes, message: str) -> None:
    """Truncation, non-JSON or non-object lines, trailing garbage, no gzip, no bytes."""
    with pytest.raises(DownloadCorrupt, match=message):
        _feed(data, 7)


def test_an_empty_gzip_and_an_allowed_empty_body_have_no_records() -> None:
    """A gzip of no lines is 0 records; zero bytes only when the day is known to be empty."""
    assert _feed(gzip.compress(b""), 5) == (len(gzip.compress(b"")), 0)
    assert _feed(b"", 5, allow_empty=True) == (0, 0)


def test_a_gzip_bomb_line_is_refused_in_bounded_memory() -> None:
    """A never-ending line is cut off at the line limit instead of filling memory."""
    bomb = gzip.compress(b"x" * (MAX_LINE_BYTES + 10))
    with pytest.raises(DownloadCorrupt, match="longer than"):
        _feed(bomb, 65536)


def test_due_order_helper_keys_are_day_keys() -> None:
    """The created-on map is keyed by DayKey (resource type, day)."""
    a = _day(ResourceType.CALLS, 1, NOW)
    assert order_by_deadline([a], {DayKey(ResourceType.CALLS, a.day): a.day}) == [a]


def test_the_verify_report_names_each_problem_then_sums_up() -> None:
    """One line per problem (kind, day, path, detail), then the counts; a clean run is one line."""
    gone = FileProblem(ResourceType.CALLS, dt.date(2024, 5, 1), "/a/c.gz", Problem.MISSING, "gone")
    odd = FileProblem(
        ResourceType.MESSAGES, dt.date(2024, 5, 2), "/a/s.gz", Problem.UNREADABLE, "EIO"
    )
    report = VerifyReport(checked=3, ok=1, problems=(gone, odd))
    assert render_verify_report(report).splitlines() == [
        "missing: Calls 2024-05-01 /a/c.gz (gone)",
        "unreadable: Messages 2024-05-02 /a/s.gz (EIO)",
        "checked 3 archived files: 1 ok, 1 missing, 1 changed or unreadable",
    ]
    clean = render_verify_report(VerifyReport(checked=0, ok=0, problems=()))
    assert clean == "checked 0 archived files: 0 ok, 0 missing, 0 changed or unreadable"
