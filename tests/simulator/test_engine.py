"""The lifecycle model as plain Python with a ManualClock: no HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.clock import ManualClock
from orchestrator.domain.model import DayStatus, ResourceType
from orchestrator.simulator.engine import Engine, QuotaExceeded
from orchestrator.simulator.settings import FaultSettings
from tests.simulator.conftest import START, make_settings

M = ResourceType.MESSAGES
D1 = dt.date(2024, 3, 1)


def _engine(**overrides: object) -> tuple[Engine, ManualClock]:
    clock = ManualClock(START)
    return Engine(make_settings(clock, **overrides)), clock


def _statuses(engine: Engine, sid: str) -> list[DayStatus]:
    job = engine.job(sid)
    assert job is not None
    return [d.status for d in job.days]


def test_state_is_the_same_however_reads_are_spaced() -> None:
    """Replaying events makes one big clock jump equal to many small ones."""
    jumpy, jumpy_clock = _engine(day_seconds=(3, 17), max_running_jobs=2)
    steady, steady_clock = _engine(day_seconds=(3, 17), max_running_jobs=2)
    sids = []
    for engine in (jumpy, steady):
        sids = [engine.create(M, D1, D1 + dt.timedelta(days=4), f"j{i}").job_sid for i in range(4)]
    jumpy_clock.advance(dt.timedelta(seconds=150))
    for _ in range(150):
        steady_clock.advance(dt.timedelta(seconds=1))
        steady.now()
    for sid in sids:
        assert _statuses(jumpy, sid) == _statuses(steady, sid)


def test_jobs_start_in_fifo_order_within_the_slot_limit() -> None:
    """With one slot, the second job starts only when the first finishes."""
    engine, clock = _engine(max_running_jobs=1)
    a = engine.create(M, D1, D1, "a")
    b = engine.create(M, D1, D1, "b")
    assert a.started_at == START and b.started_at is None
    clock.advance(dt.timedelta(seconds=20))
    engine.now()
    assert a.finished_at == START + dt.timedelta(seconds=20)
    assert b.started_at == a.finished_at


def test_view_positions_never_increase() -> None:
    """A view never reports a higher queue position than an earlier view did."""
    engine, clock = _engine(max_running_jobs=1)
    jobs = [engine.create(M, D1, D1, f"j{i}") for i in range(4)]
    last = {job.job_sid: 99 for job in jobs}
    for _ in range(12):
        for job in jobs:
            position = engine.view(job).queue_position
            if position is not None:
                assert position <= last[job.job_sid]
                last[job.job_sid] = position
        clock.advance(dt.timedelta(seconds=7))


def test_eta_of_a_queued_job_counts_the_jobs_ahead() -> None:
    """Without noise, a queued job's ETA is when the slot frees plus its own work."""
    engine, _ = _engine(max_running_jobs=1)
    engine.create(M, D1, D1 + dt.timedelta(days=1), "a")  # 10 + 2 * 10 s
    b = engine.create(M, D1, D1, "b")  # 10 + 10 s
    assert engine.view(b).estimated_completion == START + dt.timedelta(seconds=50)


def test_quota_counts_days_per_utc_day() -> None:
    """The daily quota counts requested days and resets at UTC midnight."""
    engine, clock = _engine(faults=FaultSettings(daily_day_quota=3))
    engine.create(M, D1, D1 + dt.timedelta(days=2), "a")
    with pytest.raises(QuotaExceeded) as caught:
        engine.create(M, D1, D1, "b")
    assert (caught.value.limit, caught.value.used, caught.value.requested) == (3, 3, 1)
    clock.set(dt.datetime(2024, 3, 11, 0, 0, tzinfo=dt.UTC))
    engine.create(M, D1, D1, "b")


def test_settings_validate() -> None:
    """Nonsense settings are refused when built."""
    with pytest.raises(ValueError, match="max_running_jobs"):
        make_settings(max_running_jobs=0)
    with pytest.raises(ValueError, match="day_seconds"):
        make_settings(day_seconds=(5, 1))
    with pytest.raises(ValueError, match="account_sid"):
        make_settings(account_sid="nope")
