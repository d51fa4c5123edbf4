"""Table tests of the pause after refused creates."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.submit_hold import (
    SubmitHold,
    hold_after_acceptance,
    hold_after_refusal,
)
from orchestrator.errors import InvalidInput

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("refusals", "pause"),
    [
        (1, 2 * MIN),
        (2, 4 * MIN),
        (3, 8 * MIN),
        (5, 32 * MIN),
        (6, 60 * MIN),
        (200, 60 * MIN),
    ],
)
def test_each_refusal_doubles_the_pause_up_to_an_hour(refusals: int, pause: dt.timedelta) -> None:
    hold = SubmitHold()
    for _ in range(refusals):
        hold = hold_after_refusal(hold, NOW)
    assert hold == SubmitHold(refusals=refusals, until=NOW + pause)


@pytest.mark.parametrize(
    ("hold", "at", "allowed"),
    [
        (SubmitHold(), NOW, True),
        (SubmitHold(1, NOW + MIN), NOW, False),
        (SubmitHold(1, NOW + MIN), NOW + MIN - dt.timedelta(microseconds=1), False),
        (SubmitHold(1, NOW + MIN), NOW + MIN, True),
        (SubmitHold(3, NOW - MIN), NOW, True),
    ],
)
def test_a_hold_allows_creates_from_its_end(
    hold: SubmitHold, at: dt.datetime, allowed: bool
) -> None:
    assert hold.allows(at) is allowed


def test_an_accepted_create_ends_the_pause() -> None:
    held = hold_after_refusal(hold_after_refusal(SubmitHold(), NOW), NOW)
    assert held.refusals == 2
    assert hold_after_acceptance() == SubmitHold()
    assert hold_after_acceptance().allows(NOW)


def test_custom_bounds_are_used_and_checked() -> None:
    hold = hold_after_refusal(SubmitHold(), NOW, initial=MIN * 10, maximum=MIN * 15)
    assert hold.until == NOW + 10 * MIN
    assert hold_after_refusal(hold, NOW, initial=MIN * 10, maximum=MIN * 15).until == NOW + 15 * MIN
    with pytest.raises(InvalidInput, match="initial"):
        hold_after_refusal(SubmitHold(), NOW, initial=dt.timedelta(0))
    with pytest.raises(InvalidInput, match="initial"):
        hold_after_refusal(SubmitHold(), NOW, initial=2 * MIN, maximum=MIN)
