"""The operator's audit of the archive (``orchestrator verify-archive``).

``verify_archive`` re-hashes every archived file and compares it with what the store recorded;
``orchestrator.report.render_verify_report`` prints the result. It reads the store and the files
only: no Twilio credentials, no writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.archive.verify import sha256_file, verify_file
from orchestrator.archive.writer import describe_os_error
from orchestrator.domain.model import Day, DayStatus, ResourceType
from orchestrator.errors import DownloadCorrupt

if TYPE_CHECKING:  # only for annotations: the audit is handed an open store
    from orchestrator.store.repository import Store


class Problem(enum.StrEnum):
    MISSING = "missing"
    CHANGED = "changed"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class FileProblem:
    resource_type: ResourceType
    day: dt.date
    path: str
    problem: Problem
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify_archive`` found; ``exit_code`` is 0 only when every file is as recorded."""

    checked: int
    ok: int
    problems: tuple[FileProblem, ...]

    @property
    def missing(self) -> int:
        return sum(1 for p in self.problems if p.problem is Problem.MISSING)

    @property
    def changed(self) -> int:
        return sum(1 for p in self.problems if p.problem is not Problem.MISSING)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


async def verify_archive(store: Store, *, deep: bool = False) -> VerifyReport:
    """Re-hash every archived file and compare it with what the store recorded.

    A file absent is ``missing``; one whose size or sha256 differs is ``changed`` (with
    ``deep``, also a file that is no longer whole gzip JSON lines or whose record count differs);
    one that cannot be read is ``unreadable``. Paths are the absolute ones recorded at archive
    time, so a moved archive shows as missing. Needs no Twilio credentials.
    """
    archived = [day for day in await store.list_days() if day.archive is not None]
    problems: list[FileProblem] = []
    for day in archived:
        problem = await asyncio.to_thread(_check_file, day, deep)
        if problem is not None:
            problems.append(problem)
    return VerifyReport(
        checked=len(archived), ok=len(archived) - len(problems), problems=tuple(problems)
    )


def _check_file(day: Day, deep: bool) -> FileProblem | None:
    facts = day.archive
    assert facts is not None

    def problem(kind: Problem, detail: str) -> FileProblem:
        return FileProblem(day.resource_type, day.day, facts.path, kind, detail)

    path = Path(facts.path)
    try:
        if not path.is_file():
            return problem(Problem.MISSING, "no such file")
        if deep:
            try:
                found = verify_file(
                    path, allow_empty=day.status is DayStatus.COMPLETED_EMPTY_RECORDS
                )
            except DownloadCorrupt as error:
                return problem(Problem.CHANGED, f"not a valid day file any more: {error}")
            size, sha256, records = found.size, found.sha256, found.record_count
        else:
            size, sha256 = sha256_file(path)
            records = facts.record_count
    except OSError as error:
        return problem(Problem.UNREADABLE, describe_os_error(error))
    if size != facts.size:
        return problem(Problem.CHANGED, f"{size} bytes, recorded {facts.size}")
    if sha256 != facts.sha256:
        return problem(Problem.CHANGED, f"sha256 {sha256}, recorded {facts.sha256}")
    if records != facts.record_count:
        return problem(Problem.CHANGED, f"{records} records, recorded {facts.record_count}")
    return None
