"""The tables, as SQLAlchemy Core metadata: the one description the repository and Alembic share.

Names of constraints and indexes come from one naming convention so that migrations (and SQLite's
batch "copy and move" ALTERs) can refer to them. Migrations never import this module's tables: a
revision is a frozen snapshot; a test proves this metadata and the migrations at head agree.

Integrity the database enforces (not only the code):

- ``days.job_id`` is one column with a foreign key to ``jobs``: a day can point at one job at a
  time, structurally. Claims set it with a conditional UPDATE (see ``repository``).
- ``ck_days_in_flight_has_job``: a day Twilio is working on (Submitted, Running, ErrorDuringRun)
  always names its job.
- ``ck_days_completed_is_success`` / ``ck_days_archived_is_completed``: only a success has a
  completion time; only a completed day can be archived.
- ``fk_days_job_same_resource``: a day can only be claimed into a job of its own account and
  resource type (composite foreign key onto ``uq_jobs_id_account_sid_resource_type``).
- ``uq_jobs_account_sid_friendly_name`` and ``uq_jobs_job_sid``: one job row per Twilio job.
- ``transitions`` is append-only: the migration adds triggers that reject UPDATE and DELETE.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from orchestrator.domain.model import DayStatus, JobState, ObservedBy, ResourceType

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Twilio account SIDs are AC + 32 hex digits; a little slack costs nothing.
ACCOUNT_SID_LENGTH = 40
# Enum columns are VARCHAR + CHECK on both databases (no native PostgreSQL enum types: adding a
# status later is then one batch-ALTER of a CHECK, the same on both).
ENUM_LENGTH = 32


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """An aware UTC datetime in and out, on both databases.

    PostgreSQL keeps ``timestamptz``. SQLite has no time zones: values are stored naive, in UTC, in
    one fixed-width ISO format, so string comparison in SQL is time comparison.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous; refusing it here keeps every stored time honest.
            raise ValueError(f"naive datetime {value!r} given to the store; pass aware UTC")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _enum(cls: type[enum.StrEnum], name: str) -> sa.Enum:
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=ENUM_LENGTH,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


resource_type_enum = _enum(ResourceType, "resource_type")
day_status_enum = _enum(DayStatus, "day_status")
job_state_enum = _enum(JobState, "job_state")
observed_by_enum = _enum(ObservedBy, "observed_by")

LIVE_STATES = tuple(s for s in JobState if s.is_live)
SUCCESS_STATUSES = tuple(s for s in DayStatus if s.is_success)
IN_FLIGHT_STATUSES = tuple(s for s in DayStatus if s.is_in_flight)


def _in(column: str, values: tuple[enum.StrEnum, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_sid", sa.String(ACCOUNT_SID_LENGTH), nullable=False),
    sa.Column("friendly_name", sa.String(200), nullable=False),
    sa.Column("job_sid", sa.String(34), nullable=True),
    sa.Column("resource_type", resource_type_enum, nullable=False),
    sa.Column("start_day", sa.Date, nullable=False),
    sa.Column("end_day", sa.Date, nullable=False),
    # Stored so the daily budget is a plain SUM on both databases (no date arithmetic in SQL).
    sa.Column("day_count", sa.Integer, nullable=False),
    sa.Column("state", job_state_enum, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("submitted_at", UtcDateTime, nullable=True),
    sa.Column("last_polled_at", UtcDateTime, nullable=True),
    sa.Column("next_poll_at", UtcDateTime, nullable=True),
    sa.Column("last_change_at", UtcDateTime, nullable=True),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Column("poll_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("queue_position", sa.Integer, nullable=True),
    sa.Column("eta", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    # Revision 0003. The last day change or fall in Twilio's queue position (staleness); when a
    # create's answer was unclear (counted against the daily budget even once lost); looks for
    # a submitting job on Twilio's job list so far, and when to look next.
    sa.Column("last_progress_at", UtcDateTime, nullable=True),
    sa.Column("create_ambiguous_at", UtcDateTime, nullable=True),
    sa.Column("lookups", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_lookup_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("account_sid", "friendly_name"),
    sa.UniqueConstraint("job_sid"),
    # Target of the days' composite foreign key (same account, same resource type).
    sa.UniqueConstraint("id", "account_sid", "resource_type"),
    sa.CheckConstraint("start_day <= end_day", name="day_range"),
    sa.CheckConstraint("day_count >= 1", name="day_count_positive"),
    sa.CheckConstraint("job_sid IS NOT NULL OR state IN ('submitting', 'lost')", name="sid_known"),
    # Timer queries: due polls, stale jobs, jobs to delete, the daily budget, adoption.
    sa.Index("ix_jobs_account_sid_state_next_poll_at", "account_sid", "state", "next_poll_at"),
    sa.Index("ix_jobs_account_sid_state_last_change_at", "account_sid", "state", "last_change_at"),
    sa.Index("ix_jobs_account_sid_state_finished_at", "account_sid", "state", "finished_at"),
    sa.Index("ix_jobs_account_sid_created_at", "account_sid", "created_at"),
)

days = sa.Table(
    "days",
    metadata,
    sa.Column("account_sid", sa.String(ACCOUNT_SID_LENGTH), primary_key=True),
    sa.Column("resource_type", resource_type_enum, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("status", day_status_enum, nullable=False),
    # The job holding the day: the live job while it is claimed or in flight, the job that made
    # its file once it succeeded; NULL when released (Pending, GaveUp).
    sa.Column("job_id", sa.Integer, nullable=True),
    sa.Column("resubmits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", UtcDateTime, nullable=True),
    sa.Column("first_wanted_at", UtcDateTime, nullable=False),
    sa.Column("last_changed_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Column("archive_path", sa.Text, nullable=True),
    sa.Column("archive_size", sa.BigInteger, nullable=True),
    sa.Column("archive_sha256", sa.String(64), nullable=True),
    sa.Column("archive_record_count", sa.BigInteger, nullable=True),
    sa.Column("archived_at", UtcDateTime, nullable=True),
    # Failed archive attempts of the day's current file, when to try next, and the last error
    # (revision 0002). Cleared when the day goes back to Pending; kept as history on success.
    sa.Column("archive_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("archive_next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("archive_error", sa.Text, nullable=True),
    sa.ForeignKeyConstraint(
        ["job_id", "account_sid", "resource_type"],
        ["jobs.id", "jobs.account_sid", "jobs.resource_type"],
        name="fk_days_job_same_resource",
    ),
    sa.CheckConstraint(
        f"job_id IS NOT NULL OR NOT ({_in('status', IN_FLIGHT_STATUSES)})",
        name="in_flight_has_job",
    ),
    sa.CheckConstraint(
        f"completed_at IS NULL OR {_in('status', SUCCESS_STATUSES)}", name="completed_is_success"
    ),
    sa.CheckConstraint(
        "archived_at IS NULL OR completed_at IS NOT NULL", name="archived_is_completed"
    ),
    sa.CheckConstraint("resubmits >= 0 AND attempts >= 0", name="counters_non_negative"),
    # The live job's days (apply, release, deletion readiness).
    sa.Index("ix_days_job_id", "job_id"),
    # The planner's pending days and `status` counts.
    sa.Index(
        "ix_days_account_sid_status_resource_type_day",
        "account_sid",
        "status",
        "resource_type",
        "day",
    ),
    # Days due for archiving, oldest completion first.
    sa.Index(
        "ix_days_account_sid_archived_at_completed_at",
        "account_sid",
        "archived_at",
        "completed_at",
        # Tie-breakers of the ORDER BY, so the index alone gives the order.
        "resource_type",
        "day",
    ),
)

transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_sid", sa.String(ACCOUNT_SID_LENGTH), nullable=False),
    sa.Column("resource_type", resource_type_enum, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=True),
    sa.Column("job_sid", sa.String(34), nullable=True),
    # One CHECK per column: constraint names come from the enum's name and must differ.
    sa.Column("from_status", _enum(DayStatus, "from_status"), nullable=True),
    sa.Column("to_status", _enum(DayStatus, "to_status"), nullable=False),
    sa.Column("observed_at", UtcDateTime, nullable=False),
    sa.Column("observed_by", observed_by_enum, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.ForeignKeyConstraint(
        ["account_sid", "resource_type", "day"],
        ["days.account_sid", "days.resource_type", "days.day"],
    ),
    sa.Index(
        "ix_transitions_account_sid_resource_type_day_id",
        "account_sid",
        "resource_type",
        "day",
        "id",
    ),
    sa.Index("ix_transitions_job_id", "job_id"),
)

# Revision 0004: who leads each account (``domain.leadership``). One row per account, written
# only by a takeover; ``epoch`` counts takeovers and fences every write of the leader.
leaders = sa.Table(
    "leaders",
    metadata,
    sa.Column("account_sid", sa.String(ACCOUNT_SID_LENGTH), primary_key=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("since", UtcDateTime, nullable=False),
    sa.CheckConstraint("epoch >= 1", name="epoch_positive"),
)
