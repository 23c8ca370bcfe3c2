"""alerts and duty rosters (issue 4)

Revision ID: 0004
Revises: 0003

Duty officers, alerts, their deliveries per channel, and the planner's cursor on the event log.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from server.db.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
When = UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "duty_officers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("city", sa.String(64), sa.ForeignKey("cities.slug"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("on_duty", Json, nullable=False),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_index("ix_duty_officers_city", "duty_officers", ["city"])
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("group_key", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("officer_id", Id, sa.ForeignKey("duty_officers.id"), nullable=False),
        sa.Column("city", sa.String(64), nullable=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("facts", Json, nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("source_seq", Id, nullable=True),
        sa.Column("parent_id", Id, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("sent_at", When, nullable=True),
        sa.Column("ack_due_at", When, nullable=True),
        sa.Column("acknowledged_at", When, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("closed_at", When, nullable=True),
        sa.UniqueConstraint("group_key", "officer_id", name="uq_alerts_group_officer"),
    )
    op.create_index("ix_alerts_group_key", "alerts", ["group_key"])
    op.create_index("ix_alerts_officer_id", "alerts", ["officer_id"])
    op.create_index("ix_alerts_city", "alerts", ["city"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", When, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("sent_at", When, nullable=True),
        sa.UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_channel"),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])
    op.create_index("ix_alert_deliveries_status", "alert_deliveries", ["status"])
    op.create_table(
        "alert_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("seq", Id, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_cursor")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
    op.drop_table("duty_officers")
