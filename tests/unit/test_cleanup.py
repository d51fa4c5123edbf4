"""Table tests of cleanup decisions: stale, finished, orphan, resume, and never a foreign job."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from orchestrator.domain.cleanup import (
    CleanupAction,
    CleanupPolicy,
    CleanupReason,
    decide_cleanup,
    owns_name,
)
from orchestrator.domain.model import (
    ArchiveFacts,
    Day,
    DayStatus,
    Job,
    JobState,
    RemoteJob,
    ResourceType,
    friendly_name,
)

NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
PREFIX = "orch-1a2b3c4d"
C = ResourceType.CALLS
S = DayStatus
D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)
ARCHIVE_OFF = CleanupPolicy(stale_after=dt.timedelta(hours=24), archive_enabled=False)
ARCHIVE_ON = CleanupPolicy(stale_after=dt.timedelta(hours=24), archive_enabled=True)
FACTS = ArchiveFacts(
    path="Calls/x.json.gz", size=1, sha256="0" * 64, record_count=1, archived_at=NOW
)


def sid(n: int) -> str:
    return f"JS{n:032x}"


def name(start: dt.date = D1, end: dt.date = D3, attempt: int = 1, prefix: str = PREFIX) -> str:
    return friendly_name(prefix, C, start, end, attempt)


def job(
    state: JobState = JobState.ACTIVE,
    *,
    job_id: int = 1,
    job_sid: str | None = sid(1),
    last_change: dt.timedelta | None = dt.timedelta(hours=1),
    friendly: str | None = None,
) -> Job:
    """Job 1 covers D1..D3; ``last_change`` is how long ago a day of it last changed."""
    return Job(
        id=job_id,
        friendly_name=friendly or name(),
        resource_type=C,
        start_day=D1,
        end_day=D3,
        state=state,
        attempt=1,
        created_at=NOW - dt.timedelta(days=30),
        job_sid=job_sid,
        submitted_at=NOW - dt.timedelta(days=30),
        last_change_at=None if last_change is None else NOW - last_change,
    )


def row(date: dt.date, status: DayStatus, *, job_id: int | None = 1, archived: bool = False) -> Day:
    return Day(
        resource_type=C,
        day=date,
        status=status,
        first_wanted_at=NOW,
        last_changed_at=NOW,
        job_id=job_id,
        archive=FACTS if archived else None,
    )


def rows(*statuses: DayStatus, archived: bool = False) -> list[Day]:
    return [row(d, s, archived=archived) for d, s in zip((D1, D2, D3), statuses, strict=True)]


def remote(job_sid: str, friendly: str | None) -> RemoteJob:
    return RemoteJob(
        job_sid=job_sid, friendly_name=friendly, resource_type=C, start_day=D1, end_day=D3
    )


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (name(), True),
        (name(attempt=12), True),
        (friendly_name(PREFIX, ResourceType.PARTICIPANTS, D1, D1, 1), True),
        (None, False),
        ("", False),
        (PREFIX, False),
        (PREFIX + "-", False),
        # someone else's job
        ("nightly-export", False),
        (name(prefix="acme"), False),
        # our prefix without the dash
        (PREFIX + "Calls-20240101-20240103-a1", False),
        # our prefix as a substring in the middle
        ("x-" + name(), False),
        ("copy of " + name(), False),
        # a longer prefix that starts with ours (another install: "orch-1a2b3c4d-b")
        (name(prefix=PREFIX + "-b"), False),
        # extra text after a name that would be ours
        (name() + "-copy", False),
        (name() + " ", False),
        # not what friendly_name makes
        (PREFIX + "-calls-20240101-20240103-a1", False),
        (PREFIX + "-Calls-2024-01-01-2024-01-03-a1", False),
        (PREFIX + "-Calls-20240101-20240103-a0", False),
        (PREFIX + "-Calls-20240101-20240103", False),
        (PREFIX.upper() + "-Calls-20240101-20240103-a1", False),
    ],
)
def test_owns_name(candidate: str | None, expected: bool) -> None:
    """Only a name friendly_name makes with exactly our prefix is ours."""
    assert owns_name(candidate, PREFIX) is expected


def test_shorter_prefix_does_not_own_a_longer_ones_jobs() -> None:
    """An install with prefix 'orch' never claims jobs named by an install with 'orch-1a2b3c4d'."""
    assert not owns_name(name(), "orch")
    assert not owns_name(name(), "")


# What the job's days become once deleted is settlement.end_job's (tests/unit/test_settlement.py).
Expected = list[CleanupReason]


@pytest.mark.parametrize(
    ("jobs", "days", "policy", "expected"),
    [
        # all days done, archiving off: finished
        (
            [job()],
            rows(S.COMPLETED, S.COMPLETED, S.COMPLETED_EMPTY_RECORDS),
            ARCHIVE_OFF,
            [CleanupReason.FINISHED],
        ),
        # archiving on: a completed day not yet archived keeps the job
        ([job()], rows(S.COMPLETED, S.COMPLETED, S.COMPLETED), ARCHIVE_ON, []),
        ([job(JobState.FINISHED)], rows(S.COMPLETED, S.COMPLETED, S.COMPLETED), ARCHIVE_ON, []),
        (
            [job(JobState.FINISHED)],
            rows(S.COMPLETED, S.COMPLETED, S.COMPLETED, archived=True),
            ARCHIVE_ON,
            [CleanupReason.FINISHED],
        ),
        # an empty-records day is archived too: the job waits for its (empty) file
        (
            [job()],
            [
                row(D1, S.COMPLETED, archived=True),
                row(D2, S.COMPLETED_EMPTY_RECORDS),
                row(D3, S.GAVE_UP),
            ],
            ARCHIVE_ON,
            [],
        ),
        (
            [job()],
            [
                row(D1, S.COMPLETED, archived=True),
                row(D2, S.COMPLETED_EMPTY_RECORDS, archived=True),
                row(D3, S.GAVE_UP),
            ],
            ARCHIVE_ON,
            [CleanupReason.FINISHED],
        ),
        # days the job lost count as done for it (the resubmit logic owns them)
        (
            [job()],
            rows(S.FAILED, S.DELETED_BY_USER_REQUEST, S.COMPLETED),
            ARCHIVE_OFF,
            [CleanupReason.FINISHED],
        ),
        # a day now held by another job does not keep this one
        (
            [job()],
            [row(D1, S.RUNNING, job_id=2), row(D2, S.COMPLETED), row(D3, S.PENDING, job_id=None)],
            ARCHIVE_OFF,
            [CleanupReason.FINISHED],
        ),
        # finished jobs kept when the policy says so
        (
            [job()],
            rows(S.COMPLETED, S.COMPLETED, S.COMPLETED),
            CleanupPolicy(delete_finished=False),
            [],
        ),
        # in flight, changed recently: nothing
        ([job()], rows(S.RUNNING, S.COMPLETED, S.SUBMITTED), ARCHIVE_OFF, []),
        # in flight, no change for 23h59m: not stale yet
        (
            [job(last_change=dt.timedelta(hours=24) - dt.timedelta(minutes=1))],
            rows(S.RUNNING, S.COMPLETED, S.SUBMITTED),
            ARCHIVE_OFF,
            [],
        ),
        # no change for stale_after: stale; its in-flight days return to Pending, lost ones do not
        (
            [job(last_change=dt.timedelta(hours=24))],
            rows(S.RUNNING, S.FAILED, S.ERROR_DURING_RUN),
            ARCHIVE_OFF,
            [CleanupReason.STALE],
        ),
        (
            [job(last_change=dt.timedelta(days=3))],
            rows(S.UNKNOWN, S.COMPLETED, S.SUBMITTED),
            ARCHIVE_OFF,
            [CleanupReason.STALE],
        ),
        # never changed: staleness counts from submission
        (
            [job(last_change=None)],
            rows(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
            ARCHIVE_OFF,
            [CleanupReason.STALE],
        ),
        # stale, but a completed day is not archived yet: wait for the archive
        (
            [job(last_change=dt.timedelta(days=3))],
            rows(S.RUNNING, S.COMPLETED, S.RUNNING),
            ARCHIVE_ON,
            [],
        ),
        # a finished-state job is never stale
        (
            [job(JobState.FINISHED, last_change=dt.timedelta(days=3))],
            rows(S.COMPLETED, S.COMPLETED, S.COMPLETED),
            ARCHIVE_ON,
            [],
        ),
        # an unconfirmed delete is sent again
        (
            [job(JobState.DELETING)],
            rows(S.RUNNING, S.RUNNING, S.RUNNING),
            ARCHIVE_ON,
            [CleanupReason.RESUME],
        ),
        # no SID yet, or already gone: nothing to delete
        (
            [job(JobState.SUBMITTING, job_sid=None, last_change=None)],
            rows(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
            ARCHIVE_OFF,
            [],
        ),
        ([job(JobState.DELETED)], rows(S.COMPLETED, S.COMPLETED, S.COMPLETED), ARCHIVE_OFF, []),
        (
            [job(JobState.LOST, last_change=dt.timedelta(days=9))],
            rows(S.RUNNING, S.RUNNING, S.RUNNING),
            ARCHIVE_OFF,
            [],
        ),
        # a day of the range with no row at all: unknown, keep the job
        ([job()], [row(D1, S.COMPLETED), row(D3, S.COMPLETED)], ARCHIVE_OFF, []),
        # our row but a name without our prefix (prefix changed since): never deleted
        (
            [job(friendly=name(prefix="old"))],
            rows(S.COMPLETED, S.COMPLETED, S.COMPLETED),
            ARCHIVE_OFF,
            [],
        ),
        (
            [job(friendly=name(prefix="old"), last_change=dt.timedelta(days=9))],
            rows(S.RUNNING, S.RUNNING, S.RUNNING),
            ARCHIVE_OFF,
            [],
        ),
    ],
)
def test_decide_cleanup_our_jobs(
    jobs: list[Job], days: list[Day], policy: CleanupPolicy, expected: Expected
) -> None:
    """Our jobs are deleted when finished and safe, stale, or left mid-delete; otherwise kept."""
    actions = decide_cleanup(
        jobs,
        days,
        [],
        known_names={j.friendly_name for j in jobs},
        policy=policy,
        prefix=PREFIX,
        now=NOW,
    )
    assert [a.reason for a in actions] == expected
    assert all(a.job_id == 1 and a.job_sid == sid(1) for a in actions)


def test_orphans() -> None:
    """A remote job with our name that the store never recorded is an orphan; no other is."""
    remote_jobs = [
        remote(sid(9), name(D2, D2)),  # ours, unknown: orphan
        remote(sid(8), name()),  # known by name
        remote(sid(1), name(D3, D3)),  # the SID of a job we hold
        remote(sid(7), None),
        remote(sid(6), "someone-else"),
        remote(sid(5), "x-" + name(D2, D2)),
        remote(sid(4), name(D2, D2, prefix=PREFIX + "-b")),
        remote(sid(3), name(D1, D1, prefix="orch")),
    ]
    actions = decide_cleanup(
        [job()],
        rows(S.RUNNING, S.RUNNING, S.RUNNING),
        remote_jobs,
        known_names={name()},
        policy=ARCHIVE_OFF,
        prefix=PREFIX,
        now=NOW,
    )
    assert actions == [
        CleanupAction(
            reason=CleanupReason.ORPHAN, job_sid=sid(9), friendly_name=name(D2, D2), resource_type=C
        )
    ]
    off = CleanupPolicy(delete_orphans=False)
    assert (
        decide_cleanup([], [], remote_jobs, known_names=(), policy=off, prefix=PREFIX, now=NOW)
        == []
    )


def test_remote_name_not_ours_blocks_delete() -> None:
    """If Twilio lists our job's SID under a foreign name, the job is not deleted."""
    actions = decide_cleanup(
        [job()],
        rows(S.COMPLETED, S.COMPLETED, S.COMPLETED),
        [remote(sid(1), "renamed-by-someone")],
        known_names={name()},
        policy=ARCHIVE_OFF,
        prefix=PREFIX,
        now=NOW,
    )
    assert actions == []


def test_order_is_ours_by_id_then_orphans_by_sid() -> None:
    """Actions come in a fixed order: our jobs by id, then orphans by SID."""
    jobs = [
        job(job_id=2, job_sid=sid(2), friendly=name(D1, D3, 2)),
        job(job_id=1, job_sid=sid(1)),
    ]
    days = [row(d, S.COMPLETED, job_id=None) for d in (D1, D2, D3)]
    remote_jobs = [remote(sid(30), name(D1, D1, 9)), remote(sid(20), name(D2, D2, 9))]
    actions = decide_cleanup(
        jobs,
        days,
        remote_jobs,
        known_names={j.friendly_name for j in jobs},
        policy=ARCHIVE_OFF,
        prefix=PREFIX,
        now=NOW,
    )
    assert [(a.reason, a.job_sid) for a in actions] == [
        (CleanupReason.FINISHED, sid(1)),
        (CleanupReason.FINISHED, sid(2)),
        (CleanupReason.ORPHAN, sid(20)),
        (CleanupReason.ORPHAN, sid(30)),
    ]


FOREIGN_NAMES = [
    None,
    "",
    "nightly",
    PREFIX,
    PREFIX + "Calls-20240101-20240103-a1",
    "x-" + name(),
    name(prefix=PREFIX + "-b"),
    name(prefix="orch"),
    name() + "-copy",
]


def test_foreign_jobs_are_never_deleted_whatever_happens() -> None:
    """Across every policy and state, a job whose name is not ours never gets an action."""
    policies = [
        CleanupPolicy(
            stale_after=dt.timedelta(seconds=1),
            delete_finished=f,
            delete_orphans=o,
            archive_enabled=a,
        )
        for f, o, a in itertools.product((True, False), repeat=3)
    ]
    statuses = [S.COMPLETED, S.RUNNING, S.FAILED, S.GAVE_UP]
    for policy, state, status, foreign in itertools.product(
        policies, JobState, statuses, FOREIGN_NAMES
    ):
        our_row = job(state, friendly=foreign or "nightly", last_change=dt.timedelta(days=30))
        remote_jobs = [remote(sid(n), n_name) for n, n_name in enumerate(FOREIGN_NAMES, start=100)]
        remote_jobs.append(remote(sid(1), foreign))
        actions = decide_cleanup(
            [our_row],
            rows(status, status, status, archived=True),
            remote_jobs,
            known_names=(),
            policy=policy,
            prefix=PREFIX,
            now=NOW,
        )
        assert actions == [], (policy, state, status, foreign)


H = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("last_change", "progress", "polled", "expected"),
    [
        # no day change for 30 h, but it moved up the queue 1 h ago: not stale
        (30 * H, H, None, False),
        # no progress of any kind for 24 h, looked at since: stale
        (30 * H, 24 * H, 0 * H, True),
        # no progress for 25 h, but last looked at before the window closed: judged later
        (30 * H, 25 * H, 2 * H, False),
        # no progress for 25 h, looked at once the window closed: stale
        (30 * H, 25 * H, H, True),
        # a row from before progress was recorded: the day change alone counts
        (30 * H, None, 0 * H, True),
        (2 * H, None, 0 * H, False),
    ],
)
def test_stale_means_no_progress_of_any_kind(
    last_change: dt.timedelta,
    progress: dt.timedelta | None,
    polled: dt.timedelta | None,
    expected: bool,
) -> None:
    """A job is stale only with no day change and no fall in queue position for stale_after,
    as seen by a poll after the window closed."""
    queued = dataclasses.replace(
        job(last_change=last_change),
        last_progress_at=None if progress is None else NOW - progress,
        last_polled_at=None if polled is None else NOW - polled,
    )
    actions = decide_cleanup(
        [queued],
        rows(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
        [],
        known_names={queued.friendly_name},
        policy=ARCHIVE_OFF,
        prefix=PREFIX,
        now=NOW,
    )
    assert [a.reason for a in actions] == ([CleanupReason.STALE] if expected else [])
