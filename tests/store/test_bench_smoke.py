"""The store benchmark runs end to end at a tiny size."""

from __future__ import annotations

import os

from bench.store_bench import run


async def test_store_bench_runs_at_tiny_size() -> None:
    """Every figure is produced (on PostgreSQL too when configured)."""
    url = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    figures = await run(20, url)
    assert figures["sqlite.apply_transitions_ms"] > 0
    assert figures["sqlite.transitions_per_second"] > 0
    assert ("postgresql.due_jobs_all_ms" in figures) == (url is not None)
