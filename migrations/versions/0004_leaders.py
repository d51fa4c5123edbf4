"""Leadership: one row per account naming the active daemon, with the takeover epoch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leaders",
        sa.Column("account_sid", sa.String(40), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_sid", name="pk_leaders"),
        sa.CheckConstraint("epoch >= 1", name="ck_leaders_epoch_positive"),
    )


def downgrade() -> None:
    op.drop_table("leaders")
