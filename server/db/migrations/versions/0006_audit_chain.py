"""audit chain: hash-chained, append-only event log (issue 6)

Revision ID: 0006
Revises: 0005

Adds prev_hash/hash to events and the chain head to event_counter, chains the events already
stored (in seq order), and installs triggers that refuse UPDATE and DELETE on events
(PostgreSQL: also TRUNCATE). docs/security.md describes the chain and how to verify it.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from server.db.audit import record_of
from server.db.tables import UTCDateTime
from server.domain.audit import GENESIS, event_hash

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REFUSE = "events is append-only (the audit trail): UPDATE and DELETE are refused"

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION b40_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{REFUSE} (%)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    with op.batch_alter_table("event_counter") as batch:
        batch.add_column(
            sa.Column("head_hash", sa.String(64), nullable=False, server_default=GENESIS)
        )
    head = _chain_existing()
    op.get_bind().execute(sa.text("UPDATE event_counter SET head_hash = :h"), {"h": head})
    with op.batch_alter_table("events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION b40_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION b40_events_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSE}'); END"
            )


def _chain_existing() -> str:
    """Chain the events written before this migration, in seq order; return the head."""
    events = sa.table(
        "events",
        sa.column("seq", sa.BigInteger()),
        sa.column("type", sa.String()),
        sa.column("entity", sa.String()),
        sa.column("entity_id", sa.String()),
        sa.column("city", sa.String()),
        sa.column("actor_id", sa.BigInteger()),
        sa.column("actor_name", sa.String()),
        sa.column("exercise", sa.Boolean()),
        sa.column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
        sa.column("created_at", UTCDateTime(timezone=True)),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    previous = GENESIS
    columns = [c for c in events.c if c.name not in ("prev_hash", "hash")]
    rows = bind.execute(sa.select(*columns).order_by(events.c.seq)).mappings().all()
    for row in rows:
        digest = event_hash(previous, record_of(dict(row)))
        bind.execute(
            events.update()
            .where(events.c.seq == row["seq"])
            .values(prev_hash=previous, hash=digest)
        )
        previous = digest
    return previous


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS b40_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    with op.batch_alter_table("event_counter") as batch:
        batch.drop_column("head_hash")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
