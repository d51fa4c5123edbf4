"""Table tests of waiting for the database: the backoff between tries and the outage record."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.reconnect import Outage, ReconnectBackoff

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PLAIN = ReconnectBackoff(jitter=0.0)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (1, 1.0),
        (2, 2.0),
        (3, 4.0),
        (6, 32.0),
        # 64 s would pass the cap
        (7, 60.0),
        (100, 60.0),
        # a huge count neither overflows nor escapes the cap
        (10**9, 60.0),
    ],
)
def test_delay_doubles_from_one_second_up_to_a_minute(failures: int, expected: float) -> None:
    """About 1 s after the first failure, doubling, never above 60 s."""
    assert PLAIN.delay(failures) == expected


@pytest.mark.parametrize(
    ("failures", "rand", "expected"),
    [
        # rand 0.5 is the middle: no jitter at all
        (1, 0.5, 1.0),
        (1, 0.0, 0.9),
        (1, 0.999999, 1.1),
        (3, 0.0, 3.6),
        # jitter never lifts a capped delay over the cap
        (20, 0.999999, 60.0),
        (20, 0.0, 54.0),
    ],
)
def test_jitter_spreads_the_delay_within_its_share(
    failures: int, rand: float, expected: float
) -> None:
    """rand in [0, 1) moves the delay by at most 10 %, and the cap holds."""
    assert ReconnectBackoff().delay(failures, rand) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first": 0.0}, "first"),
        ({"first": 90.0}, "first"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_a_backoff_that_would_spin_or_shrink_is_refused(
    kwargs: dict[str, float], message: str
) -> None:
    """A zero first delay, a shrinking factor or a jitter of 100 % is a ValueError."""
    with pytest.raises(ValueError, match=message):
        ReconnectBackoff(**kwargs)


def test_failures_count_from_one() -> None:
    """delay(0) is a programming error, not a zero wait."""
    with pytest.raises(ValueError, match="from 1"):
        PLAIN.delay(0)


def test_only_the_first_failure_of_an_outage_is_announced() -> None:
    """failed() says "new outage" once; later failures count tries and keep the start time."""
    up = Outage()
    first, announce_first = up.failed("refused", NOW)
    second, announce_second = first.failed("timed out", NOW + dt.timedelta(seconds=1))
    assert (announce_first, announce_second) == (True, False)
    assert (second.down, second.down_since, second.failures, second.reason) == (
        True,
        NOW,
        2,
        "timed out",
    )


@pytest.mark.parametrize(
    ("outage", "now", "lasted"),
    [
        (Outage(), NOW, None),
        (Outage(down_since=NOW, failures=3, reason="x"), NOW + dt.timedelta(seconds=42), 42.0),
        # a wall clock stepped back gives no negative outage
        (Outage(down_since=NOW, failures=1, reason="x"), NOW - dt.timedelta(seconds=5), 0.0),
    ],
)
def test_recovery_tells_how_long_the_outage_lasted(
    outage: Outage, now: dt.datetime, lasted: float | None
) -> None:
    """recovered() returns the outage's length once (None when there was none) and clears it."""
    after, duration = outage.recovered(now)
    assert after == Outage()
    assert (None if duration is None else duration.total_seconds()) == lasted


def test_a_new_outage_after_recovery_is_announced_again() -> None:
    """Once per outage: down, up, down again announces twice."""
    down, _ = Outage().failed("refused", NOW)
    up, _ = down.recovered(NOW + dt.timedelta(seconds=3))
    _, announce = up.failed("refused", NOW + dt.timedelta(seconds=9))
    assert announce is True
