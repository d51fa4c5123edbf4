"""What one poll, one delete or one ending writes: pure decisions, table by table."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from orchestrator.domain.model import (
    DayStatus,
    DetailGroup,
    Job,
    JobState,
    ObservedBy,
    RemoteJob,
    ResourceType,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.polling import PollFacts, PollPolicy, next_poll_at
from orchestrator.domain.settlement import (
    JOB_ENDINGS,
    HeldDay,
    Release,
    end_job,
    moved_up,
    resubmit_release,
    settle_failed_poll,
    settle_poll,
    start_deleting,
)
from orchestrator.errors import InvalidInput

S = DayStatus
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
EARLIER = NOW - dt.timedelta(hours=2)
D1, D2, D3 = (dt.date(2026, 2, d) for d in (1, 2, 3))
SID = "JS" + "ab" * 16
DELAY = dt.timedelta(minutes=15)
POLICY = ResubmitPolicy(max_resubmits=2, delay=DELAY)


class RecordingStrategy:
    """A poll strategy that answers ``now + 7 min`` and keeps the facts it was shown."""

    def __init__(self) -> None:
        self.seen: list[tuple[Job, PollFacts, float]] = []

    def next_poll_at(
        self, job: Job, facts: PollFacts, now: dt.datetime, rand: float
    ) -> dt.datetime:
        self.seen.append((job, facts, rand))
        return now + dt.timedelta(minutes=7)


def _job(state: JobState = JobState.ACTIVE, poll_count: int = 3) -> Job:
    return Job(
        id=1,
        friendly_name="bx-Messages-20260201-20260203-a1",
        resource_type=ResourceType.MESSAGES,
        start_day=D1,
        end_day=D3,
        state=state,
        attempt=1,
        created_at=EARLIER,
        job_sid=SID,
        submitted_at=EARLIER,
        last_change_at=EARLIER,
        next_poll_at=NOW,
        poll_count=poll_count,
        queue_position=4,
        last_error="HTTP 500 earlier",
    )


def _held(*statuses: DayStatus, resubmits: int = 0) -> list[HeldDay]:
    days = (D1, D2, D3)[: len(statuses)]
    return [HeldDay(day, status, resubmits) for day, status in zip(days, statuses, strict=True)]


def _remote(
    *groups: tuple[DayStatus, tuple[dt.date, ...]], position: int | None = None
) -> RemoteJob:
    return RemoteJob(
        job_sid=SID,
        friendly_name=None,
        resource_type=ResourceType.MESSAGES,
        start_day=D1,
        end_day=D3,
        details=tuple(DetailGroup(status, status.value, days) for status, days in groups),
        job_queue_position=position,
        estimated_completion_time=NOW + dt.timedelta(hours=1),
    )


Steps = list[tuple[dt.date, DayStatus, DayStatus, ObservedBy]]


@pytest.mark.parametrize(
    ("held", "reported", "steps", "releases", "state"),
    [
        # nothing new: no write but the bookkeeping
        (_held(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED), [(S.SUBMITTED, (D1, D2, D3))], [], {}, "a"),
        # progress on one day
        (
            _held(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
            [(S.RUNNING, (D1,)), (S.SUBMITTED, (D2, D3))],
            [(D1, S.SUBMITTED, S.RUNNING, ObservedBy.POLL)],
            {},
            "a",
        ),
        # a failure with budget left: back to Pending after the delay, counted
        (
            _held(S.RUNNING, S.SUBMITTED, S.SUBMITTED, resubmits=1),
            [(S.FAILED, (D1,))],
            [
                (D1, S.RUNNING, S.FAILED, ObservedBy.POLL),
                (D1, S.FAILED, S.PENDING, ObservedBy.RESUBMIT),
            ],
            {D1: Release(S.PENDING, 1, NOW + DELAY)},
            "a",
        ),
        # a failure past the budget: GaveUp, counted, no delay
        (
            _held(S.RUNNING, S.SUBMITTED, S.SUBMITTED, resubmits=2),
            [(S.FAILED, (D1,))],
            [
                (D1, S.RUNNING, S.FAILED, ObservedBy.POLL),
                (D1, S.FAILED, S.GAVE_UP, ObservedBy.RESUBMIT),
            ],
            {D1: Release(S.GAVE_UP, 1, None)},
            "a",
        ),
        # deleted on Twilio's side: not the day's fault, not counted even at the budget
        (
            _held(S.RUNNING, S.SUBMITTED, S.SUBMITTED, resubmits=2),
            [(S.DELETED_BY_USER_REQUEST, (D1,)), (S.RUNNING_TO_BE_DELETED, (D2,))],
            [
                (D1, S.RUNNING, S.DELETED_BY_USER_REQUEST, ObservedBy.POLL),
                (D1, S.DELETED_BY_USER_REQUEST, S.PENDING, ObservedBy.RESUBMIT),
                (D2, S.SUBMITTED, S.RUNNING_TO_BE_DELETED, ObservedBy.POLL),
                (D2, S.RUNNING_TO_BE_DELETED, S.PENDING, ObservedBy.RESUBMIT),
            ],
            {D1: Release(S.PENDING, 0, NOW + DELAY), D2: Release(S.PENDING, 0, NOW + DELAY)},
            "a",
        ),
        # every day a success: finished
        (
            _held(S.RUNNING, S.COMPLETED, S.SUBMITTED),
            [(S.COMPLETED, (D1, D2)), (S.COMPLETED_EMPTY_RECORDS, (D3,))],
            [
                (D1, S.RUNNING, S.COMPLETED, ObservedBy.POLL),
                (D3, S.SUBMITTED, S.COMPLETED_EMPTY_RECORDS, ObservedBy.POLL),
            ],
            {},
            "f",
        ),
        # the last open day failed: the rest are successes, so the job is finished
        (
            _held(S.COMPLETED, S.COMPLETED, S.RUNNING),
            [(S.FAILED, (D3,))],
            [
                (D3, S.RUNNING, S.FAILED, ObservedBy.POLL),
                (D3, S.FAILED, S.PENDING, ObservedBy.RESUBMIT),
            ],
            {D3: Release(S.PENDING, 1, NOW + DELAY)},
            "f",
        ),
        # an unknown status is never recorded; a day Twilio leaves out keeps its status
        (
            _held(S.RUNNING, S.SUBMITTED, S.SUBMITTED),
            [(S.UNKNOWN, (D1,)), (S.RUNNING, (D2,))],
            [(D2, S.SUBMITTED, S.RUNNING, ObservedBy.POLL)],
            {},
            "a",
        ),
    ],
)
def test_settle_poll(
    held: list[HeldDay],
    reported: list[tuple[DayStatus, tuple[dt.date, ...]]],
    steps: Steps,
    releases: dict[dt.date, Release],
    state: str,
) -> None:
    """A poll's changes, releases and finish follow the resubmit policy and Twilio's report."""
    strategy = RecordingStrategy()
    settled = settle_poll(
        _job(),
        held,
        remote=_remote(*reported),
        resubmit=POLICY,
        poll=strategy,
        rand=0.25,
        now=NOW,
    )
    assert [(c.day, c.from_status, c.to_status, c.observed_by) for c in settled.changes] == steps
    assert all(c.observed_at == NOW and c.job_sid == SID for c in settled.changes)
    assert dict(settled.releases) == releases
    job = settled.job
    if state == "f":
        assert (job.state, job.finished_at, job.next_poll_at) == (JobState.FINISHED, NOW, None)
    else:
        assert (job.state, job.next_poll_at) == (JobState.ACTIVE, NOW + dt.timedelta(minutes=7))
    assert job.poll_count == (0 if steps else 4)
    assert job.last_change_at == (NOW if steps else EARLIER)
    assert (job.last_polled_at, job.eta) == (NOW, NOW + dt.timedelta(hours=1))


def test_settle_poll_shows_the_strategy_this_polls_facts() -> None:
    """The next poll is chosen from the answer's ETA and queue position and the reset count."""
    strategy = RecordingStrategy()
    settle_poll(
        _job(poll_count=5),
        _held(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
        remote=_remote((S.SUBMITTED, (D1, D2, D3)), position=2),
        resubmit=POLICY,
        poll=strategy,
        rand=0.5,
        now=NOW,
    )
    [(job, facts, rand)] = strategy.seen
    assert (job.id, rand) == (1, 0.5)
    assert facts == PollFacts(
        polls_since_change=6,
        eta=NOW + dt.timedelta(hours=1),
        queue_position=2,
        submitted_at=EARLIER,
    )


def test_settle_poll_with_the_daemon_policy_keeps_its_schedule() -> None:
    """With PollPolicy as the strategy the next poll is the policy's own next_poll_at."""
    policy = PollPolicy()
    settled = settle_poll(
        _job(),
        _held(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
        remote=_remote((S.SUBMITTED, (D1, D2, D3))),
        resubmit=POLICY,
        poll=policy,
        rand=0.0,
        now=NOW,
    )
    facts = PollFacts(4, eta=NOW + dt.timedelta(hours=1), submitted_at=EARLIER)
    assert settled.job.next_poll_at == next_poll_at(facts, policy, NOW, 0.0)


def test_a_job_no_longer_active_is_not_finished_again_nor_scheduled() -> None:
    """A deleting job's late answer records its days but neither finishes nor schedules it."""
    settled = settle_poll(
        _job(JobState.DELETING),
        _held(S.RUNNING, S.COMPLETED, S.COMPLETED),
        remote=_remote((S.COMPLETED, (D1, D2, D3))),
        resubmit=POLICY,
        poll=RecordingStrategy(),
        rand=0.0,
        now=NOW,
    )
    assert [c.day for c in settled.changes] == [D1]
    assert (settled.job.state, settled.job.next_poll_at) == (JobState.DELETING, None)


def test_a_failed_poll_writes_bookkeeping_only() -> None:
    """No answer: no day changes, one more poll counted, the error kept, ETA hints unused."""
    strategy = RecordingStrategy()
    settled = settle_failed_poll(
        _job(), _held(S.RUNNING), error="HTTP 503", poll=strategy, rand=0.1, now=NOW
    )
    assert settled.changes == () and dict(settled.releases) == {}
    job = settled.job
    assert (job.poll_count, job.last_error, job.last_polled_at) == (4, "HTTP 503", NOW)
    assert (job.queue_position, job.eta, job.last_change_at) == (4, None, EARLIER)
    assert job.next_poll_at == NOW + dt.timedelta(minutes=7)
    [(_, facts, _)] = strategy.seen
    assert facts == PollFacts(polls_since_change=4, submitted_at=EARLIER)


@pytest.mark.parametrize(
    ("lost_as", "resubmits", "expected"),
    [
        (S.FAILED, 0, Release(S.PENDING, 1, NOW + DELAY)),
        (S.FAILED, 1, Release(S.PENDING, 1, NOW + DELAY)),
        (S.FAILED, 2, Release(S.GAVE_UP, 1, None)),
        (S.DELETED_BY_USER_REQUEST, 2, Release(S.PENDING, 0, NOW + DELAY)),
        (S.RUNNING_TO_BE_DELETED, 5, Release(S.GAVE_UP, 0, None)),
    ],
)
def test_resubmit_release(lost_as: DayStatus, resubmits: int, expected: Release) -> None:
    """Only a failure counts; past max_resubmits a day is given up."""
    assert resubmit_release(lost_as, resubmits, POLICY, NOW) == expected


def test_max_resubmits_zero_gives_up_at_the_first_failure() -> None:
    """With no resubmits allowed the first failure is final."""
    assert resubmit_release(S.FAILED, 0, ResubmitPolicy(0, DELAY), NOW).status is S.GAVE_UP


def test_resubmit_policy_validates() -> None:
    """A negative budget or delay is refused with the key named."""
    with pytest.raises(InvalidInput, match="max_resubmits"):
        ResubmitPolicy(max_resubmits=-1)
    with pytest.raises(InvalidInput, match="resubmit_delay"):
        ResubmitPolicy(delay=-DELAY)


@pytest.mark.parametrize(
    ("held", "released", "steps"),
    [
        # a stale job: days in flight go back, successes stay
        (
            _held(S.COMPLETED, S.RUNNING, S.SUBMITTED),
            [D2, D3],
            [(D2, S.RUNNING, S.PENDING), (D3, S.SUBMITTED, S.PENDING)],
        ),
        # a job lost before Twilio answered: its days were still Pending (no transition)
        (_held(S.PENDING, S.PENDING), [D1, D2], []),
        # a finished job: nothing to free
        (_held(S.COMPLETED, S.COMPLETED_EMPTY_RECORDS), [], []),
    ],
)
def test_end_job_frees_what_is_not_a_success(
    held: list[HeldDay], released: list[dt.date], steps: list[tuple[dt.date, S, S]]
) -> None:
    """Every held day that is not a success goes back to Pending, uncounted, at once."""
    settled = end_job(
        _job(),
        held,
        new_state=JobState.DELETED,
        observed_by=ObservedBy.CLEANUP,
        now=NOW,
        reason="cleanup: stale",
    )
    assert sorted(settled.releases) == released
    assert all(r == Release(S.PENDING, 0, None) for r in settled.releases.values())
    assert [(c.day, c.from_status, c.to_status) for c in settled.changes] == steps
    assert all(c.observed_by is ObservedBy.CLEANUP for c in settled.changes)
    job = settled.job
    assert (job.state, job.deleted_at, job.next_poll_at) == (JobState.DELETED, NOW, None)
    assert (job.last_error, settled.reason) == ("cleanup: stale", "cleanup: stale")


def test_a_lost_job_keeps_no_deletion_time_and_its_old_error_without_reason() -> None:
    """Lost is not deleted; without a reason the last error stays."""
    settled = end_job(
        _job(), _held(S.RUNNING), new_state=JobState.LOST, observed_by=ObservedBy.POLL, now=NOW
    )
    assert (settled.job.state, settled.job.deleted_at) == (JobState.LOST, None)
    assert settled.job.last_error == "HTTP 500 earlier"


@pytest.mark.parametrize("before", list(JobState))
@pytest.mark.parametrize("after", [JobState.DELETED, JobState.LOST, JobState.DELETING])
def test_the_job_ending_table(before: JobState, after: JobState) -> None:
    """A job moves only along JOB_ENDINGS; anything else is refused, naming both states."""
    job = dataclasses.replace(_job(), state=before)
    if after is JobState.DELETING:

        def decide() -> object:
            return start_deleting(job, [], now=NOW)
    else:

        def decide() -> object:
            return end_job(job, [], new_state=after, observed_by=ObservedBy.CLEANUP, now=NOW)

    if after in JOB_ENDINGS[before]:
        decide()
    else:
        with pytest.raises(InvalidInput, match=f"cannot go from {before} to {after}"):
            decide()


def test_the_ending_table_forbids_what_the_lifecycle_forbids() -> None:
    """A job without a SID can only be lost; a deleted job only stays deleted."""
    assert JOB_ENDINGS[JobState.SUBMITTING] == {JobState.LOST}
    assert JOB_ENDINGS[JobState.DELETED] == {JobState.DELETED}
    with pytest.raises(InvalidInput, match="does not end a job"):
        end_job(_job(), [], new_state=JobState.ACTIVE, observed_by=ObservedBy.OPERATOR, now=NOW)


def test_start_deleting_keeps_the_days_with_the_job() -> None:
    """Intent before effect: deleting, not polled, every day still held, nothing written."""
    settled = start_deleting(
        _job(), _held(S.COMPLETED, S.RUNNING, S.SUBMITTED), now=NOW, reason="cleanup: stale"
    )
    assert settled.changes == () and dict(settled.releases) == {}
    job = settled.job
    assert (job.state, job.next_poll_at, job.last_error) == (
        JobState.DELETING,
        None,
        "cleanup: stale",
    )
    assert job.deleted_at is None


@pytest.mark.parametrize(
    ("stored", "reported", "expected"),
    [
        (4, 3, True),  # moved up the queue
        (1, 0, True),  # left the queue: running
        (4, 4, False),  # waiting in place
        (None, 3, False),  # first position seen: nothing to compare
        (3, None, False),  # the nullable field missing says nothing
        (None, None, False),
    ],
)
def test_moved_up(stored: int | None, reported: int | None, expected: bool) -> None:
    """Only a fall between two reported positions is progress in the queue."""
    assert moved_up(stored, reported) is expected


@pytest.mark.parametrize(
    ("remote", "progress_at"),
    [
        # position 4 -> 2, no day change: progress
        (_remote((S.SUBMITTED, (D1, D2, D3)), position=2), NOW),
        # position 4 -> 4, no day change: none
        (_remote((S.SUBMITTED, (D1, D2, D3)), position=4), None),
        # position 4 -> 5 (should not happen): none
        (_remote((S.SUBMITTED, (D1, D2, D3)), position=5), None),
        # a day changed, position gone: progress
        (_remote((S.RUNNING, (D1,)), (S.SUBMITTED, (D2, D3))), NOW),
    ],
)
def test_settle_poll_records_progress(remote: RemoteJob, progress_at: dt.datetime | None) -> None:
    """A poll records progress when a day changed or the queue position fell, and only then."""
    settled = settle_poll(
        _job(),
        _held(S.SUBMITTED, S.SUBMITTED, S.SUBMITTED),
        remote=remote,
        resubmit=POLICY,
        poll=PollPolicy(),
        rand=0.5,
        now=NOW,
    )
    assert settled.job.last_progress_at == progress_at
