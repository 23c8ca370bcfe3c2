"""board stream bookkeeping (issue 3)

Revision ID: 0005
Revises: 0004

Reserved in the chain so that parallel work lands in a fixed order; empty until filled.
"""

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
