"""The whole schema: jobs, days, transitions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the values at this revision (never import the live enums into a migration).
RESOURCE_TYPES = ("Messages", "Calls", "Conferences", "Participants")
DAY_STATUSES = (
    "Pending",
    "Submitted",
    "Running",
    "ErrorDuringRun",
    "Completed",
    "CompletedEmptyRecords",
    "Failed",
    "RunningToBeDeleted",
    "DeletedByUserRequest",
    "GaveUp",
    "Unknown",
)
JOB_STATES = ("submitting", "active", "finished", "deleting", "deleted", "lost")
OBSERVED_BY = ("submit", "poll", "webhook", "cleanup", "resubmit", "operator", "archive")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_sid", sa.String(40), nullable=False),
        sa.Column("friendly_name", sa.String(200), nullable=False),
        sa.Column("job_sid", sa.String(34), nullable=True),
        sa.Column("resource_type", _enum(RESOURCE_TYPES, "resource_type"), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("day_count", sa.Integer(), nullable=False),
        sa.Column("state", _enum(JOB_STATES, "job_state"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("submitted_at", _utc(), nullable=True),
        sa.Column("last_polled_at", _utc(), nullable=True),
        sa.Column("next_poll_at", _utc(), nullable=True),
        sa.Column("last_change_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("deleted_at", _utc(), nullable=True),
        sa.Column("poll_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("eta", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint(
            "account_sid", "friendly_name", name=op.f("uq_jobs_account_sid_friendly_name")
        ),
        sa.UniqueConstraint("job_sid", name=op.f("uq_jobs_job_sid")),
        sa.UniqueConstraint(
            "id", "account_sid", "resource_type", name=op.f("uq_jobs_id_account_sid_resource_type")
        ),
        sa.CheckConstraint("start_day <= end_day", name=op.f("ck_jobs_day_range")),
        sa.CheckConstraint("day_count >= 1", name=op.f("ck_jobs_day_count_positive")),
        sa.CheckConstraint(
            "job_sid IS NOT NULL OR state IN ('submitting', 'lost')", name=op.f("ck_jobs_sid_known")
        ),
    )
    op.create_index(
        op.f("ix_jobs_account_sid_state_next_poll_at"),
        "jobs",
        ["account_sid", "state", "next_poll_at"],
    )
    op.create_index(
        op.f("ix_jobs_account_sid_state_last_change_at"),
        "jobs",
        ["account_sid", "state", "last_change_at"],
    )
    op.create_index(
        op.f("ix_jobs_account_sid_state_finished_at"),
        "jobs",
        ["account_sid", "state", "finished_at"],
    )
    op.create_index(op.f("ix_jobs_account_sid_created_at"), "jobs", ["account_sid", "created_at"])

    op.create_table(
        "days",
        sa.Column("account_sid", sa.String(40), nullable=False),
        sa.Column("resource_type", _enum(RESOURCE_TYPES, "resource_type"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", _enum(DAY_STATUSES, "day_status"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("resubmits", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("not_before", _utc(), nullable=True),
        sa.Column("first_wanted_at", _utc(), nullable=False),
        sa.Column("last_changed_at", _utc(), nullable=False),
        sa.Column("completed_at", _utc(), nullable=True),
        sa.Column("archive_path", sa.Text(), nullable=True),
        sa.Column("archive_size", sa.BigInteger(), nullable=True),
        sa.Column("archive_sha256", sa.String(64), nullable=True),
        sa.Column("archive_record_count", sa.BigInteger(), nullable=True),
        sa.Column("archived_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("account_sid", "resource_type", "day", name=op.f("pk_days")),
        sa.ForeignKeyConstraint(
            ["job_id", "account_sid", "resource_type"],
            ["jobs.id", "jobs.account_sid", "jobs.resource_type"],
            name=op.f("fk_days_job_same_resource"),
        ),
        sa.CheckConstraint(
            "job_id IS NOT NULL OR NOT (status IN ('Submitted', 'Running', 'ErrorDuringRun'))",
            name=op.f("ck_days_in_flight_has_job"),
        ),
        sa.CheckConstraint(
            "completed_at IS NULL OR status IN ('Completed', 'CompletedEmptyRecords')",
            name=op.f("ck_days_completed_is_success"),
        ),
        sa.CheckConstraint(
            "archived_at IS NULL OR completed_at IS NOT NULL",
            name=op.f("ck_days_archived_is_completed"),
        ),
        sa.CheckConstraint(
            "resubmits >= 0 AND attempts >= 0", name=op.f("ck_days_counters_non_negative")
        ),
    )
    op.create_index(op.f("ix_days_job_id"), "days", ["job_id"])
    op.create_index(
        op.f("ix_days_account_sid_status_resource_type_day"),
        "days",
        ["account_sid", "status", "resource_type", "day"],
    )
    op.create_index(
        op.f("ix_days_account_sid_archived_at_completed_at"),
        "days",
        ["account_sid", "archived_at", "completed_at", "resource_type", "day"],
    )

    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_sid", sa.String(40), nullable=False),
        sa.Column("resource_type", _enum(RESOURCE_TYPES, "resource_type"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("job_sid", sa.String(34), nullable=True),
        sa.Column("from_status", _enum(DAY_STATUSES, "from_status"), nullable=True),
        sa.Column("to_status", _enum(DAY_STATUSES, "to_status"), nullable=False),
        sa.Column("observed_at", _utc(), nullable=False),
        sa.Column("observed_by", _enum(OBSERVED_BY, "observed_by"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_transitions_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["account_sid", "resource_type", "day"],
            ["days.account_sid", "days.resource_type", "days.day"],
            name=op.f("fk_transitions_account_sid_resource_type_day_days"),
        ),
    )
    op.create_index(
        op.f("ix_transitions_account_sid_resource_type_day_id"),
        "transitions",
        ["account_sid", "resource_type", "day", "id"],
    )
    op.create_index(op.f("ix_transitions_job_id"), "transitions", ["job_id"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    # The history is append-only, enforced by the database: UPDATE and DELETE are refused.
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER transitions_no_{action.lower()} BEFORE {action} ON transitions "
                "BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'transitions are append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER transitions_append_only BEFORE UPDATE OR DELETE ON transitions "
        "FOR EACH ROW EXECUTE FUNCTION transitions_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS transitions_no_update")
        op.execute("DROP TRIGGER IF EXISTS transitions_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS transitions_append_only ON transitions")
        op.execute("DROP FUNCTION IF EXISTS transitions_append_only()")
    op.drop_table("transitions")
    op.drop_table("days")
    op.drop_table("jobs")
