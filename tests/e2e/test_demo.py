"""`orchestrator demo`: the whole scenario in-process, fast, and its command-line flags."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from orchestrator.cli import EX_USAGE, build_parser, main
from orchestrator.demo import DemoOptions, Snapshot, Tally, progress_line, run_demo
from orchestrator.domain.model import JobState
from orchestrator.store.engine import create_engine
from orchestrator.store.repository import Store


def _events(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


async def test_demo_finishes_every_day_with_a_resubmit_and_a_stale_delete(tmp_path: Path) -> None:
    """A small demo ends at exit 0: all days final and archived, one resubmitted, one job stale."""
    out = io.StringIO()
    options = DemoOptions(
        speed=6000,
        seed=3,
        directory=tmp_path / "demo",
        messages_days=40,
        calls_days=5,
        conferences_days=3,
        timeout=60,
    )
    # The demo's own timeout (60 s) bounds it: exit 0 means it finished within that.
    code = await run_demo(options, out)
    text = out.getvalue()

    assert code == 0, text[-3000:]
    # Off a terminal: the daemon's JSON log lines, then the status table and the summary.
    events = _events(text)
    names = {e["event"] for e in events}
    assert {"job.submitted", "day.status_changed", "demo.progress", "daemon.all_days_final"} <= (
        names
    )
    stale = [e for e in events if e["event"] == "job.deleted" and e.get("reason") == "stale"]
    assert len(stale) == 1
    assert any(e.get("to_status") == "Failed" for e in events)
    assert "export               type           days  by status" in text
    assert "messages-backfill    Messages" in text
    assert "every wanted day is final: 48 days" in text
    assert "stale jobs deleted: 1" in text
    assert f"state directory: {tmp_path / 'demo'}" in text

    engine = create_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'demo' / 'state' / 'orchestrator.sqlite'}"
    )
    try:
        store = Store(engine, "AC" + "d" * 32)
        days = await store.list_days()
        jobs = await store.list_jobs()
    finally:
        await engine.dispose()
    assert len(days) == 48
    assert all(d.status.is_success for d in days)
    # Every day's file is in the archive directory before the demo ends.
    assert all(d.archive is not None for d in days)
    assert len(list((tmp_path / "demo" / "archive").rglob("*.json.gz"))) == 48
    assert sum(1 for d in days if d.resubmits > 0) >= 1
    # Messages alone needed two jobs (40 days, 31 per job); every job is tidied away.
    assert sum(1 for j in jobs if j.resource_type.value == "Messages" and j.attempt == 1) >= 2
    assert {j.state for j in jobs} == {JobState.DELETED}


def test_demo_flags_parse() -> None:
    """--keep, --speed and --seed reach the demo's arguments."""
    args = build_parser().parse_args(["demo", "--keep", "--speed", "500", "--seed", "9"])
    assert (args.command, args.keep, args.speed, args.seed) == ("demo", True, 500.0, 9)


def test_demo_rejects_a_speed_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    """--speed 0 is a usage error, reported in one line."""
    assert main(["demo", "--speed", "0"]) == EX_USAGE
    assert "--speed" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """Captured output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


async def test_demo_on_a_terminal_shows_a_progress_line_and_short_notes(tmp_path: Path) -> None:
    """On a TTY: an updating progress line and one readable note per notable event, no JSON."""
    out = _Terminal()
    options = DemoOptions(
        speed=6000,
        seed=3,
        directory=tmp_path / "demo",
        messages_days=35,
        calls_days=3,
        conferences_days=2,
        # Generous: the demo runs on simulated time, but a busy machine is slow in real time.
        timeout=180,
    )
    code = await run_demo(options, out)
    text = out.getvalue()
    assert code == 0, text[-3000:]
    assert not _events(text)
    updates = [part for part in text.split("\r\x1b[K") if part.startswith("final ")]
    assert len(updates) >= 2
    assert any("final 40/40" in part for part in updates)
    assert "  submitted  Messages " in text
    assert "will be resubmitted" in text
    assert "(stale: no progress for stale_after)" in text
    assert "every wanted day is final: 40 days" in text


async def test_demo_daemon_says_started_only_once_the_wanted_days_are_recorded(
    tmp_path: Path,
) -> None:
    """days.wanted comes before daemon.started, so no first check can read an empty table."""
    out = io.StringIO()
    options = DemoOptions(
        speed=6000,
        seed=3,
        directory=tmp_path / "demo",
        messages_days=33,
        calls_days=2,
        conferences_days=1,
        timeout=120,
        progress_every=0.05,
    )
    code = await run_demo(options, out)
    text = out.getvalue()
    assert code == 0, text[-3000:]
    names = [e["event"] for e in _events(text)]
    assert names.index("days.wanted") < names.index("daemon.started")
    # Every progress line, the first one too, counts every wanted day.
    progress = [e for e in _events(text) if e["event"] == "demo.progress"]
    assert progress
    assert {e["days"] for e in progress} == {36}


def test_the_progress_line_fits_80_columns_with_the_counts_first() -> None:
    """Days final and archived lead, the simulated time ends it; three-digit counts fit 80."""
    snap = Snapshot(
        days=999,
        final=998,
        resubmitted=123,
        archived=997,
        jobs_live=10,
        jobs=321,
        now=dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC),
    )
    line = progress_line(snap, Tally(stale_deleted=12))
    assert line.startswith("final 998/999 · archived 997 · ")
    assert line.endswith("· stale 12 · 23:59")
    assert len(line) <= 80
