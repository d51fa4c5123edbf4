"""Table tests of the poll policy: backoff, cap, jitter, reset on change, ETA and queue hints."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.model import Job, JobState, ResourceType
from orchestrator.domain.polling import (
    PollFacts,
    PollPolicy,
    backoff_delay,
    next_poll_at,
    poll_delay,
)
from orchestrator.errors import InvalidInput

NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
POLICY = PollPolicy(
    initial=dt.timedelta(seconds=30),
    max=dt.timedelta(minutes=30),
    multiplier=2.0,
    jitter=0.1,
    max_eta_wait=dt.timedelta(hours=6),
)
S, MIN, H = dt.timedelta(seconds=1), dt.timedelta(minutes=1), dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("polls", "expected"),
    [
        (0, 30 * S),
        (1, 60 * S),
        (2, 120 * S),
        (5, 960 * S),
        # 1920 s would pass the cap
        (6, 30 * MIN),
        (100, 30 * MIN),
        # a huge count neither overflows nor escapes the cap
        (10**9, 30 * MIN),
        # a nonsense negative count is treated as zero
        (-3, 30 * S),
    ],
)
def test_backoff_grows_and_is_capped(polls: int, expected: dt.timedelta) -> None:
    """The delay is initial * multiplier ** polls, capped at max."""
    assert backoff_delay(polls, POLICY) == expected


def test_multiplier_one_is_constant() -> None:
    """With multiplier 1 every poll waits the initial delay."""
    policy = PollPolicy(initial=10 * S, max=MIN, multiplier=1.0, jitter=0.0)
    assert {backoff_delay(n, policy) for n in (0, 1, 50, 10**6)} == {10 * S}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # no hint: plain backoff
        (PollFacts(polls_since_change=3), 240 * S),
        # ETA two hours away (±30 %): the earliest plausible end plus 10 % of the job's
        # expected duration, not every 30 s
        (PollFacts(polls_since_change=0, eta=NOW + 2 * H), 2 * H / 1.3 + 12 * MIN),
        # the job's age counts in its expected duration: 1 h old, due in 1 h
        (
            PollFacts(polls_since_change=0, eta=NOW + H, submitted_at=NOW - H),
            H / 1.3 + 12 * MIN,
        ),
        # ETA a minute away while backoff says 30 min: soon after the earliest plausible end
        (PollFacts(polls_since_change=8, eta=NOW + MIN), MIN / 1.3 + 30 * S),
        # ETA beyond max_eta_wait: wait max_eta_wait, then look again (ETAs are revised)
        (PollFacts(polls_since_change=0, eta=NOW + 10 * H), 6 * H),
        # ETA just passed: soon, whatever the backoff had grown to
        (PollFacts(polls_since_change=8, eta=NOW), 30 * S),
        # ETA passed 2 minutes ago: backoff restarted from the ETA
        (PollFacts(polls_since_change=8, eta=NOW - 2 * MIN), 150 * S),
        # long overdue: never slower than the ordinary backoff
        (PollFacts(polls_since_change=2, eta=NOW - H), 120 * S),
        (PollFacts(polls_since_change=8, eta=NOW - H), 30 * MIN),
        # deep in the queue: no sooner than initial * position, bounded by max
        (PollFacts(polls_since_change=0, queue_position=20), 10 * MIN),
        (PollFacts(polls_since_change=0, queue_position=1000), 30 * MIN),
        # queue position never shortens the backoff
        (PollFacts(polls_since_change=5, queue_position=2), 960 * S),
        (PollFacts(polls_since_change=0, queue_position=0), 30 * S),
    ],
)
def test_poll_delay_hints(facts: PollFacts, expected: dt.timedelta) -> None:
    """ETA and queue position shape the delay as documented."""
    assert poll_delay(facts, POLICY, NOW) == expected
    assert next_poll_at(facts, POLICY, NOW, 0.0) == NOW + expected


def test_eta_two_hours_away_is_not_polled_every_30s() -> None:
    """Following the policy, a job due in two hours is polled about twice until its ETA."""
    eta = NOW + 2 * H
    now, polls = NOW, 0
    while now < eta:
        # Each poll reads the same ETA again: the window narrows as it nears.
        now = next_poll_at(PollFacts(polls, eta=eta, submitted_at=NOW), POLICY, now, 0.5)
        polls += 1
    assert polls <= 3
    # A job that really ends at its ETA is noticed within 10 % of its two hours.
    assert now <= eta + 12 * MIN


@pytest.mark.parametrize("rng", [0.0, 0.25, 0.5, 0.999999])
@pytest.mark.parametrize(
    "facts",
    [
        PollFacts(polls_since_change=0),
        PollFacts(polls_since_change=4),
        PollFacts(polls_since_change=40),
        PollFacts(polls_since_change=40, queue_position=7),
        PollFacts(polls_since_change=2, eta=NOW - 5 * MIN),
        PollFacts(polls_since_change=0, eta=NOW + 10 * H),
    ],
)
def test_jitter_is_bounded(facts: PollFacts, rng: float) -> None:
    """Jitter only shortens a delay, by at most `jitter` of it, and never breaks the caps."""
    base = poll_delay(facts, POLICY, NOW)
    delay = next_poll_at(facts, POLICY, NOW, rng) - NOW
    assert base * (1 - POLICY.jitter) <= delay <= base
    assert delay <= max(POLICY.max, POLICY.max_eta_wait)


@pytest.mark.parametrize("rng", [0.0, 0.5, 0.999999])
@pytest.mark.parametrize("until", [MIN, 20 * MIN, 2 * H, 5 * H])
def test_a_future_eta_is_polled_inside_its_plausible_window(
    until: dt.timedelta, rng: float
) -> None:
    """With ±30 % ETA noise, the poll lands between the earliest and latest plausible end."""
    facts = PollFacts(0, eta=NOW + until, submitted_at=NOW - 10 * MIN)
    at = next_poll_at(facts, POLICY, NOW, rng)
    assert NOW + until / 1.3 * (1 - POLICY.jitter) <= at <= NOW + until / 0.7 + 30 * S


def test_jitter_is_deterministic() -> None:
    """The same inputs give the same time: the randomness is the caller's."""
    facts = PollFacts(polls_since_change=3)
    assert next_poll_at(facts, POLICY, NOW, 0.3) == next_poll_at(facts, POLICY, NOW, 0.3)
    assert next_poll_at(facts, POLICY, NOW, 0.3) != next_poll_at(facts, POLICY, NOW, 0.7)


def _job(poll_count: int) -> Job:
    return Job(
        id=1,
        friendly_name="orch-x-Calls-20240101-20240131-a1",
        resource_type=ResourceType.CALLS,
        start_day=dt.date(2024, 1, 1),
        end_day=dt.date(2024, 1, 31),
        state=JobState.ACTIVE,
        attempt=1,
        created_at=NOW,
        poll_count=poll_count,
    )


def test_backoff_sequence_then_change_resets() -> None:
    """Delays grow with each unchanged poll up to the cap; a change (poll count 0) resets them."""
    delays = [next_poll_at(_job(n), POLICY, NOW, 0.0) - NOW for n in range(8)]
    assert delays == sorted(delays)
    assert delays[0] == 30 * S and delays[-1] == 30 * MIN
    assert next_poll_at(_job(0), POLICY, NOW, 0.0) - NOW == 30 * S


@pytest.mark.parametrize("rng", [-0.1, 1.0, 2.0])
def test_rng_value_out_of_range(rng: float) -> None:
    """An rng_value outside [0, 1) is InvalidInput."""
    with pytest.raises(InvalidInput):
        next_poll_at(PollFacts(0), POLICY, NOW, rng)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": dt.timedelta(0)},
        {"initial": 2 * H, "max": H},
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"max_eta_wait": S},
    ],
)
def test_policy_validates(kwargs: dict[str, object]) -> None:
    """A policy that cannot make sense is InvalidInput."""
    with pytest.raises(InvalidInput):
        PollPolicy(**kwargs)  # type: ignore[arg-type]  # the table mixes field types
