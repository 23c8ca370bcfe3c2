"""reference data: B40 cities, capability catalogue, substitution rules

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from server.db.reference import load_reference

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    load_reference(op.get_bind())


def downgrade() -> None:
    op.execute("DELETE FROM capability_substitutions")
    op.execute("DELETE FROM capabilities")
    op.execute("DELETE FROM cities")
