"""alerts and duty rosters (issue 4)

Revision ID: 0004
Revises: 0003

Reserved in the chain so that parallel work lands in a fixed order; empty until filled.
"""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
