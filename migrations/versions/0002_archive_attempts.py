"""Archive retry state on days: attempts, next attempt time, last error.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite's batch mode does them in place (no table copy), so the days
    # table keeps its constraints and the transitions triggers are untouched.
    with op.batch_alter_table("days") as batch:
        batch.add_column(
            sa.Column("archive_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("archive_next_attempt_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("archive_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("days") as batch:
        batch.drop_column("archive_error")
        batch.drop_column("archive_next_attempt_at")
        batch.drop_column("archive_attempts")
