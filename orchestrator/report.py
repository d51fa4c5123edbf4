"""What operator commands print: the status table (``orchestrator status`` and ``orchestrator
demo``) and the verify-archive report."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from orchestrator.config import ConfigFile
from orchestrator.domain.archiving import removal_deadline
from orchestrator.domain.leadership import Leader
from orchestrator.domain.model import Day, DayStatus, Job
from orchestrator.domain.observed import time_left
from orchestrator.domain.wanted import spec_days

if TYPE_CHECKING:  # only for annotations: the status command never loads the audit
    from orchestrator.workflows.verify_archive import VerifyReport


# The status table fits an 80-column terminal: the counts of an export wrap onto lines of
# their own rather than the table growing a column per status.
WIDTH = 80
_LEAD = f"{'export':<20} {'type':<12} {'days':>6}  "


def print_status_table(
    config: ConfigFile,
    days: Sequence[Day],
    jobs: Sequence[Job],
    out: TextIO,
    *,
    now: dt.datetime,
) -> None:
    """Days per export by status, the jobs by state, the archive, and the days at risk."""
    by_key = {(d.resource_type, d.day): d for d in days}
    print(f"{_LEAD}by status", file=out)
    for export in config.exports:
        spec = export.to_spec()
        counts: Counter[DayStatus] = Counter()
        for day in spec_days(spec, now):
            row = by_key.get((spec.resource_type, day))
            if row is not None:
                counts[row.status] += 1
        parts = [f"{status.value} {counts[status]}" for status in DayStatus if counts[status]]
        lead = f"{spec.name:<20.20} {spec.resource_type.value:<12} {sum(counts.values()):>6}  "
        for line in _wrapped(lead, parts or ["none recorded yet"]):
            print(line, file=out)
    states = Counter(j.state.value for j in jobs)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
    print(f"jobs: {summary}", file=out)
    archived = sum(1 for d in days if d.archive is not None)
    print(f"archived days: {archived}", file=out)
    if config.archive is not None:
        print(at_risk_line(days, now), file=out)


def leader_line(leader: Leader | None, running: bool) -> str:
    """Which instance leads the account, and whether its lock is held now."""
    if leader is None:
        return "leader: none yet (no daemon has run on this database)"
    if running:
        return f"leader: {leader.describe()}"
    return f"leader: none running (last: {leader.describe()})"


def at_risk_line(days: Sequence[Day], now: dt.datetime) -> str:
    """Days whose file Twilio made and we have not archived yet, and the nearest removal."""
    waiting = [d for d in days if d.status.is_success and d.archive is None]
    if not waiting:
        return "days at risk: none (every finished day is archived)"
    # A success's last change is its completion: Twilio made the file by then.
    first = min(waiting, key=lambda d: (removal_deadline(d.last_changed_at), d.key.day))
    left = removal_deadline(first.last_changed_at) - now
    return (
        f"days at risk: {len(waiting)} not archived; Twilio removes "
        f"{first.resource_type.value} {first.day.isoformat()} in {time_left(left)}"
    )


def _wrapped(lead: str, parts: Sequence[str]) -> list[str]:
    """``lead`` then ``parts`` joined by ", ", wrapped under the first part at ``WIDTH``."""
    pieces = [part + ("," if i < len(parts) - 1 else "") for i, part in enumerate(parts)]
    lines: list[str] = []
    current, empty = lead, True
    for piece in pieces:
        candidate = current + ("" if empty else " ") + piece
        if not empty and len(candidate) > WIDTH:
            lines.append(current)
            current = " " * len(lead) + piece
        else:
            current = candidate
        empty = False
    lines.append(current)
    return lines


def render_verify_report(report: VerifyReport) -> str:
    """Human-readable lines: one per problem, then a summary line."""
    lines = [
        f"{p.problem.value}: {p.resource_type.value} {p.day.isoformat()} {p.path} ({p.detail})"
        for p in report.problems
    ]
    lines.append(
        f"checked {report.checked} archived files: {report.ok} ok, "
        f"{report.missing} missing, {report.changed} changed or unreadable"
    )
    return "\n".join(lines)
