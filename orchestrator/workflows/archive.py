"""Archive every successful day's file before Twilio removes it.

``archive_due_days`` (a daemon pass): load the days due (successes without a file, not waiting
for a retry), learn each file's size and creation date from the Days list, order them by
Twilio's removal deadline, and download them within ``[archive] max_concurrent_downloads``.
Each day ends in exactly one of:

- ``archive.stored``: complete and verified at the archive's target (a directory or a bucket:
  the workflow does not know which), then recorded in the store (written only after the atomic
  rename or the completed upload, and a HEAD of the final key showing the verified size: a
  crash never leaves a day archived without its file);
- ``archive.failed`` / ``archive.write_failed``: retried at once within the pass when it may
  help, then counted in the store and tried again on a later pass with backoff (error level
  from ``RetryPolicy.alarm_after`` failures on, and always for a full or unwritable disk);
- ``archive.file_gone`` (error): Twilio no longer has the file: the day goes back to Pending
  for one new job;
- ``archive.error`` (error, with the traceback): anything else went wrong with the day; it is
  counted as a failure like the others, and the pass goes on with the other days.

The operator's audit of what was archived (``orchestrator verify-archive``) is
``orchestrator.workflows.verify_archive``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.archive.download import FileGone, download_day
from orchestrator.archive.layout import ArchiveDestination, relative_path
from orchestrator.archive.target import ArchiveTarget
from orchestrator.archive.writer import Opener
from orchestrator.domain.archiving import (
    DEFAULT_RETRY_POLICY,
    ArchiveAttempts,
    FailureKind,
    Next,
    RetryPolicy,
    after_failure,
    decide_failure,
    order_by_deadline,
)
from orchestrator.domain.model import (
    ArchiveFacts,
    Day,
    DayKey,
    DayStatus,
    RemoteDay,
    ResourceType,
    parse_day,
)
from orchestrator.errors import (
    ArchiveWriteError,
    AuthenticationError,
    DownloadCorrupt,
    DownloadExpired,
    InvalidInput,
    NotLeader,
    StoreError,
    TwilioError,
)
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext, log_changes

log = get_logger(__name__)

# Days taken per pass at most; the rest are due on the next pass.
MAX_ARCHIVES_PER_PASS = 64
# Reads of a day's failure count before giving up when other writers keep changing it.
COUNT_TRIES = 3


class Outcome(enum.StrEnum):
    STORED = "stored"
    FAILED = "failed"
    GONE = "gone"
    SKIPPED = "skipped"  # the API refused our credentials: nothing counted against the day


@dataclass
class ArchiveReport:
    """What one pass did, day by day."""

    outcomes: dict[DayKey, Outcome] = field(default_factory=dict)

    def keys(self, outcome: Outcome) -> list[DayKey]:
        return [key for key, got in self.outcomes.items() if got is outcome]

    @property
    def stored(self) -> list[DayKey]:
        return self.keys(Outcome.STORED)

    @property
    def failed(self) -> list[DayKey]:
        return self.keys(Outcome.FAILED)

    @property
    def gone(self) -> list[DayKey]:
        return self.keys(Outcome.GONE)


async def archive_due_days(
    ctx: WorkflowContext,
    *,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    opener: Opener | None = None,
    limit: int = MAX_ARCHIVES_PER_PASS,
    monotonic: Callable[[], float] = time.monotonic,
) -> ArchiveReport:
    """Download, verify and record the files of the days due; a no-op when archiving is off.

    ``opener`` (tests): a local archive opens its temporary files with it.
    """
    report = ArchiveReport()
    settings = ctx.archive
    if settings is None or not ctx.health.healthy:
        return report
    due = await ctx.store.days_due_for_archiving(limit, now=ctx.now())
    if not due:
        return report
    remote = await _remote_days(ctx, {day.resource_type for day in due})
    if not ctx.health.healthy:
        return report
    created = {key: made for key, entry in remote.items() if (made := _created_on(entry))}
    ordered = order_by_deadline(due, created)
    # FIFO: the semaphore hands out places in deadline order.
    places = asyncio.Semaphore(settings.max_concurrent_downloads)
    target = settings.archive_target()
    if opener is not None:
        target = target.with_opener(opener)

    async def one(day: Day) -> None:
        async with places:
            if not ctx.health.healthy:
                report.outcomes[day.key] = Outcome.SKIPPED
                return
            entry = remote.get(day.key)
            try:
                report.outcomes[day.key] = await _archive_day(
                    ctx,
                    settings,
                    target,
                    day,
                    entry.size if entry is not None else None,
                    policy=policy,
                    monotonic=monotonic,
                )
            except NotLeader as error:  # not one day's failure: every day stops
                lost.append(error)
            except Exception as error:  # one day's failure must not cancel the other downloads
                report.outcomes[day.key] = await _unexpected(ctx, day, error, policy)

    lost: list[NotLeader] = []
    async with asyncio.TaskGroup() as group:
        for day in ordered:
            group.create_task(one(day))
    if lost:
        raise lost[0]
    return report


async def _remote_days(
    ctx: WorkflowContext, types: Iterable[ResourceType]
) -> dict[DayKey, RemoteDay]:
    """The Days list of each type, by day; a list that cannot be read only costs its sizes."""
    found: dict[DayKey, RemoteDay] = {}
    for resource_type in sorted(types, key=list(ResourceType).index):
        try:
            entries = await ctx.client.list_days(resource_type)
        except AuthenticationError as error:
            ctx.health.record_auth_failure(error)
            return {}
        except TwilioError as error:
            log.warning(
                "archive.days_list_failed",
                resource_type=resource_type.value,
                error=str(error),
                error_type=type(error).__name__,
                action="archiving without Twilio's sizes",
            )
            continue
        for entry in entries:
            found[DayKey(entry.resource_type, entry.day)] = entry
    return found


def _created_on(entry: RemoteDay) -> dt.date | None:
    raw = entry.create_date
    if raw is None:
        return None
    try:
        return parse_day(raw[:10], field="create_date")
    except InvalidInput:
        return None


async def _archive_day(
    ctx: WorkflowContext,
    settings: ArchiveDestination,
    target: ArchiveTarget,
    day: Day,
    expected_size: int | None,
    *,
    policy: RetryPolicy,
    monotonic: Callable[[], float],
) -> Outcome:
    fields: dict[str, object] = {
        "resource_type": day.resource_type.value,
        "day": day.day.isoformat(),
        "job_sid": day.job_sid,
    }
    try:
        key = relative_path(settings.path_template, day.resource_type, day.day).as_posix()
    except InvalidInput as error:
        # Config validation and the store's dates make this unreachable; never write anyway.
        return await _failed(ctx, day, FailureKind.WRITE, str(error), policy, fields)
    attempt = 0
    while True:
        attempt += 1
        try:
            stored = await download_day(
                ctx.client,
                day.resource_type,
                day.day,
                target,
                key,
                expected_size=expected_size,
                allow_empty=day.status is DayStatus.COMPLETED_EMPTY_RECORDS,
                monotonic=monotonic,
            )
        except FileGone as error:
            return await _gone(ctx, day, str(error), fields)
        except AuthenticationError as error:
            ctx.health.record_auth_failure(error)
            return Outcome.SKIPPED
        except ArchiveWriteError as error:
            kind, message = FailureKind.WRITE, str(error)
        except DownloadCorrupt as error:
            kind, message = FailureKind.CORRUPT, str(error)
        except DownloadExpired as error:
            kind, message = FailureKind.EXPIRED_URL, str(error)
        except TwilioError as error:
            kind, message = FailureKind.TRANSPORT, f"{type(error).__name__}: {error}"
        else:
            facts = ArchiveFacts(
                path=stored.location,
                size=stored.size,
                sha256=stored.sha256,
                record_count=stored.record_count,
                archived_at=ctx.now(),
            )
            try:
                await ctx.store.record_archive(day.key, facts)
            except StoreError as error:
                # The file is complete but not recorded: the next pass writes it again.
                log.error("archive.record_failed", error=str(error), path=facts.path, **fields)
                return Outcome.FAILED
            log.info(
                "archive.stored",
                path=facts.path,
                bytes=facts.size,
                records=facts.record_count,
                sha256=facts.sha256,
                seconds=round(stored.seconds, 3),
                url_resolutions=stored.resolutions,
                attempt=attempt,
                **fields,
            )
            return Outcome.STORED
        if decide_failure(kind, attempt, policy) is Next.RETRY_NOW:
            log.warning(
                "archive.retrying", reason=kind.value, error=message, attempt=attempt, **fields
            )
            continue
        return await _failed(ctx, day, kind, message, policy, fields)


async def _unexpected(
    ctx: WorkflowContext, day: Day, error: Exception, policy: RetryPolicy
) -> Outcome:
    """An error ``_archive_day`` does not expect (a bug, a store error where none was caught):
    logged with the day and its traceback, counted as a failure, so the day backs off alone."""
    fields: dict[str, object] = {
        "resource_type": day.resource_type.value,
        "day": day.day.isoformat(),
        "job_sid": day.job_sid,
    }
    details: dict[str, object] = {"error": str(error), "error_type": type(error).__name__}
    if not isinstance(error, StoreError):
        details["exc_info"] = error
    log.error("archive.error", **details, **fields)
    message = f"{type(error).__name__}: {error}"
    return await _failed(ctx, day, FailureKind.UNEXPECTED, message, policy, fields)


async def _failed(
    ctx: WorkflowContext,
    day: Day,
    kind: FailureKind,
    message: str,
    policy: RetryPolicy,
    fields: dict[str, object],
) -> Outcome:
    jitter = ctx.random()
    try:
        state = await _count_failure(
            ctx, day.key, ctx.now(), f"{kind.value}: {message}", policy, jitter
        )
    except StoreError as error:
        log.error("archive.record_failed", error=str(error), **fields)
        return Outcome.FAILED
    details = {
        "reason": kind.value,
        "error": message,
        "failures": state.attempts,
        "next_attempt_at": state.next_attempt_at.isoformat() if state.next_attempt_at else None,
        **fields,
    }
    if kind is FailureKind.WRITE:
        log.error(
            "archive.write_failed",
            directory=str(ctx.archive.directory) if ctx.archive and ctx.archive.directory else None,
            destination=ctx.archive.archive_target().url if ctx.archive else None,
            action="free space or fix permissions or the bucket policy; the day is retried later",
            **details,
        )
    elif state.attempts >= policy.alarm_after:
        log.error("archive.failed", **details)
    else:
        log.warning("archive.failed", **details)
    return Outcome.FAILED


async def _count_failure(
    ctx: WorkflowContext,
    key: DayKey,
    now: dt.datetime,
    error: str,
    policy: RetryPolicy,
    rand: float,
) -> ArchiveAttempts:
    """Count one failed pass from the day's stored attempts and write the result.

    The store writes only if the count is still the one read; when another writer (a second
    daemon, an overlapping pass) counted first, read again and count from there, so both
    failures stay counted. StoreError when the day is no longer waiting for its archive.
    """
    for _ in range(COUNT_TRIES):
        previous = await ctx.store.archive_attempts(key)
        if previous is None:
            raise StoreError(f"cannot count an archive failure of {key.resource_type} {key.day}")
        state = after_failure(previous, now, policy, rand, error)
        if await ctx.store.record_archive_failure(key, previous, state):
            return state
    raise StoreError(
        f"archive failure of {key.resource_type} {key.day} not counted: "
        f"other writers changed its count {COUNT_TRIES} times"
    )


async def _gone(ctx: WorkflowContext, day: Day, message: str, fields: dict[str, object]) -> Outcome:
    changes = await ctx.store.return_day_for_rearchive(
        day.key, ctx.now(), reason="archive: Twilio no longer has the file"
    )
    log.error(
        "archive.file_gone",
        error=message,
        action="day back to Pending for a new job" if changes else "nothing to do",
        **fields,
    )
    log_changes(changes)
    return Outcome.GONE
