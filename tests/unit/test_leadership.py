"""Table tests of leadership: the [ha] policy's bounds, the lease, and how a leader is shown."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.leadership import HaPolicy, Leader, Lease, standby_status
from orchestrator.errors import InvalidInput

SECOND = dt.timedelta(seconds=1)


def test_defaults_try_every_five_seconds_on_a_ten_second_lease() -> None:
    """The defaults: a try every 5 s, a 10 s lease, a heartbeat every 2 s, 5 s to confirm."""
    policy = HaPolicy()
    assert policy.takeover_seconds == 5
    assert policy.lease_seconds == 10
    assert policy.heartbeat_seconds == 2
    assert policy.confirm_timeout_seconds == 5


@pytest.mark.parametrize(
    ("takeover", "lease", "field"),
    [
        (0.5 * SECOND, 10 * SECOND, "takeover_interval"),
        (2 * dt.timedelta(hours=1), 10 * SECOND, "takeover_interval"),
        (5 * SECOND, 2 * SECOND, "lease"),
        (5 * SECOND, dt.timedelta(minutes=11), "lease"),
    ],
)
def test_out_of_bounds_durations_are_refused_by_name(
    takeover: dt.timedelta, lease: dt.timedelta, field: str
) -> None:
    """A takeover interval or lease outside its bounds names itself."""
    with pytest.raises(InvalidInput) as raised:
        HaPolicy(takeover_interval=takeover, lease=lease)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("now", "holds"),
    [
        (100.0, True),  # the moment the confirmation started
        (105.0, True),
        (109.999, True),
        (110.0, False),  # one lease later: over
        (500.0, False),  # resumed after a long pause
        (99.0, False),  # a clock before the confirmation: cannot tell, so no
    ],
)
def test_a_lease_holds_for_its_length_from_the_confirmation(now: float, holds: bool) -> None:
    """The leader acts only within one lease of the start of its last confirmation."""
    assert Lease(confirmed_at=100.0, seconds=10.0).holds(now) is holds


@pytest.mark.parametrize(
    ("started", "confirmed_at"),
    [
        (104.0, 104.0),  # a later confirmation moves the lease on
        (250.0, 250.0),  # also after it ran out: the lock was never lost
        (90.0, 100.0),  # a confirmation that started before the last one never moves it back
    ],
)
def test_a_confirmation_renews_the_lease_from_its_start(
    started: float, confirmed_at: float
) -> None:
    """Renewal counts from when the confirmation started, never backwards."""
    renewed = Lease(confirmed_at=100.0, seconds=10.0).renewed(started)
    assert renewed == Lease(confirmed_at=confirmed_at, seconds=10.0)


def test_a_standby_names_the_leader_when_it_can_tell() -> None:
    """STATUS of a standby: the leader's host, pid and since, or that someone holds the lock."""
    leader = Leader(
        host="db-1", pid=4242, since=dt.datetime(2026, 12, 7, 3, 0, 5, tzinfo=dt.UTC), epoch=3
    )
    assert standby_status(leader) == "standby: db-1 pid 4242 since 2026-12-07 03:00:05Z is active"
    assert standby_status(None) == "standby: another instance holds the lock"
