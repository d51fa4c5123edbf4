"""The repository: every read and write of the daemon's durable state, as intention-named methods.

Nothing else in the project writes SQL. Methods take domain values and return domain values
(``Job``, ``Day``, ``DayChange``), never rows. Each write method is one transaction; each takes
``now`` from the caller (the clock is read in one place). A ``Store`` is bound to one account.

The store decides nothing: what a poll, a delete or the end of a job writes is decided by a pure
function of ``domain.settlement`` over the job and its days as locked here (``settle_job``), and
the store writes the ``Settlement`` it returns; the archive retry count likewise
(``domain.archiving``). Write transactions of one process queue in ``_write_slots`` (one at a
time on SQLite) rather than on the database lock.

Leadership fence
    A daemon that leads the account (``store.leadership``, ``domain.leadership``) records its
    takeover with ``claim_leadership``, which increments the account's ``leaders.epoch``, and
    then fences the store (``fence``): every write transaction first asks the fence whether the
    leader may act now (its lease), then reads the epoch with ``SELECT ... FOR SHARE`` and
    refuses (``NotLeader``, the transaction rolled back whole) unless it is still the one taken
    over with. A takeover's UPDATE of the epoch waits for the share locks of writes in flight
    (PostgreSQL) or for the write lock (SQLite), so a deposed leader's write either commits
    before the new leader starts or is refused: it never lands after. Without a fence (the
    operator commands, ``run_cycle``) writes are not checked.

Transactions
    Writes run in ``engine.begin()``: on SQLite that emits BEGIN IMMEDIATE (see ``engine``), so
    writers queue on the database lock and every read inside a write transaction sees the latest
    committed state. On PostgreSQL (READ COMMITTED) each write first locks the rows it will decide
    on with SELECT ... FOR UPDATE, always in the same order (job row, then day rows by day), so two
    writers on the same job or days run one after the other and no update is lost; the second one
    re-reads what the first committed. Reads run in read-only transactions.

One live job per day, enforced by the database
    A day row has a single ``job_id`` column (foreign key onto ``jobs``), so a day names at most one
    job, structurally. Claiming is a conditional UPDATE,
    ``... SET job_id = :new WHERE job_id IS NULL AND status = 'Pending' AND eligible``, whose row
    count must equal the number of requested days, else the whole transaction (including the new
    job row) rolls back with ``ClaimConflict``. The WHERE is evaluated against the latest committed
    row: PostgreSQL re-checks it after waiting for a concurrent claimer's row lock, SQLite
    serializes writers. So two claims of one day, from tasks, processes or two daemons, can never
    both succeed. A job's days are handed back (``job_id`` NULL) in the same transaction that ends
    the job or records their failure (a settlement's releases), and a CHECK makes an in-flight
    day without a job impossible. Friendly names are unique per account (a replayed
    claim of the same attempt conflicts) and job SIDs are unique.

History
    ``transitions`` is append-only: only INSERTs here, and database triggers refuse UPDATE and
    DELETE. Only real changes are written (the settlement holds only real changes, decided over
    the locked rows), so applying the same details twice writes nothing the second time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.domain.archiving import ArchiveAttempts
from orchestrator.domain.leadership import Leader
from orchestrator.domain.model import (
    ArchiveFacts,
    Day,
    DayChange,
    DayKey,
    DayStatus,
    Job,
    JobRequest,
    JobState,
    ObservedBy,
    ResourceType,
    check_job_sid,
)
from orchestrator.domain.observed import AtRisk, ExportRange, StoreSnapshot
from orchestrator.domain.settlement import HeldDay, Release, Settlement
from orchestrator.errors import ClaimConflict, NotLeader, StoreError
from orchestrator.store.engine import (
    in_parameter,
    insert_ignoring_conflicts,
    is_in,
    is_sqlite,
    read_only,
)
from orchestrator.store.rows import change_from_row
from orchestrator.store.rows import day_from_row as _day
from orchestrator.store.rows import job_from_row as _job
from orchestrator.store.schema import (
    ENUM_LENGTH,
    SUCCESS_STATUSES,
    days,
    jobs,
    leaders,
    transitions,
)

# Rows are read by column name; Row's type parameters differ between SQLAlchemy 2.0 and 2.1.
_Row = Any

# A create's answer comes within this of writing its row (the client's timeouts are far
# shorter); it bounds the scan of ``ambiguous_creates_since`` by the created_at index.
_LONGEST_CREATE = dt.timedelta(hours=1)

# Days per statement: big batches are few statements; below SQLite's 32,766 parameters.
_CHUNK = 5000

# A decision over a job and the days it holds, as locked (``domain.settlement``).
Decision = Callable[[Job, Sequence[HeldDay]], Settlement]

# Statements of the poll path, built once: SQLAlchemy then computes each one's cache key once,
# not on every poll.
_LOCK_JOB = (
    sa.select(jobs)
    .where(jobs.c.id == sa.bindparam("job_id"), jobs.c.account_sid == sa.bindparam("account_sid"))
    .with_for_update()
)
# The job's row repeated beside each day it holds (none: the job alone, through _LOCK_JOB).
_LOCK_JOB_WITH_DAYS = (
    sa.select(
        jobs,
        days.c.day.label("held_day"),
        days.c.status.label("held_status"),
        days.c.resubmits.label("held_resubmits"),
    )
    .join(days, days.c.job_id == jobs.c.id)
    .where(
        jobs.c.id == sa.bindparam("job_id"),
        jobs.c.account_sid == sa.bindparam("account_sid"),
        days.c.account_sid == sa.bindparam("account_sid"),
    )
    .order_by(days.c.day)
    .with_for_update()
)
_LOCK_HELD_DAYS = (
    sa.select(days.c.day, days.c.status, days.c.resubmits)
    .where(
        days.c.account_sid == sa.bindparam("account_sid"),
        days.c.job_id == sa.bindparam("job_id"),
    )
    .order_by(days.c.day)
    .with_for_update()
)
# Every column a settlement may change; the row is locked, so writing them all is exact.
_SETTLED_COLUMNS = (
    "state",
    "last_polled_at",
    "next_poll_at",
    "last_change_at",
    "finished_at",
    "deleted_at",
    "poll_count",
    "queue_position",
    "eta",
    "last_error",
    "last_progress_at",
    "create_ambiguous_at",
    "lookups",
    "next_lookup_at",
)
_UPDATE_JOB = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("job_id"))
    .values({name: sa.bindparam(f"new_{name}") for name in _SETTLED_COLUMNS})
)


def _job_values(job: Job) -> dict[str, Any]:
    """``_UPDATE_JOB``'s parameters for ``job``."""
    return {"job_id": job.id} | {f"new_{name}": getattr(job, name) for name in _SETTLED_COLUMNS}


# The fence's read: shared, so a takeover's UPDATE of the epoch waits for writes in flight.
_LEADER_EPOCH = (
    sa.select(leaders.c.epoch)
    .where(leaders.c.account_sid == sa.bindparam("account_sid"))
    .with_for_update(read=True)
)


@dataclass(frozen=True, slots=True)
class Fence:
    """What a leader's writes are checked against: its takeover's epoch, and whether it may
    act now (its lease: ``domain.leadership.Lease``)."""

    epoch: int
    may_act: Callable[[], bool]


_DAY_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    *days.c,
    jobs.c.job_sid.label("holder_sid"),
)
_DAYS_WITH_HOLDER = days.outerjoin(jobs, days.c.job_id == jobs.c.id)


@asynccontextmanager
async def _transaction(engine: AsyncEngine, what: str) -> AsyncIterator[AsyncConnection]:
    """One transaction; a database error becomes a StoreError naming ``what`` failed."""
    try:
        async with engine.begin() as conn:
            yield conn
    except StoreError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"{what} failed: {_describe(exc)}") from exc
    except OSError as exc:
        # asyncpg's connect raises the socket's own error (refused, reset, timed out), which
        # SQLAlchemy leaves unwrapped: it is a store failure like any other (its cause is kept,
        # so the daemon still tells an outage from an error of the pass).
        raise StoreError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class RetryOutcome:
    """What ``retry_days_in_range`` did: the GaveUp days it returned to Pending, and how many
    of the selected days were in each status before."""

    changes: list[DayChange]
    selected: dict[DayStatus, int]


class Store:
    """The repository of one Twilio account's export state."""

    def __init__(self, engine: AsyncEngine, account_sid: str) -> None:
        if not account_sid:
            raise StoreError("account_sid is required")
        self._engine = engine
        self._reader = read_only(engine)
        self.account_sid = account_sid
        # Write transactions of this process wait here, not on the database: SQLite takes one
        # writer at a time, and a second BEGIN IMMEDIATE would hold a pooled connection (and a
        # driver thread) busy-waiting for the lock; PostgreSQL takes as many as the pool holds.
        self._write_slots = asyncio.Semaphore(1 if is_sqlite(engine) else self.max_connections)
        self._fence: Fence | None = None

    @property
    def max_connections(self) -> int:
        """How many transactions can be open at once without waiting for a pooled connection."""
        size = getattr(self._engine.pool, "size", None)
        return max(1, size()) if callable(size) else 1

    def __repr__(self) -> str:
        return f"Store(dialect={self._engine.dialect.name!r}, account_sid={self.account_sid!r})"

    # ------------------------------------------------------------------ transactions

    @asynccontextmanager
    async def _write(self, what: str, *, fenced: bool = True) -> AsyncIterator[AsyncConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite) for ``what``, in a write slot;
        checked against the fence, if any (see the module docstring)."""
        fence = self._fence if fenced else None
        async with self._write_slots, _transaction(self._engine, what) as conn:
            if fence is not None:
                await self._check_fence(conn, fence, what)
            yield conn

    async def _check_fence(self, conn: AsyncConnection, fence: Fence, what: str) -> None:
        # The lease first: a leader that cannot tell it still leads does not even read.
        if not fence.may_act():
            raise NotLeader(f"{what} refused: leadership not confirmed")
        epoch = (
            await conn.execute(_LEADER_EPOCH, {"account_sid": self.account_sid})
        ).scalar_one_or_none()
        if epoch != fence.epoch:
            raise NotLeader(
                f"{what} refused: another instance took over (epoch {epoch}, ours {fence.epoch})"
            )

    def _read(self, what: str) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read-only transaction for ``what``."""
        return _transaction(self._reader, what)

    # ------------------------------------------------------------------ wanted days

    async def upsert_wanted_days(
        self,
        keys: Iterable[DayKey],
        now: dt.datetime,
        *,
        observed_by: ObservedBy = ObservedBy.OPERATOR,
    ) -> int:
        """Record days as wanted (Pending) unless already known; return how many were new.

        Idempotent; never touches an existing day. Each new day gets its first transition
        (None -> Pending), so a day's history starts when it was first wanted.
        """
        rows = [
            {
                "account_sid": self.account_sid,
                "resource_type": key.resource_type,
                "day": key.day,
                "status": DayStatus.PENDING,
                "first_wanted_at": now,
                "last_changed_at": now,
            }
            for key in sorted(set(keys), key=_key_order)
        ]
        if not rows:
            return 0
        async with self._write("upsert wanted days") as conn:
            stmt = insert_ignoring_conflicts(
                conn, days, ["account_sid", "resource_type", "day"]
            ).returning(days.c.resource_type, days.c.day)
            inserted = (await conn.execute(stmt, rows)).all()
            by_type = _group(inserted, lambda row: row.resource_type)
            for resource_type, new_rows in by_type.items():
                await self._insert_transitions(
                    conn,
                    resource_type,
                    [row.day for row in new_rows],
                    None,
                    DayStatus.PENDING,
                    observed_by,
                    job_id=None,
                    job_sid=None,
                    reason="wanted",
                    now=now,
                )
        return len(inserted)

    async def pending_days(
        self, now: dt.datetime, *, resource_type: ResourceType | None = None
    ) -> list[Day]:
        """Days the planner may put in a new job: Pending, in no job, past their resubmit delay."""
        query = (
            sa.select(*_DAY_COLUMNS)
            .select_from(_DAYS_WITH_HOLDER)
            .where(
                days.c.account_sid == self.account_sid,
                days.c.status == DayStatus.PENDING,
                days.c.job_id.is_(None),
                sa.or_(days.c.not_before.is_(None), days.c.not_before <= now),
            )
            .order_by(days.c.resource_type, days.c.day)
        )
        if resource_type is not None:
            query = query.where(days.c.resource_type == resource_type)
        async with self._read("pending days") as conn:
            return [_day(row) for row in await conn.execute(query)]

    # ------------------------------------------------------------------ submitting

    async def claim_days(self, request: JobRequest, now: dt.datetime) -> Job:
        """Create the job row (state submitting) and point every day of ``request`` at it.

        One transaction. Each claimed day's ``attempts`` goes up by one; statuses stay Pending
        until Twilio answers (``record_job_sid``). Raises ``ClaimConflict`` and changes nothing
        when any day is unknown, not Pending, not yet eligible (``not_before``) or in a job, or
        when a job of that friendly name exists.
        """
        wanted = request.days
        async with self._write("claim days") as conn:
            # Lock in day order (PostgreSQL): concurrent claimers queue instead of deadlocking.
            current = (
                await conn.execute(
                    sa.select(days.c.day, days.c.status, days.c.job_id, days.c.not_before)
                    .where(
                        self._day_range(request.resource_type, request.start_day, request.end_day)
                    )
                    .order_by(days.c.day)
                    .with_for_update()
                )
            ).all()
            problem = _claim_problem(wanted, current, now)
            if problem is not None:
                raise ClaimConflict(f"cannot claim {request.friendly_name}: {problem}")
            try:
                job_id = (
                    await conn.execute(
                        sa.insert(jobs)
                        .values(
                            account_sid=self.account_sid,
                            friendly_name=request.friendly_name,
                            resource_type=request.resource_type,
                            start_day=request.start_day,
                            end_day=request.end_day,
                            day_count=len(wanted),
                            state=JobState.SUBMITTING,
                            attempt=request.attempt,
                            created_at=now,
                            poll_count=0,
                        )
                        .returning(jobs.c.id)
                    )
                ).scalar_one()
            except sa.exc.IntegrityError as exc:
                raise ClaimConflict(
                    f"cannot claim {request.friendly_name}: a job of that name exists"
                ) from exc
            claimed = await conn.execute(
                sa.update(days)
                .where(
                    self._day_range(request.resource_type, request.start_day, request.end_day),
                    days.c.job_id.is_(None),
                    days.c.status == DayStatus.PENDING,
                    sa.or_(days.c.not_before.is_(None), days.c.not_before <= now),
                )
                .values(job_id=job_id, attempts=days.c.attempts + 1)
            )
            if claimed.rowcount != len(wanted):
                # Unreachable while the lock above holds; kept as the database-level guard.
                raise ClaimConflict(
                    f"cannot claim {request.friendly_name}: another writer claimed some days"
                )
            return await self._job(conn, job_id)

    async def record_job_sid(
        self, job_id: int, job_sid: str, now: dt.datetime, next_poll_at: dt.datetime
    ) -> tuple[Job, list[DayChange]]:
        """Twilio created the job: store its SID, make it active, move its days to Submitted.

        Returns the job and the transitions written. Idempotent for the same SID (no
        transitions the second time); a different SID, or a job no longer submitting, is an error.
        """
        check_job_sid(job_sid)
        async with self._write("record job sid") as conn:
            job = await self._lock_job(conn, job_id)
            if job.job_sid == job_sid and job.state is not JobState.SUBMITTING:
                return job, []
            if job.state is not JobState.SUBMITTING:
                raise StoreError(f"job {job.friendly_name} is {job.state}, not submitting")
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    job_sid=job_sid,
                    state=JobState.ACTIVE,
                    submitted_at=now,
                    next_poll_at=next_poll_at,
                    last_change_at=now,
                    last_progress_at=now,
                    next_lookup_at=None,
                )
            )
            held = await self._lock_held_days(conn, job_id)
            changes = [
                DayChange(
                    resource_type=job.resource_type,
                    day=row.day,
                    from_status=row.status,
                    to_status=DayStatus.SUBMITTED,
                    observed_at=now,
                    observed_by=ObservedBy.SUBMIT,
                    job_sid=job_sid,
                )
                for row in held
                if row.status is DayStatus.PENDING
            ]
            await self._write_changes(conn, job, changes, {}, now)
            return await self._job(conn, job_id), changes

    async def jobs_submitting(self) -> list[Job]:
        """Jobs whose create POST may or may not have reached Twilio (adopt them on start-up)."""
        return await self._jobs_where(jobs.c.state == JobState.SUBMITTING, order=jobs.c.id)

    async def ambiguous_creates_since(self, since: dt.datetime) -> list[Job]:
        """Jobs whose create got an unclear answer at or after ``since``, in any state."""
        return await self._jobs_where(
            jobs.c.created_at >= since - _LONGEST_CREATE,
            jobs.c.create_ambiguous_at >= since,
            order=jobs.c.id,
        )

    # ------------------------------------------------------------------ polling

    async def jobs_due_for_poll(self, now: dt.datetime, limit: int) -> list[Job]:
        """Active jobs whose next poll is due, most overdue first."""
        return await self._jobs_where(
            jobs.c.state == JobState.ACTIVE,
            jobs.c.next_poll_at <= now,
            order=jobs.c.next_poll_at,
            limit=limit,
        )

    async def settle_job(self, job_id: int, decide: Decision) -> Settlement:
        """Lock the job and the days it holds, let ``decide`` settle them, write the result.

        One write transaction, whatever was decided: the job's new row, every transition and
        the days that leave the job (``domain.settlement`` makes the decisions: a poll, a failed
        poll, the start of a delete, the end of a job). The job's id and account cannot change.
        A decision that refuses (an impossible ending) raises before anything is written. The
        day UPDATEs are conditional on each day still being held in the status read, and their
        row counts checked: a guard on top of the row locks.
        """
        async with self._write("settle job") as conn:
            job, held = await self._lock_job_and_days(conn, job_id)
            settlement = decide(job, held)
            settled = settlement.job
            if (settled.id, settled.resource_type, settled.job_sid) != (
                job.id,
                job.resource_type,
                job.job_sid,
            ):
                raise StoreError(f"a settlement of job {job.friendly_name} names another job")
            await self._write_changes(
                conn,
                job,
                settlement.changes,
                settlement.releases,
                settlement.at,
                reason=settlement.reason,
            )
            await conn.execute(_UPDATE_JOB, _job_values(settled))
            return settlement

    async def jobs_stale(
        self, now: dt.datetime, stale_after: dt.timedelta, *, limit: int | None = None
    ) -> list[Job]:
        """Active jobs with no day change for ``stale_after`` (submission counts as a change)."""
        return await self._jobs_where(
            jobs.c.state == JobState.ACTIVE,
            jobs.c.last_change_at <= now - stale_after,
            order=jobs.c.last_change_at,
            limit=limit,
        )

    # ------------------------------------------------------------------ ending jobs

    async def jobs_ready_for_deletion(
        self, *, require_archived: bool, limit: int | None = None
    ) -> list[Job]:
        """Finished jobs, oldest first; with ``require_archived`` only those whose every
        successful day is archived (archiving on: never delete a job before its files are safe).
        """
        conditions: list[sa.ColumnElement[bool]] = [jobs.c.state == JobState.FINISHED]
        if require_archived:
            conditions.append(
                ~sa.exists().where(
                    days.c.job_id == jobs.c.id,
                    days.c.completed_at.is_not(None),
                    days.c.archived_at.is_(None),
                )
            )
        return await self._jobs_where(*conditions, order=jobs.c.finished_at, limit=limit)

    # ------------------------------------------------------------------ operator

    async def retry_days(
        self,
        keys: Iterable[DayKey],
        now: dt.datetime,
        *,
        reason: str | None = None,
        observed_by: ObservedBy = ObservedBy.OPERATOR,
    ) -> list[DayChange]:
        """``orchestrator retry``: GaveUp days go back to Pending with a fresh resubmit budget.

        Pending days outside a job also get their budget and delay reset (no transition: the
        status does not change). Days in a job or already successful are left alone.
        """
        wanted = sorted(set(keys), key=_key_order)
        async with self._write("retry days") as conn:
            changes: list[DayChange] = []
            for resource_type, chunk in _chunks_by_type(wanted):
                rows = (
                    await conn.execute(
                        sa.select(days.c.day, days.c.status)
                        .where(
                            days.c.account_sid == self.account_sid,
                            days.c.resource_type == resource_type,
                            is_in(conn, days.c.day, chunk),
                            days.c.job_id.is_(None),
                            days.c.status.in_([DayStatus.GAVE_UP, DayStatus.PENDING]),
                        )
                        .order_by(days.c.day)
                        .with_for_update()
                    )
                ).all()
                changes += await self._return_to_pending(
                    conn, resource_type, rows, now, reason=reason, observed_by=observed_by
                )
            return changes

    async def retry_days_in_range(
        self,
        resource_type: ResourceType | None,
        start: dt.date,
        end: dt.date,
        now: dt.datetime,
        *,
        reason: str | None = None,
        observed_by: ObservedBy = ObservedBy.OPERATOR,
    ) -> RetryOutcome:
        """``retry_days`` over the stored days from ``start`` to ``end`` (of one type, or all),
        selected in SQL: the cost follows the days stored, never the calendar span (``--from
        0001-01-01 --to 9999-12-31`` is one indexed range read). Also counts the selected days
        by status, before the change, in the same transaction: what ``retry`` tells an operator
        when nothing was returned."""
        types = [resource_type] if resource_type is not None else list(ResourceType)
        async with self._write("retry days in range") as conn:
            counts: dict[DayStatus, int] = defaultdict(int)
            changes: list[DayChange] = []
            for rtype in types:
                selected = self._day_range(rtype, start, end)
                for status, count in await conn.execute(
                    sa.select(days.c.status, sa.func.count())
                    .where(selected)
                    .group_by(days.c.status)
                ):
                    counts[status] += count
                rows = (
                    await conn.execute(
                        sa.select(days.c.day, days.c.status)
                        .where(
                            selected,
                            days.c.job_id.is_(None),
                            days.c.status.in_([DayStatus.GAVE_UP, DayStatus.PENDING]),
                        )
                        .order_by(days.c.day)
                        .with_for_update()
                    )
                ).all()
                for chunk in _batches(rows, _CHUNK):
                    changes += await self._return_to_pending(
                        conn, rtype, chunk, now, reason=reason, observed_by=observed_by
                    )
            return RetryOutcome(changes=changes, selected=dict(counts))

    async def _return_to_pending(
        self,
        conn: AsyncConnection,
        resource_type: ResourceType,
        rows: Sequence[_Row],
        now: dt.datetime,
        *,
        reason: str | None,
        observed_by: ObservedBy,
    ) -> list[DayChange]:
        """Reset the locked Pending/GaveUp ``rows`` (day, status) of a retry; GaveUp ones get
        their GaveUp -> Pending transition. Returns those changes."""
        if not rows:
            return []
        await conn.execute(
            sa.update(days)
            .where(
                days.c.account_sid == self.account_sid,
                days.c.resource_type == resource_type,
                is_in(conn, days.c.day, [row.day for row in rows]),
            )
            .values(
                status=DayStatus.PENDING,
                resubmits=0,
                not_before=None,
                last_changed_at=sa.case(
                    (days.c.status == DayStatus.GAVE_UP, now),
                    else_=days.c.last_changed_at,
                ),
            )
        )
        given_up = [row.day for row in rows if row.status is DayStatus.GAVE_UP]
        if given_up:
            await self._insert_transitions(
                conn,
                resource_type,
                given_up,
                DayStatus.GAVE_UP,
                DayStatus.PENDING,
                observed_by,
                job_id=None,
                job_sid=None,
                reason=reason,
                now=now,
            )
        return [
            DayChange(
                resource_type=resource_type,
                day=day,
                from_status=DayStatus.GAVE_UP,
                to_status=DayStatus.PENDING,
                observed_at=now,
                observed_by=observed_by,
            )
            for day in given_up
        ]

    # ------------------------------------------------------------------ archiving

    async def days_due_for_archiving(
        self, limit: int, *, now: dt.datetime | None = None
    ) -> list[Day]:
        """Successful days without an archived file, oldest completion first.

        With ``now``, days whose failed archive waits for a later attempt
        (``archive_next_attempt_at`` after ``now``) are left out, so they never hold a place
        that a day ready to go could take.
        """
        query = (
            sa.select(*_DAY_COLUMNS)
            .select_from(_DAYS_WITH_HOLDER)
            .where(
                days.c.account_sid == self.account_sid,
                days.c.archived_at.is_(None),
                # Only successes have a completion time (a CHECK constraint says so).
                days.c.completed_at.is_not(None),
            )
            .order_by(days.c.completed_at, days.c.resource_type, days.c.day)
            .limit(limit)
        )
        if now is not None:
            query = query.where(
                sa.or_(
                    days.c.archive_next_attempt_at.is_(None),
                    days.c.archive_next_attempt_at <= now,
                )
            )
        async with self._read("days due for archiving") as conn:
            return [_day(row) for row in await conn.execute(query)]

    async def record_archive(self, key: DayKey, facts: ArchiveFacts) -> Day:
        """Record where a successful day's complete file is; replaces earlier facts."""
        async with self._write("record archive") as conn:
            result = await conn.execute(
                sa.update(days)
                .where(self._day_key(key), days.c.completed_at.is_not(None))
                .values(
                    archive_path=facts.path,
                    archive_size=facts.size,
                    archive_sha256=facts.sha256,
                    archive_record_count=facts.record_count,
                    archived_at=facts.archived_at,
                    # The failures that came before stay counted; nothing is pending any more.
                    archive_next_attempt_at=None,
                    archive_error=None,
                )
            )
            day = await self._day(conn, key)
            if result.rowcount != 1:
                state = "unknown" if day is None else f"{day.status}, not a success"
                raise StoreError(f"cannot archive {key.resource_type} {key.day}: {state}")
            assert day is not None
            return day

    async def record_archive_failure(
        self, key: DayKey, previous: ArchiveAttempts, new: ArchiveAttempts
    ) -> bool:
        """Write a successful, unarchived day's archive attempts after a failed pass.

        ``new`` is what ``domain.archiving.after_failure`` computed from ``previous`` (as read by
        ``archive_attempts``). One conditional UPDATE: it applies only while the day is a success
        without an archived file and its ``archive_attempts`` is still ``previous.attempts``, so
        two writers cannot both count from the same number and lose a failure (the WHERE is
        evaluated against the latest committed row: PostgreSQL re-checks it after waiting for a
        concurrent writer's row lock, SQLite serializes writers). Returns False, writing nothing,
        when another writer counted first: compute again from the fresh count. Raises StoreError
        when the day is unknown, not a success or already archived (nothing is written then).
        """
        waiting = (
            self._day_key(key),
            days.c.completed_at.is_not(None),
            days.c.archived_at.is_(None),
        )
        async with self._write("record archive failure") as conn:
            result = await conn.execute(
                sa.update(days)
                .where(*waiting, days.c.archive_attempts == previous.attempts)
                .values(
                    archive_attempts=new.attempts,
                    archive_next_attempt_at=new.next_attempt_at,
                    archive_error=new.error,
                )
            )
            if result.rowcount == 1:
                return True
            found = (
                await conn.execute(sa.select(days.c.archive_attempts).where(*waiting))
            ).one_or_none()
            if found is None:
                raise StoreError(
                    f"cannot count an archive failure of {key.resource_type} {key.day}: "
                    "unknown, not a success, or already archived"
                )
            return False

    async def archive_attempts(self, key: DayKey) -> ArchiveAttempts | None:
        """The day's failed archive attempts so far (None for an unknown day)."""
        query = sa.select(
            days.c.archive_attempts, days.c.archive_next_attempt_at, days.c.archive_error
        ).where(self._day_key(key))
        async with self._read("archive attempts") as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return ArchiveAttempts(
            attempts=row.archive_attempts,
            next_attempt_at=row.archive_next_attempt_at,
            error=row.archive_error,
        )

    async def return_day_for_rearchive(
        self, key: DayKey, now: dt.datetime, *, reason: str
    ) -> list[DayChange]:
        """Twilio no longer has the file of a successful day we never archived: make it again.

        One transaction: the day goes back to Pending with no job, no completion time, no
        resubmit delay and a clean archive retry state, so the planner puts it in one new job;
        one transition (observed_by=archive, naming the job that made the lost file) with
        ``reason``. The resubmit count is not touched (it was not the day's failure). A day no
        longer in that state (archived, or already returned) is left alone: returns [].
        """
        async with self._write("return day for rearchive") as conn:
            row = (
                await conn.execute(
                    sa.select(days.c.status, days.c.job_id, jobs.c.job_sid)
                    .select_from(_DAYS_WITH_HOLDER)
                    .where(
                        self._day_key(key),
                        days.c.completed_at.is_not(None),
                        days.c.archived_at.is_(None),
                    )
                    .with_for_update(of=days)
                )
            ).one_or_none()
            if row is None:
                return []
            await conn.execute(
                sa.update(days)
                .where(self._day_key(key))
                .values(
                    status=DayStatus.PENDING,
                    job_id=None,
                    completed_at=None,
                    not_before=None,
                    last_changed_at=now,
                    archive_attempts=0,
                    archive_next_attempt_at=None,
                    archive_error=None,
                )
            )
            await self._insert_transitions(
                conn,
                key.resource_type,
                [key.day],
                row.status,
                DayStatus.PENDING,
                ObservedBy.ARCHIVE,
                job_id=row.job_id,
                job_sid=row.job_sid,
                reason=reason,
                now=now,
            )
            return [
                DayChange(
                    resource_type=key.resource_type,
                    day=key.day,
                    from_status=row.status,
                    to_status=DayStatus.PENDING,
                    observed_at=now,
                    observed_by=ObservedBy.ARCHIVE,
                    job_sid=row.job_sid,
                )
            ]

    # ------------------------------------------------------------------ reading

    async def get_job(self, job_id: int) -> Job:
        async with self._read("get job") as conn:
            return await self._job(conn, job_id)

    async def job_by_sid(self, job_sid: str) -> Job | None:
        found = await self._jobs_where(jobs.c.job_sid == job_sid, order=jobs.c.id)
        return found[0] if found else None

    async def job_by_friendly_name(self, friendly_name: str) -> Job | None:
        found = await self._jobs_where(jobs.c.friendly_name == friendly_name, order=jobs.c.id)
        return found[0] if found else None

    async def list_jobs(self, *, states: Iterable[JobState] | None = None) -> list[Job]:
        """Jobs (of the given states), oldest first."""
        conditions = [] if states is None else [jobs.c.state.in_(list(states))]
        return await self._jobs_where(*conditions, order=jobs.c.id)

    async def get_day(self, key: DayKey) -> Day | None:
        async with self._read("get day") as conn:
            return await self._day(conn, key)

    async def list_days(
        self,
        *,
        resource_type: ResourceType | None = None,
        statuses: Iterable[DayStatus] | None = None,
    ) -> list[Day]:
        """Known days (of a type, in some statuses), by type then day."""
        query = (
            sa.select(*_DAY_COLUMNS)
            .select_from(_DAYS_WITH_HOLDER)
            .where(days.c.account_sid == self.account_sid)
            .order_by(days.c.resource_type, days.c.day)
        )
        if resource_type is not None:
            query = query.where(days.c.resource_type == resource_type)
        if statuses is not None:
            query = query.where(days.c.status.in_(list(statuses)))
        async with self._read("list days") as conn:
            return [_day(row) for row in await conn.execute(query)]

    async def days_of_job(self, job_id: int) -> list[Day]:
        """The days a job holds now (in flight, or produced by it)."""
        query = (
            sa.select(*_DAY_COLUMNS)
            .select_from(_DAYS_WITH_HOLDER)
            .where(days.c.account_sid == self.account_sid, days.c.job_id == job_id)
            .order_by(days.c.day)
        )
        async with self._read("days of job") as conn:
            return [_day(row) for row in await conn.execute(query)]

    async def day_history(self, key: DayKey) -> list[DayChange]:
        """Every status the day has passed through, oldest first."""
        query = (
            sa.select(transitions)
            .where(
                transitions.c.account_sid == self.account_sid,
                transitions.c.resource_type == key.resource_type,
                transitions.c.day == key.day,
            )
            .order_by(transitions.c.id)
        )
        async with self._read("day history") as conn:
            return [change_from_row(row) for row in await conn.execute(query)]

    async def counts_by_status(self) -> dict[ResourceType, dict[DayStatus, int]]:
        """How many days are in each status, per resource type (for ``status``)."""
        query = (
            sa.select(days.c.resource_type, days.c.status, sa.func.count())
            .where(days.c.account_sid == self.account_sid)
            .group_by(days.c.resource_type, days.c.status)
        )
        counts: dict[ResourceType, dict[DayStatus, int]] = defaultdict(dict)
        async with self._read("counts by status") as conn:
            for resource_type, status, count in await conn.execute(query):
                counts[resource_type][status] = count
        return dict(counts)

    async def requested_days_since(self, since: dt.datetime) -> int:
        """Days requested from Twilio in jobs created at or after ``since`` (the daily budget).

        A job still submitting counts (its create may have reached Twilio); one lost without a
        SID does not (Twilio refused it, or never received it, and charged no quota for it),
        unless its create got an unclear answer: that one may be a real job on Twilio.
        """
        async with self._read("requested days") as conn:
            return int((await conn.execute(_requested_since(self.account_sid, since))).scalar_one())

    # ------------------------------------------------------------------ leadership

    async def claim_leadership(self, host: str, pid: int, now: dt.datetime) -> Leader:
        """Record a takeover by ``host``/``pid``: the next epoch. Call only holding the lock.

        Not fenced (it is what moves the fence); it waits for writes of the last leader still
        in flight (they hold the epoch's row shared).
        """
        async with self._write("claim leadership", fenced=False) as conn:
            current = (
                await conn.execute(
                    sa.select(leaders.c.epoch)
                    .where(leaders.c.account_sid == self.account_sid)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            epoch = 1 if current is None else int(current) + 1
            values = {"epoch": epoch, "host": host, "pid": pid, "since": now}
            if current is None:
                await conn.execute(
                    sa.insert(leaders).values(account_sid=self.account_sid, **values)
                )
            else:
                await conn.execute(
                    sa.update(leaders)
                    .where(leaders.c.account_sid == self.account_sid)
                    .values(values)
                )
        return Leader(host=host, pid=pid, since=now, epoch=epoch)

    def fence(self, fence: Fence | None) -> None:
        """Check every later write against ``fence`` (None: no check)."""
        self._fence = fence

    async def leader(self) -> Leader | None:
        """The account's leader as last recorded (it may have died since: the lock tells)."""
        async with self._read("leader") as conn:
            row = (
                await conn.execute(
                    sa.select(leaders).where(leaders.c.account_sid == self.account_sid)
                )
            ).one_or_none()
        if row is None:
            return None
        return Leader(host=row.host, pid=row.pid, since=_utc(row.since), epoch=row.epoch)

    async def ping(self) -> None:
        """One trivial read: raises (a StoreError, or the connect's OSError) when unreachable."""
        async with self._read("ping") as conn:
            await conn.execute(sa.select(sa.literal(1)))

    async def earliest_pending_not_before(self, after: dt.datetime) -> dt.datetime | None:
        """The soonest resubmit delay ending after ``after`` among Pending days in no job.

        The daemon wakes its submit pass then, not on the next minute's tick.
        """
        query = sa.select(sa.func.min(days.c.not_before, type_=days.c.not_before.type)).where(
            days.c.account_sid == self.account_sid,
            days.c.status == DayStatus.PENDING,
            days.c.job_id.is_(None),
            days.c.not_before > after,
        )
        async with self._read("earliest pending not before") as conn:
            value: dt.datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return value

    async def all_wanted_final(
        self, *, keys: Iterable[DayKey] | None = None, require_archived: bool = False
    ) -> bool:
        """True when every wanted day (or every one of ``keys``) is final: a success (archived,
        with ``require_archived``) or GaveUp. An unknown key is not final. For --exit-when-done.
        """
        done = _final_condition(require_archived)
        async with self._read("all wanted final") as conn:
            if keys is None:
                open_days = await conn.execute(
                    sa.select(sa.func.count()).where(days.c.account_sid == self.account_sid, ~done)
                )
                return open_days.scalar_one() == 0
            for resource_type, chunk in _chunks_by_type(sorted(set(keys), key=_key_order)):
                finished = await conn.execute(
                    sa.select(sa.func.count()).where(
                        days.c.account_sid == self.account_sid,
                        days.c.resource_type == resource_type,
                        is_in(conn, days.c.day, chunk),
                        done,
                    )
                )
                if finished.scalar_one() != len(chunk):
                    return False
            return True

    # ------------------------------------------------------------------ observing (read-only)

    async def metrics_snapshot(
        self, now: dt.datetime, ranges: Sequence[ExportRange], *, budget_since: dt.datetime
    ) -> StoreSnapshot:
        """The gauges of ``GET /metrics``, from a few aggregate queries in one read transaction.

        Per export range: days by status (a range count on the primary key). Per type: days
        whose file is on Twilio and not archived (count and earliest completion), the earliest
        time a Pending day became Pending. Jobs by state; days requested since ``budget_since``
        (``requested_days_since``'s rule). Never a row per day or per job comes back.
        """
        own = days.c.account_sid == self.account_sid
        per_export: dict[tuple[str, ResourceType, DayStatus], int] = {}
        at_risk: dict[ResourceType, AtRisk] = {}
        pending: dict[ResourceType, dt.datetime] = {}
        async with self._read("metrics snapshot") as conn:
            for export in ranges:
                found = await conn.execute(
                    sa.select(days.c.status, sa.func.count())
                    .where(
                        self._day_range(export.resource_type, export.first, export.last),
                        # Every status, spelled out: the (account, status, type, day) index then
                        # serves the whole WHERE (SQLite: 5x faster at 300,000 days).
                        days.c.status.in_(list(DayStatus)),
                    )
                    .group_by(days.c.status)
                )
                for status, count in found:
                    per_export[(export.name, export.resource_type, status)] = count
            # Grouped by a cast, not the column: grouping by the column itself lets SQLite walk
            # the primary key in type order over every day instead of the archive index over
            # the few unarchived successes.
            rtype = sa.cast(days.c.resource_type, sa.String(ENUM_LENGTH))
            risky = await conn.execute(
                sa.select(rtype, sa.func.count(), sa.func.min(days.c.completed_at))
                .where(own, days.c.archived_at.is_(None), days.c.completed_at.is_not(None))
                .group_by(rtype)
            )
            for resource_type, count, earliest in risky:
                # MIN over a TypeDecorator column comes back raw on SQLite: convert it here.
                at_risk[ResourceType(resource_type)] = AtRisk(count, _utc(earliest))
            waiting = await conn.execute(
                sa.select(days.c.resource_type, sa.func.min(days.c.last_changed_at))
                .where(own, days.c.status == DayStatus.PENDING)
                .group_by(days.c.resource_type)
            )
            for resource_type, since in waiting:
                pending[resource_type] = _utc(since)
            by_state = await conn.execute(
                sa.select(jobs.c.state, sa.func.count())
                .where(jobs.c.account_sid == self.account_sid)
                .group_by(jobs.c.state)
            )
            job_counts: dict[JobState, int] = {row[0]: row[1] for row in by_state}
            used = await conn.execute(_requested_since(self.account_sid, budget_since))
            quota_used = int(used.scalar_one())
        return StoreSnapshot(
            taken_at=now,
            export_days=per_export,
            at_risk=at_risk,
            oldest_pending_since=pending,
            jobs=job_counts,
            quota_days_used=quota_used,
        )

    async def recent_changes(self, limit: int) -> list[DayChange]:
        """The latest ``limit`` recorded transitions, newest first (the status page)."""
        query = (
            sa.select(transitions)
            .where(transitions.c.account_sid == self.account_sid)
            .order_by(transitions.c.id.desc())
            .limit(limit)
        )
        async with self._read("recent changes") as conn:
            return [change_from_row(row) for row in await conn.execute(query)]

    async def recent_jobs(self, limit: int) -> list[Job]:
        """The newest ``limit`` jobs, newest first (the status page)."""
        query = (
            sa.select(jobs)
            .where(jobs.c.account_sid == self.account_sid)
            .order_by(jobs.c.id.desc())
            .limit(limit)
        )
        async with self._read("recent jobs") as conn:
            return [_job(row) for row in await conn.execute(query)]

    async def days_in_range(self, export: ExportRange) -> list[Day]:
        """The recorded days of an export's range, by day (the status page's calendar)."""
        query = (
            sa.select(*_DAY_COLUMNS)
            .select_from(_DAYS_WITH_HOLDER)
            .where(self._day_range(export.resource_type, export.first, export.last))
            .order_by(days.c.day)
        )
        async with self._read("days in range") as conn:
            return [_day(row) for row in await conn.execute(query)]

    async def days_at_risk(self, limit: int) -> list[Day]:
        """Successful days not archived yet, earliest completion first (the status page)."""
        return await self.days_due_for_archiving(limit)

    # ------------------------------------------------------------------ internals

    def _day_range(
        self, resource_type: ResourceType, start: dt.date, end: dt.date
    ) -> sa.ColumnElement[bool]:
        return sa.and_(
            days.c.account_sid == self.account_sid,
            days.c.resource_type == resource_type,
            days.c.day >= start,
            days.c.day <= end,
        )

    def _day_key(self, key: DayKey) -> sa.ColumnElement[bool]:
        return sa.and_(
            days.c.account_sid == self.account_sid,
            days.c.resource_type == key.resource_type,
            days.c.day == key.day,
        )

    async def _lock_job(self, conn: AsyncConnection, job_id: int) -> Job:
        params = {"job_id": job_id, "account_sid": self.account_sid}
        row = (await conn.execute(_LOCK_JOB, params)).one_or_none()
        if row is None:
            raise StoreError(f"no job {job_id} for this account")
        return _job(row)

    async def _lock_job_and_days(
        self, conn: AsyncConnection, job_id: int
    ) -> tuple[Job, list[HeldDay]]:
        """The job and the days it holds, locked in that order, in one statement when it has
        days (each statement is a round trip to the driver's thread on SQLite)."""
        params = {"job_id": job_id, "account_sid": self.account_sid}
        rows = (await conn.execute(_LOCK_JOB_WITH_DAYS, params)).all()
        if not rows:
            return await self._lock_job(conn, job_id), []
        held = [HeldDay(row.held_day, row.held_status, row.held_resubmits) for row in rows]
        return _job(rows[0]), held

    async def _lock_held_days(self, conn: AsyncConnection, job_id: int) -> Sequence[_Row]:
        params = {"job_id": job_id, "account_sid": self.account_sid}
        return (await conn.execute(_LOCK_HELD_DAYS, params)).all()

    async def _job(self, conn: AsyncConnection, job_id: int) -> Job:
        row = (
            await conn.execute(
                sa.select(jobs).where(jobs.c.id == job_id, jobs.c.account_sid == self.account_sid)
            )
        ).one_or_none()
        if row is None:
            raise StoreError(f"no job {job_id} for this account")
        return _job(row)

    async def _day(self, conn: AsyncConnection, key: DayKey) -> Day | None:
        row = (
            await conn.execute(
                sa.select(*_DAY_COLUMNS).select_from(_DAYS_WITH_HOLDER).where(self._day_key(key))
            )
        ).one_or_none()
        return None if row is None else _day(row)

    async def _jobs_where(
        self,
        *conditions: sa.ColumnElement[bool],
        order: sa.ColumnElement[Any],
        limit: int | None = None,
    ) -> list[Job]:
        query = (
            sa.select(jobs)
            .where(jobs.c.account_sid == self.account_sid, *conditions)
            .order_by(order, jobs.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._read("list jobs") as conn:
            return [_job(row) for row in await conn.execute(query)]

    async def _write_changes(
        self,
        conn: AsyncConnection,
        job: Job,
        changes: Sequence[DayChange],
        releases: Mapping[dt.date, Release],
        now: dt.datetime,
        *,
        reason: str | None = None,
    ) -> None:
        """Write each changed day's final state and every transition, set-based.

        ``changes`` may hold two steps for one day (Submitted -> Failed -> Pending); the row gets
        the last. Days in ``releases`` leave the job and take the release's status, resubmit
        increment and delay. Days are written in groups that share their new values (a batch
        of 10,000 days is a handful of statements, not 10,000), each UPDATE conditional on the
        days still being held by the job in the status they were read in, and its row count
        checked: a guard on top of the row locks.
        """
        # Transitions are inserted by step: every day's first change, then every second one,
        # so each day's history (ordered by id) stays a chain however the batch is grouped.
        step_of: dict[dt.date, int] = {}
        stepped: list[tuple[int, DayChange]] = []
        for change in changes:
            step_of[change.day] = step = step_of.get(change.day, -1) + 1
            stepped.append((step, change))
        groups = _group(
            stepped,
            lambda sc: (
                sc[0],
                sc[1].from_status,
                sc[1].to_status,
                sc[1].observed_by,
                sc[1].job_sid,
            ),
        )
        for (_, before, after, observed_by, job_sid), group in sorted(
            groups.items(), key=lambda item: item[0][0]
        ):
            await self._insert_transitions(
                conn,
                job.resource_type,
                [c.day for _, c in group],
                before,
                after,
                observed_by,
                job_id=job.id,
                job_sid=job_sid,
                reason=reason,
                now=now,
            )
        first_from: dict[dt.date, DayStatus] = {}
        last_to: dict[dt.date, DayStatus] = {}
        for change in changes:
            assert change.from_status is not None  # only wanting a day starts from nothing
            first_from.setdefault(change.day, change.from_status)
            last_to[change.day] = change.to_status
        held = [day for day in last_to if day not in releases]
        for (before, after), dates in _group(held, lambda d: (first_from[d], last_to[d])).items():
            await self._update_held_days(
                conn,
                job,
                dates,
                before,
                release=False,
                values={
                    "new_status": after,
                    "new_completed_at": now if after.is_success else None,
                    "new_last_changed_at": now,
                },
            )

        def release_key(day: dt.date) -> tuple[DayStatus, Release]:
            # A claimed day still Pending is released without a status change.
            return first_from.get(day, DayStatus.PENDING), releases[day]

        for (before, release), dates in _group(list(releases), release_key).items():
            await self._update_held_days(
                conn,
                job,
                dates,
                before,
                release=True,
                values={
                    "new_status": release.status,
                    "w_new_status": release.status,
                    "new_job_id": None,
                    "new_increment": release.increment,
                    "new_not_before": release.not_before,
                    "new_last_changed_at": now,
                },
            )

    async def _update_held_days(
        self,
        conn: AsyncConnection,
        job: Job,
        dates: Sequence[dt.date],
        before: DayStatus,
        *,
        release: bool,
        values: Mapping[str, Any],
    ) -> None:
        """Set ``values`` on the days the job holds in ``before``; ``release``: they leave it."""
        statements = _statements(is_sqlite(conn))
        statement = statements.release_days if release else statements.held_days
        for start in range(0, len(dates), _CHUNK):
            chunk = list(dates[start : start + _CHUNK])
            result = await conn.execute(
                statement,
                {
                    "w_account_sid": self.account_sid,
                    "w_resource_type": job.resource_type,
                    "w_days": chunk,
                    "w_job_id": job.id,
                    "w_before": before,
                    **values,
                },
            )
            if result.rowcount != len(chunk):
                raise StoreError(
                    f"job {job.friendly_name}: {len(chunk) - result.rowcount} days changed "
                    "under us; nothing was written"
                )

    async def _insert_transitions(
        self,
        conn: AsyncConnection,
        resource_type: ResourceType,
        dates: Sequence[dt.date],
        before: DayStatus | None,
        after: DayStatus,
        observed_by: ObservedBy,
        *,
        job_id: int | None,
        job_sid: str | None,
        reason: str | None,
        now: dt.datetime,
    ) -> None:
        """One transition per day of ``dates``, all alike but for the day, set-based.

        INSERT ... SELECT from the days themselves: the constants are bound once per chunk and
        the foreign key onto the day is satisfied by construction.
        """
        statement = _statements(is_sqlite(conn)).insert_transitions
        for start in range(0, len(dates), _CHUNK):
            chunk = list(dates[start : start + _CHUNK])
            result = await conn.execute(
                statement,
                {
                    "w_account_sid": self.account_sid,
                    "w_resource_type": resource_type,
                    "w_days": chunk,
                    "t_job_id": job_id,
                    "t_job_sid": job_sid,
                    "t_from": before,
                    "t_to": after,
                    "t_at": now,
                    "t_by": observed_by,
                    "t_reason": reason,
                },
            )
            if result.rowcount != len(chunk):
                raise StoreError(f"{len(chunk) - result.rowcount} transitions found no day")


@dataclass(frozen=True)
class _Statements:
    """Statements of the write path that depend on the dialect, built once per dialect."""

    held_days: sa.Update
    release_days: sa.Update
    insert_transitions: sa.Insert


@functools.cache
def _statements(sqlite: bool) -> _Statements:
    day_in_batch = sa.and_(
        days.c.account_sid == sa.bindparam("w_account_sid"),
        days.c.resource_type == sa.bindparam("w_resource_type"),
        in_parameter(sqlite, days.c.day, "w_days"),
    )
    held = sa.and_(
        day_in_batch,
        days.c.job_id == sa.bindparam("w_job_id"),
        days.c.status == sa.bindparam("w_before"),
    )
    columns = transitions.c

    def constant(name: str, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        return sa.bindparam(name, type_=column.type)

    rows = sa.select(
        days.c.account_sid,
        days.c.resource_type,
        days.c.day,
        constant("t_job_id", columns.job_id),
        constant("t_job_sid", columns.job_sid),
        constant("t_from", columns.from_status),
        constant("t_to", columns.to_status),
        constant("t_at", columns.observed_at),
        constant("t_by", columns.observed_by),
        constant("t_reason", columns.reason),
    ).where(day_in_batch)
    return _Statements(
        held_days=sa.update(days)
        .where(held)
        .values(
            status=sa.bindparam("new_status"),
            completed_at=sa.bindparam("new_completed_at"),
            last_changed_at=sa.bindparam("new_last_changed_at"),
        ),
        release_days=sa.update(days)
        .where(held)
        .values(
            status=sa.bindparam("new_status"),
            job_id=sa.bindparam("new_job_id"),
            resubmits=days.c.resubmits + sa.bindparam("new_increment", type_=sa.Integer),
            not_before=sa.bindparam("new_not_before", type_=days.c.not_before.type),
            # A day released without a status change keeps its last change time.
            last_changed_at=sa.case(
                (days.c.status == sa.bindparam("w_new_status"), days.c.last_changed_at),
                else_=sa.bindparam("new_last_changed_at", type_=days.c.last_changed_at.type),
            ),
        ),
        insert_transitions=sa.insert(transitions).from_select(
            [
                columns.account_sid,
                columns.resource_type,
                columns.day,
                columns.job_id,
                columns.job_sid,
                columns.from_status,
                columns.to_status,
                columns.observed_at,
                columns.observed_by,
                columns.reason,
            ],
            rows,
        ),
    )


_K = TypeVar("_K")
_V = TypeVar("_V")


def _batches(items: Sequence[_V], size: int) -> Iterable[Sequence[_V]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _group(items: Iterable[_V], key: Callable[[_V], _K]) -> dict[_K, list[_V]]:
    groups: dict[_K, list[_V]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def _claim_problem(
    wanted: Sequence[dt.date], current: Sequence[_Row], now: dt.datetime
) -> str | None:
    by_day = {row.day: row for row in current}
    for day in wanted:
        row = by_day.get(day)
        if row is None:
            return f"{day} is not a wanted day"
        if row.job_id is not None:
            return f"{day} is in job {row.job_id}"
        if row.status is not DayStatus.PENDING:
            return f"{day} is {row.status}, not Pending"
        if row.not_before is not None and row.not_before > now:
            return f"{day} is not eligible before {row.not_before.isoformat()}"
    return None


def _requested_since(account_sid: str, since: dt.datetime) -> sa.Select[Any]:
    """Days requested in jobs created at or after ``since`` (``requested_days_since``)."""
    return sa.select(sa.func.coalesce(sa.func.sum(jobs.c.day_count), 0)).where(
        jobs.c.account_sid == account_sid,
        jobs.c.created_at >= since,
        sa.or_(
            jobs.c.job_sid.is_not(None),
            jobs.c.state != JobState.LOST,
            jobs.c.create_ambiguous_at.is_not(None),
        ),
    )


def _utc(value: dt.datetime | str) -> dt.datetime:
    """An aggregate's time as aware UTC: SQLite hands MIN() back as its stored naive text."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _final_condition(require_archived: bool) -> sa.ColumnElement[bool]:
    success: sa.ColumnElement[bool] = days.c.status.in_(SUCCESS_STATUSES)
    if require_archived:
        success = sa.and_(success, days.c.archived_at.is_not(None))
    return sa.or_(success, days.c.status == DayStatus.GAVE_UP)


def _key_order(key: DayKey) -> tuple[str, dt.date]:
    return (key.resource_type.value, key.day)


def _chunks_by_type(
    keys: Sequence[DayKey],
) -> Iterable[tuple[ResourceType, list[dt.date]]]:
    by_type: dict[ResourceType, list[dt.date]] = defaultdict(list)
    for key in keys:
        by_type[key.resource_type].append(key.day)
    for resource_type, dates in by_type.items():
        for start in range(0, len(dates), _CHUNK):
            yield resource_type, dates[start : start + _CHUNK]


def _describe(exc: sa.exc.SQLAlchemyError) -> str:
    # The driver's own message, first line only: SQLAlchemy's str() appends the SQL and its
    # parameters, which make log lines long and add nothing an operator can act on.
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return f"{type(original or exc).__name__}: {text[0] if text else ''}"
