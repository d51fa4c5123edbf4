"""``orchestrator status``'s table: 80 columns whatever the statuses, nothing left out."""

from __future__ import annotations

import datetime as dt
import io
import textwrap
from pathlib import Path

import pytest

from orchestrator.config import ConfigFile, load_config_file
from orchestrator.domain.model import ArchiveFacts, Day, DayStatus, Job, JobState, ResourceType
from orchestrator.report import at_risk_line, print_status_table

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
FIRST = dt.date(2026, 2, 1)
STATUSES = [s for s in DayStatus if s is not DayStatus.UNKNOWN]


def _config(tmp_path: Path, archive: bool) -> ConfigFile:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "AC{"0" * 32}"
            auth_token_env = "T"
            [state]
            directory = "{tmp_path}"
            [[exports]]
            name = "a-rather-long-export-name-cut-at-twenty"
            resource_type = "Messages"
            start_day = "{FIRST}"
            end_day = "{FIRST + dt.timedelta(days=len(STATUSES) * 2 - 1)}"
            """
        )
        + (f'[archive]\ndirectory = "{tmp_path / "archive"}"\n' if archive else "")
    )
    return load_config_file(path)


def _day(i: int, status: DayStatus, *, changed: dt.datetime = NOW, archived: bool = False) -> Day:
    facts = ArchiveFacts("/x", 1, "0" * 64, 0, NOW) if archived else None
    return Day(
        ResourceType.MESSAGES,
        FIRST + dt.timedelta(days=i),
        status,
        first_wanted_at=NOW,
        last_changed_at=changed,
        archive=facts,
    )


def test_every_status_fits_in_80_columns_and_is_counted(tmp_path: Path) -> None:
    """With all ten statuses present the rows wrap at 80 columns and show every count."""
    days = [_day(i, STATUSES[i // 2], archived=i == 8) for i in range(len(STATUSES) * 2)]
    job = Job(1, "n", ResourceType.MESSAGES, FIRST, FIRST, JobState.ACTIVE, 1, NOW)
    out = io.StringIO()
    print_status_table(_config(tmp_path, archive=True), days, [job], out, now=NOW)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = " ".join(lines)
    for status in STATUSES:
        assert f"{status.value} 2" in text
    assert lines[1].startswith("a-rather-long-export Messages")
    assert lines[1].split()[2] == str(len(days))
    assert "jobs: 1 active" in lines
    assert "archived days: 1" in lines


def test_an_export_without_days_says_so(tmp_path: Path) -> None:
    """An export with nothing recorded says it; no archive configured, no at-risk line."""
    out = io.StringIO()
    print_status_table(_config(tmp_path, archive=False), [], [], out, now=NOW)
    lines = out.getvalue().splitlines()
    assert lines[1].endswith("0  none recorded yet")
    assert not any(line.startswith("days at risk") for line in lines)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([], "days at risk: none (every finished day is archived)"),
        ([_day(0, DayStatus.COMPLETED, archived=True)], "days at risk: none"),
        (
            [
                _day(0, DayStatus.COMPLETED, changed=NOW - dt.timedelta(days=2)),
                _day(1, DayStatus.COMPLETED_EMPTY_RECORDS, changed=NOW - dt.timedelta(days=6)),
                _day(2, DayStatus.RUNNING),
            ],
            "days at risk: 2 not archived; Twilio removes Messages 2026-02-02 in 1d 0h",
        ),
        (
            [_day(0, DayStatus.COMPLETED, changed=NOW - dt.timedelta(days=7, hours=1))],
            "days at risk: 1 not archived; Twilio removes Messages 2026-02-01 in 0m (overdue)",
        ),
        (
            [_day(0, DayStatus.COMPLETED, changed=NOW - dt.timedelta(days=6, hours=21))],
            "days at risk: 1 not archived; Twilio removes Messages 2026-02-01 in 3h 0m",
        ),
    ],
)
def test_days_at_risk(days: list[Day], expected: str) -> None:
    """Finished days without an archived file, and the time to the first one's removal."""
    assert at_risk_line(days, NOW).startswith(expected)
    assert len(at_risk_line(days, NOW)) <= 80
