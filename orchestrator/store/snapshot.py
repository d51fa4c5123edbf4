"""A read-only snapshot of a SQLite store through the standard library's ``sqlite3``.

``orchestrator status`` reads every day and job once and exits; loading SQLAlchemy and its
asyncio layer costs it more CPU than everything else it does (``python -m bench --only
startup``). So on SQLite it reads here instead: the same rows as ``Store.list_days`` and
``Store.list_jobs``, in the same order, turned into the same values by the same converters
(``rows``); a test compares the two on one database. Anything this path cannot read as is (not
SQLite, no such file, a schema behind ``SCHEMA_HEAD``) answers None, and the caller takes the
ordinary path through ``open_store``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from orchestrator.domain.leadership import Leader
from orchestrator.domain.model import Day, DayStatus, Job, JobState, ResourceType
from orchestrator.store.lockfile import is_held, lock_file_of
from orchestrator.store.revision import SCHEMA_HEAD
from orchestrator.store.rows import day_from_row, job_from_row

_SQLITE_PREFIXES = ("sqlite+aiosqlite:///", "sqlite:///")


def _utc_moment(raw: str) -> dt.datetime:
    # Stored naive, in UTC (schema.UtcDateTime).
    return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)


def _moment(raw: str | None) -> dt.datetime | None:
    return None if raw is None else _utc_moment(raw)


def _date(raw: str) -> dt.date:
    return dt.date.fromisoformat(raw)


_DAY_TYPES: Mapping[str, Callable[[Any], Any]] = {
    "resource_type": ResourceType,
    "day": _date,
    "status": DayStatus,
    "not_before": _moment,
    "first_wanted_at": _moment,
    "last_changed_at": _moment,
    "completed_at": _moment,
    "archived_at": _moment,
    "archive_next_attempt_at": _moment,
}
_JOB_TYPES: Mapping[str, Callable[[Any], Any]] = {
    "resource_type": ResourceType,
    "start_day": _date,
    "end_day": _date,
    "state": JobState,
    "created_at": _moment,
    "submitted_at": _moment,
    "last_polled_at": _moment,
    "next_poll_at": _moment,
    "last_change_at": _moment,
    "finished_at": _moment,
    "deleted_at": _moment,
    "eta": _moment,
    "last_progress_at": _moment,
    "create_ambiguous_at": _moment,
    "next_lookup_at": _moment,
}


@dataclass(frozen=True)
class Snapshot:
    """Every day and job of one account, as ``list_days()`` and ``list_jobs()`` return them,
    and its leader as ``leader()`` does, with whether its lock is held now."""

    days: list[Day]
    jobs: list[Job]
    leader: Leader | None = None
    leader_running: bool = False


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for any other database (or an in-memory one)."""
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            path = unquote(url[len(prefix) :].split("?", 1)[0])
            return Path(path) if path and path != ":memory:" else None
    return None


def _typed(row: sqlite3.Row, types: Mapping[str, Callable[[Any], Any]]) -> SimpleNamespace:
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row has no iterator of keys)
    for key, convert in types.items():
        if values.get(key) is not None:
            values[key] = convert(values[key])
    return SimpleNamespace(**values)


def read_snapshot(url: str, account_sid: str) -> Snapshot | None:
    """The account's days and jobs read with ``sqlite3``; None when this path cannot read them."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.row_factory = sqlite3.Row
            revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
            if [tuple(r) for r in revision] != [(SCHEMA_HEAD,)]:
                return None
            # One read transaction: the days and the jobs are of the same moment.
            db.execute("BEGIN")
            days = db.execute(
                "SELECT days.*, jobs.job_sid AS holder_sid FROM days "
                "LEFT OUTER JOIN jobs ON days.job_id = jobs.id "
                "WHERE days.account_sid = ? ORDER BY days.resource_type, days.day",
                (account_sid,),
            ).fetchall()
            jobs = db.execute(
                "SELECT * FROM jobs WHERE account_sid = ? ORDER BY id", (account_sid,)
            ).fetchall()
            leaders = db.execute(
                "SELECT host, pid, since, epoch FROM leaders WHERE account_sid = ?", (account_sid,)
            ).fetchall()
    except sqlite3.Error:
        return None
    leader = None
    if leaders:
        host, pid, since, epoch = leaders[0]
        # ``since`` is NOT NULL (schema.leaders).
        leader = Leader(host=host, pid=pid, since=_utc_moment(since), epoch=epoch)
    return Snapshot(
        days=[day_from_row(_typed(row, _DAY_TYPES)) for row in days],
        jobs=[job_from_row(_typed(row, _JOB_TYPES)) for row in jobs],
        leader=leader,
        leader_running=is_held(lock_file_of(path)),
    )
