"""The status table, shared by ``orchestrator status`` and ``orchestrator demo``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from orchestrator.config import ConfigFile
from orchestrator.domain.model import Day, DayStatus, Job
from orchestrator.domain.wanted import spec_days


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
