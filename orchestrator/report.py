"""What operator commands print: the status table (``orchestrator status`` and ``orchestrator
demo``) and the verify-archive report."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from orchestrator.config import ConfigFile
from orchestrator.domain.model import Day, DayStatus, Job
from orchestrator.domain.wanted import spec_days

if TYPE_CHECKING:  # only for annotations: the status command never loads the audit
    from orchestrator.workflows.verify_archive import VerifyReport


def print_status_table(
    config: ConfigFile,
    days: Sequence[Day],
    jobs: Sequence[Job],
    out: TextIO,
    *,
    now: dt.datetime,
) -> None:
    """Days per export and status, then the jobs by state and the archived count."""
    by_key = {(d.resource_type, d.day): d for d in days}
    statuses = [s for s in DayStatus if s is not DayStatus.UNKNOWN]
    short = {s: s.value.replace("CompletedEmptyRecords", "Empty") for s in statuses}
    header = f"{'export':<20} {'type':<12} " + " ".join(f"{short[s]:>8.8}" for s in statuses)
    print(header, file=out)
    for export in config.exports:
        spec = export.to_spec()
        counts: Counter[DayStatus] = Counter()
        for day in spec_days(spec, now):
            row = by_key.get((spec.resource_type, day))
            if row is not None:
                counts[row.status] += 1
        cells = " ".join(f"{counts[s]:>8}" for s in statuses)
        print(f"{spec.name:<20.20} {spec.resource_type.value:<12} {cells}", file=out)
    states = Counter(j.state.value for j in jobs)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
    print(f"jobs: {summary}", file=out)
    archived = sum(1 for d in days if d.archive is not None)
    print(f"archived days: {archived}", file=out)


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
