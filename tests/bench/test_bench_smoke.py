"""Every benchmark runs end to end at a tiny size, so it cannot rot; figures are not asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import (
    idle_bench,
    poll_cost_bench,
    polling_bench,
    scale_bench,
    soak_bench,
    startup_bench,
    throughput_bench,
)
from bench.__main__ import main

TINY = polling_bench.Workload(days_per_type=4, max_days_per_job=2)


async def test_polling_bench_reports_every_policy_and_the_economy() -> None:
    """Per-policy job figures, per-scenario figures and the request economy are produced."""
    result = await polling_bench.run(TINY)
    assert set(result["policies"]) == set(polling_bench.POLICIES)
    for summary in result["policies"].values():
        assert summary["jobs"] > 0
        for key in ("fetches_median", "fetches_p95", "delay_median_s", "delay_p95_s"):
            assert key in summary
        assert set(summary["per_scenario"]) == {s.name for s in polling_bench.SCENARIOS}
    economy = result["economy"]
    for key in ("requests", "requests_per_day", "floor_with_archiving", "ratio_to_floor"):
        assert key in economy
    assert all(run["completed"] for run in result["runs"])


async def test_scale_bench_times_a_poll_pass() -> None:
    """A few jobs are built, all polled once, and the resource figures are produced."""
    result = await scale_bench.run(job_count=8, days_per_job=3)
    assert result["jobs_polled"] == 8
    for key in ("pass_wall_s", "pass_cpu_s", "peak_rss_mb", "db_mb"):
        assert key in result


async def test_idle_bench_measures_a_real_daemon() -> None:
    """A real ``orchestrator run`` starts, is measured for a moment, and stops cleanly."""
    result = await idle_bench.run(idle_seconds=0.3, settle_seconds=0.1)
    assert result["exit_code"] == 0
    for key in ("idle_cpu_s", "idle_wall_s", "cpu_s_per_minute", "requests_while_idle"):
        assert key in result


async def test_store_throughput_bench_runs_on_each_database() -> None:
    """Transitions per second on SQLite, and on PostgreSQL when it is configured."""
    url = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    result = await throughput_bench.run(size=20, jobs=2, url=url)
    assert "sqlite.transitions_per_second" in result
    assert "sqlite.job_batches_transitions_per_second" in result
    assert ("postgresql.job_batches_transitions_per_second" in result) == (url is not None)


async def test_poll_cost_bench_compares_the_daemon_with_the_floor() -> None:
    """Both sides poll every job once and write the same transitions, on each database."""
    url = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    result = await poll_cost_bench.run(job_count=6, days_per_job=3, postgres_url=url)
    for dialect in ("sqlite", "postgresql") if url else ("sqlite",):
        entry = result[dialect]
        assert entry["jobs_polled"] == 6
        assert entry["daemon_transitions"] == entry["floor_transitions"] > 0
        assert entry["ratio"] > 0
    assert "target SQLite ratio" in "\n".join(poll_cost_bench.render(result))


def test_main_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench --quick --only ...`` prints the table and writes the JSON file."""
    out = tmp_path / "results.json"
    argv = ["--quick", "--only", "scale", "--only", "idle", "--idle-seconds", "0.2"]
    assert main([*argv, "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(document["results"]) == {"scale", "idle"}
    assert {"date", "commit", "python", "cpus"} <= set(document["machine"])
    printed = capsys.readouterr().out
    assert "3. Scale" in printed and "4. Idle" in printed


def test_startup_bench_measures_three_commands_side_by_side() -> None:
    """Bare interpreter, ``--help`` and ``status`` each run and get a CPU figure and a ratio."""
    result = startup_bench.run(runs=1)
    for name in ("bare", "help", "status"):
        assert result[f"{name}_cpu_s"] > 0
        assert len(result["samples"][name]) == 1
    assert result["help_ratio"] == result["help_cpu_s"] / result["bare_cpu_s"]
    assert isinstance(result["status_target_met"], bool)


async def test_soak_bench_runs_a_real_daemon_until_every_eligible_day_is_safe() -> None:
    """A tiny soak samples the daemon and ends with every eligible day final and archived."""
    result = await soak_bench.run(soak_bench.TINY)
    assert result["all_final_and_archived"], (result["missing_days"], result["unsafe_days"])
    assert result["eligible_days"] > 0
    assert result["files_lost_to_expiry"] == 0
    assert result["passes_measured"]["poll"] > 0
    for key in ("rss_growth_mb_per_1000_passes", "cpu_s_per_simulated_day", "safety_hours_max"):
        assert key in result
    assert "10. Soak" in "\n".join(soak_bench.render(result))
