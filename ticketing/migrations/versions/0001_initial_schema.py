"""initial schema

Revision ID: 0001
Revises:


"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'dead', name='jobstatus', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=True),
    sa.Column('locked_by', sa.String(length=100), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_jobs_dedupe_key'))
    )
    op.create_index('ix_jobs_status_due_at', 'jobs', ['status', 'due_at'], unique=False)
    op.create_table('organizers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('api_key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizers')),
    sa.UniqueConstraint('api_key_hash', name=op.f('uq_organizers_api_key_hash'))
    )
    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('api_version', sa.String(length=40), nullable=True),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('checkout_session_id', sa.String(length=255), nullable=True),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )
    op.create_index(op.f('ix_stripe_events_checkout_session_id'), 'stripe_events', ['checkout_session_id'], unique=False)
    op.create_index(op.f('ix_stripe_events_payment_intent_id'), 'stripe_events', ['payment_intent_id'], unique=False)
    op.create_table('webinars',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organizer_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('price_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('seats_taken', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=63), nullable=False),
    sa.Column('status', sa.Enum('scheduled', 'cancelled', 'ended', name='webinarstatus', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('capacity IS NULL OR capacity > 0', name=op.f('ck_webinars_capacity_positive')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_webinars_ends_after_start')),
    sa.CheckConstraint('price_amount >= 0', name=op.f('ck_webinars_price_not_negative')),
    sa.CheckConstraint('seats_taken >= 0', name=op.f('ck_webinars_seats_taken_not_negative')),
    sa.ForeignKeyConstraint(['organizer_id'], ['organizers.id'], name=op.f('fk_webinars_organizer_id_organizers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webinars'))
    )
    op.create_index(op.f('ix_webinars_organizer_id'), 'webinars', ['organizer_id'], unique=False)
    op.create_index('ix_webinars_status_ends_at', 'webinars', ['status', 'ends_at'], unique=False)
    op.create_index('uq_webinars_live_room', 'webinars', ['room'], unique=True, sqlite_where=sa.text("status = 'scheduled'"), postgresql_where=sa.text("status = 'scheduled'"))
    op.create_table('orders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('stripe_session_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('buyer_name', sa.String(length=200), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('expected_amount', sa.BigInteger(), nullable=True),
    sa.Column('amount_total', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'paid', 'failed', 'expired', 'flagged', 'oversold', 'refunded', 'disputed', 'cancelled', name='orderstatus', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payment_failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disputed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispute_won_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('livemode', sa.Boolean(), nullable=True),
    sa.Column('problem', sa.Text(), nullable=True),
    sa.Column('refund_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_refunded >= 0', name=op.f('ck_orders_amount_refunded_not_negative')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_orders_quantity_positive')),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_orders_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('stripe_session_id', name=op.f('uq_orders_stripe_session_id'))
    )
    op.create_index(op.f('ix_orders_stripe_payment_intent_id'), 'orders', ['stripe_payment_intent_id'], unique=False)
    op.create_index(op.f('ix_orders_webinar_id'), 'orders', ['webinar_id'], unique=False)
    op.create_table('tickets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('valid', 'revoked', 'expired', name='ticketstatus', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('revoked_reason', sa.String(length=40), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_joined_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_joined_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('join_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_tickets_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_tickets_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_tickets_code_hash')),
    sa.UniqueConstraint('order_id', 'seq', name=op.f('uq_tickets_order_id_seq'))
    )
    op.create_index('ix_tickets_webinar_id_status', 'tickets', ['webinar_id', 'status'], unique=False)
    op.create_table('refunds',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('ticket_id', sa.Uuid(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('test', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_refunds_amount_not_negative')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_refunds_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_refunds_ticket_id_tickets'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds'))
    )
    op.create_index(op.f('ix_refunds_order_id'), 'refunds', ['order_id'], unique=False)
    op.create_table('sync_cursors',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sync_cursors'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('sync_cursors')
    op.drop_index(op.f('ix_refunds_order_id'), table_name='refunds')
    op.drop_table('refunds')
    op.drop_index('ix_tickets_webinar_id_status', table_name='tickets')
    op.drop_table('tickets')
    op.drop_index(op.f('ix_orders_webinar_id'), table_name='orders')
    op.drop_index(op.f('ix_orders_stripe_payment_intent_id'), table_name='orders')
    op.drop_table('orders')
    op.drop_index('uq_webinars_live_room', table_name='webinars', sqlite_where=sa.text("status = 'scheduled'"), postgresql_where=sa.text("status = 'scheduled'"))
    op.drop_index('ix_webinars_status_ends_at', table_name='webinars')
    op.drop_index(op.f('ix_webinars_organizer_id'), table_name='webinars')
    op.drop_table('webinars')
    op.drop_index(op.f('ix_stripe_events_payment_intent_id'), table_name='stripe_events')
    op.drop_index(op.f('ix_stripe_events_checkout_session_id'), table_name='stripe_events')
    op.drop_table('stripe_events')
    op.drop_table('organizers')
    op.drop_index('ix_jobs_status_due_at', table_name='jobs')
    op.drop_table('jobs')
