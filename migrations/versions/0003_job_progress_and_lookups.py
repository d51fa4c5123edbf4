"""Job progress and unclear creates: last progress, ambiguous create time, lookups, next lookup.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite's batch mode does them in place (no table copy), so the jobs
    # table keeps its constraints and the days' foreign key onto it is untouched. Existing rows
    # keep last_progress_at NULL: staleness then falls back to last_change_at.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("last_progress_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("create_ambiguous_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("lookups", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_lookup_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("next_lookup_at")
        batch.drop_column("lookups")
        batch.drop_column("create_ambiguous_at")
        batch.drop_column("last_progress_at")
