"""dispatch core schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 01:40:44.621390
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import server.db.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('capabilities',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('unit', sa.String(length=200), nullable=False),
    sa.Column('crew', sa.Integer(), nullable=False),
    sa.Column('self_sufficiency_hours', sa.Float(), nullable=False),
    sa.Column('deploy_speed_kmh', sa.Float(), nullable=False),
    sa.Column('travel', sa.String(length=8), nullable=False),
    sa.Column('readiness_hours', sa.Float(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('cities',
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('member_source', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('slug')
    )
    op.create_table('event_counter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=True),
    sa.Column('actor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=True),
    sa.Column('exercise', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_city'), ['city'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_type'), ['type'], unique=False)

    op.create_table('capability_substitutions',
    sa.Column('substitute', sa.String(length=64), nullable=False),
    sa.Column('for_capability', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['for_capability'], ['capabilities.code'], ),
    sa.ForeignKeyConstraint(['substitute'], ['capabilities.code'], ),
    sa.PrimaryKeyConstraint('substitute', 'for_capability')
    )
    op.create_table('reserves',
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('capability', sa.String(length=64), nullable=False),
    sa.Column('minimum', sa.Integer(), nullable=False),
    sa.Column('updated_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['capability'], ['capabilities.code'], ),
    sa.ForeignKeyConstraint(['city'], ['cities.slug'], ),
    sa.PrimaryKeyConstraint('city', 'capability')
    )
    op.create_table('resources',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('capability', sa.String(length=64), nullable=False),
    sa.Column('callsign', sa.String(length=64), nullable=False),
    sa.Column('home_lat', sa.Float(), nullable=False),
    sa.Column('home_lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('readiness_hours', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('status_since', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('exercise', sa.Boolean(), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['capability'], ['capabilities.code'], ),
    sa.ForeignKeyConstraint(['city'], ['cities.slug'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('callsign')
    )
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_capability'), ['capability'], unique=False)
        batch_op.create_index(batch_op.f('ix_resources_city'), ['city'], unique=False)
        batch_op.create_index(batch_op.f('ix_resources_status'), ['status'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', server.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['city'], ['cities.slug'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('idempotency_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'key', name='uq_idempotency_user_key')
    )
    op.create_table('incidents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('exercise', sa.Boolean(), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['city'], ['cities.slug'], ),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_city'), ['city'], unique=False)

    op.create_table('aid_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('exercise', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cancelled_at', server.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['city'], ['cities.slug'], ),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('aid_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aid_requests_city'), ['city'], unique=False)
        batch_op.create_index(batch_op.f('ix_aid_requests_incident_id'), ['incident_id'], unique=False)

    op.create_table('request_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('capability', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('substitutes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('needed_by', server.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('offered', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('arrived', sa.Integer(), nullable=False),
    sa.Column('released', sa.Integer(), nullable=False),
    sa.Column('returned', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['capability'], ['capabilities.code'], ),
    sa.ForeignKeyConstraint(['request_id'], ['aid_requests.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('request_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_items_request_id'), ['request_id'], unique=False)

    op.create_table('offers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('donor_city', sa.String(length=64), nullable=False),
    sa.Column('requesting_city', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reserve_override', sa.Boolean(), nullable=False),
    sa.Column('distance_km', sa.Float(), nullable=False),
    sa.Column('eta_hours', sa.Float(), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('decided_at', server.db.tables.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['donor_city'], ['cities.slug'], ),
    sa.ForeignKeyConstraint(['request_item_id'], ['request_items.id'], ),
    sa.ForeignKeyConstraint(['requesting_city'], ['cities.slug'], ),
    sa.ForeignKeyConstraint(['resource_id'], ['resources.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_offers_request_item_id'), ['request_item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_offers_resource_id'), ['resource_id'], unique=False)
        batch_op.create_index('uq_offers_one_pending_per_resource', ['resource_id'], unique=True, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    op.create_table('deployments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('offer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('request_item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('donor_city', sa.String(length=64), nullable=False),
    sa.Column('requesting_city', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', server.db.tables.UTCDateTime(timezone=True), nullable=False),
    sa.Column('timeline', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['donor_city'], ['cities.slug'], ),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], ),
    sa.ForeignKeyConstraint(['request_item_id'], ['request_items.id'], ),
    sa.ForeignKeyConstraint(['requesting_city'], ['cities.slug'], ),
    sa.ForeignKeyConstraint(['resource_id'], ['resources.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('offer_id')
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployments_request_item_id'), ['request_item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deployments_resource_id'), ['resource_id'], unique=False)
        batch_op.create_index('uq_deployments_one_active_per_resource', ['resource_id'], unique=True, postgresql_where=sa.text("status <> 'returned'"), sqlite_where=sa.text("status <> 'returned'"))


    # The one counter row that hands out event seqs (see server/db/unit_of_work.py).
    op.execute("INSERT INTO event_counter (id, seq) VALUES (1, 0)")


def downgrade() -> None:
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('uq_deployments_one_active_per_resource', postgresql_where=sa.text("status <> 'returned'"), sqlite_where=sa.text("status <> 'returned'"))
        batch_op.drop_index(batch_op.f('ix_deployments_resource_id'))
        batch_op.drop_index(batch_op.f('ix_deployments_request_item_id'))

    op.drop_table('deployments')
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_index('uq_offers_one_pending_per_resource', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_offers_resource_id'))
        batch_op.drop_index(batch_op.f('ix_offers_request_item_id'))

    op.drop_table('offers')
    with op.batch_alter_table('request_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_items_request_id'))

    op.drop_table('request_items')
    with op.batch_alter_table('aid_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aid_requests_incident_id'))
        batch_op.drop_index(batch_op.f('ix_aid_requests_city'))

    op.drop_table('aid_requests')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_city'))

    op.drop_table('incidents')
    op.drop_table('idempotency_keys')
    op.drop_table('users')
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resources_status'))
        batch_op.drop_index(batch_op.f('ix_resources_city'))
        batch_op.drop_index(batch_op.f('ix_resources_capability'))

    op.drop_table('resources')
    op.drop_table('reserves')
    op.drop_table('capability_substitutions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_type'))
        batch_op.drop_index(batch_op.f('ix_events_city'))

    op.drop_table('events')
    op.drop_table('event_counter')
    op.drop_table('cities')
    op.drop_table('capabilities')
