"""allocation plans (issue 5)

Revision ID: 0003
Revises: 0002

Reserved in the chain so that parallel work lands in a fixed order; empty until filled.
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
