"""allocation plans (issue 5)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import server.db.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
When = server.db.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "allocation_plans",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("created_by", Id, nullable=False),
        sa.Column("body", Json, nullable=False),
        sa.Column("basis", Json, nullable=False),
        sa.Column("applied_at", When, nullable=True),
        sa.Column("applied_by", Id, nullable=True),
        sa.Column("applied_mode", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["applied_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("allocation_plans")
