"""The operator's audit of the archive (``orchestrator verify-archive``).

``verify_archive`` checks every archived file against what the store recorded;
``orchestrator.report.render_verify_report`` prints the result. It reads the store and the
archive only: no Twilio credentials, no writes.

A file recorded by its local path is checked on disk (re-hashed). A file recorded by an
object URL (``s3://bucket/prefix/key``) is checked through the archive's target: a HEAD gives
its size, our metadata and (for a file sent in one PUT) its sha256; ``deep`` downloads it,
re-hashes it and decodes the gzip stream (the only check of a multipart object's bytes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.archive.target import ArchiveReadError, ArchiveTarget
from orchestrator.archive.verify import StreamVerifier, sha256_file, verify_file
from orchestrator.archive.writer import describe_os_error
from orchestrator.domain.model import Day, DayStatus, ResourceType
from orchestrator.errors import ArchiveError, DownloadCorrupt

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


async def verify_archive(
    store: Store, *, deep: bool = False, target: ArchiveTarget | None = None
) -> VerifyReport:
    """Check every archived file against what the store recorded.

    A file absent is ``missing``; one whose size or sha256 differs is ``changed`` (with
    ``deep``, also a file that is no longer whole gzip JSON lines or whose record count differs);
    one that cannot be read is ``unreadable``. Paths are the absolute ones recorded at archive
    time, so a moved archive shows as missing. Objects are checked through ``target`` (the
    configured archive); one recorded elsewhere is unreadable. Needs no Twilio credentials.
    """
    archived = [day for day in await store.list_days() if day.archive is not None]
    problems: list[FileProblem] = []
    for day in archived:
        assert day.archive is not None
        if "://" in day.archive.path:
            problem = await _check_object(day, deep, target)
        else:
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


async def _check_object(day: Day, deep: bool, target: ArchiveTarget | None) -> FileProblem | None:
    facts = day.archive
    assert facts is not None

    def problem(kind: Problem, detail: str) -> FileProblem:
        return FileProblem(day.resource_type, day.day, facts.path, kind, detail)

    key = target.key_of(facts.path) if target is not None else None
    if target is None or key is None:
        where = target.url if target is not None else "no archive"
        return problem(Problem.UNREADABLE, f"recorded outside the configured archive ({where})")
    try:
        info = await target.stat(key)
    except ArchiveReadError as error:
        return problem(Problem.UNREADABLE, str(error))
    if info is None:
        return problem(Problem.MISSING, "no such object")
    size, sha256, records = info.size, info.sha256, facts.record_count
    if deep:
        verifier = StreamVerifier(allow_empty=day.status is DayStatus.COMPLETED_EMPTY_RECORDS)
        try:
            async for chunk in target.read(key):
                await asyncio.to_thread(verifier.feed, chunk)
            found = verifier.finish()
        except DownloadCorrupt as error:
            return problem(Problem.CHANGED, f"not a valid day file any more: {error}")
        except ArchiveError as error:
            return problem(Problem.UNREADABLE, str(error))
        size, sha256, records = found.size, found.sha256, found.record_count
    if size != facts.size:
        return problem(Problem.CHANGED, f"{size} bytes, recorded {facts.size}")
    if not deep and not info.ours:
        return problem(Problem.CHANGED, "the object lacks our metadata: another writer replaced it")
    # A multipart object carries no sha256 metadata (it is sent before the hash is known):
    # its bytes are checked by --deep.
    if sha256 is not None and sha256 != facts.sha256:
        where = "" if deep else " in the object's metadata"
        return problem(Problem.CHANGED, f"sha256 {sha256}{where}, recorded {facts.sha256}")
    if records != facts.record_count:
        return problem(Problem.CHANGED, f"{records} records, recorded {facts.record_count}")
    return None
