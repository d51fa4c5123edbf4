"""The standby benchmark runs end to end at a tiny size, so it cannot rot; figures are not
asserted, only that they are produced and that the standby stayed one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import standby_bench
from bench.__main__ import main


async def test_standby_bench_measures_a_real_standby_on_each_database() -> None:
    """A real standby is measured on SQLite (and PostgreSQL), sends nothing, stops cleanly."""
    url = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    result = await standby_bench.run(0.5, postgres_url=url, settle_seconds=0.1)
    assert set(result) == ({"sqlite", "postgresql"} if url else {"sqlite"})
    for entry in result.values():
        assert entry["exit_code"] == 0
        assert entry["requests_while_standby"] == 0
        for key in ("cpu_s_per_minute", "queries_per_minute", "read_syscalls_per_minute"):
            assert entry[key] >= 0
        assert entry["takeover_interval_s"] == 5.0
    assert result["sqlite"]["queries"] == 0
    lines = "\n".join(standby_bench.render(result))
    assert "9. Standby" in lines and "sqlite" in lines


def test_main_runs_the_standby_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m bench --quick --only standby`` prints item 9 and writes its figures."""
    out = tmp_path / "results.json"
    argv = ["--quick", "--only", "standby", "--standby-seconds", "0.3", "--postgres-url", ""]
    assert main([*argv, "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(document["results"]) == {"standby"}
    assert "sqlite" in document["results"]["standby"]["figures"]
    assert "9. Standby" in capsys.readouterr().out
