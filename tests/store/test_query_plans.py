"""Every query the daemon runs on a timer uses an index (SQLite's EXPLAIN QUERY PLAN)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.domain.model import DayKey, ResourceType
from orchestrator.store import Store, upgrade_to_head

from .conftest import ACCOUNT, NOW, Database

TimerQuery = Callable[[Store], Awaitable[object]]

TIMER_QUERIES: dict[str, TimerQuery] = {
    "jobs_due_for_poll": lambda s: s.jobs_due_for_poll(NOW, 100),
    "jobs_stale": lambda s: s.jobs_stale(NOW, dt.timedelta(hours=6)),
    "pending_days": lambda s: s.pending_days(NOW),
    "days_due_for_archiving": lambda s: s.days_due_for_archiving(100),
    "jobs_ready_for_deletion": lambda s: s.jobs_ready_for_deletion(require_archived=True),
    "requested_days_since": lambda s: s.requested_days_since(NOW),
}


async def _plans(engine: AsyncEngine, query: TimerQuery, store: Store) -> list[str]:
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await query(store)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert captured
    plans = []
    async with engine.connect() as conn:
        for statement, parameters in captured:
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plans += [row[-1] for row in rows]
    return plans


@pytest.mark.parametrize("name", sorted(TIMER_QUERIES))
async def test_timer_queries_search_by_index(sqlite_database: Database, name: str) -> None:
    """No timer query scans the jobs or days table or sorts in a temporary b-tree."""
    engine = sqlite_database.engine()
    await upgrade_to_head(engine)
    store = Store(engine, ACCOUNT)
    await store.upsert_wanted_days([DayKey(ResourceType.CALLS, dt.date(2024, 1, 1))], NOW)
    plans = await _plans(engine, TIMER_QUERIES[name], store)
    for line in plans:
        assert not line.startswith("SCAN"), (name, plans)
        assert "TEMP B-TREE" not in line, (name, plans)
    assert any("INDEX" in line for line in plans), (name, plans)


async def test_adoption_query_searches_by_index(sqlite_database: Database) -> None:
    """The start-up query for submitting jobs searches an index (it may sort its few rows)."""
    engine = sqlite_database.engine()
    await upgrade_to_head(engine)
    plans = await _plans(engine, lambda s: s.jobs_submitting(), Store(engine, ACCOUNT))
    assert not any(line.startswith("SCAN") for line in plans), plans
