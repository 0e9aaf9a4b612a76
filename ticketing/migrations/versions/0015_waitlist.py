"""waitlist: places on a sold-out webinar's waitlist; per webinar, whether it has one and how long an offer holds

Revision ID: 0015_waitlist
Revises: 0014_invoices_tax

Existing webinars get the waitlist switched on with 12-hour offers; nobody is on any list yet.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_waitlist'
down_revision: str | Sequence[str] | None = '0014_invoices_tax'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('waitlist_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('ticket_type_id', sa.Uuid(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('offered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('offered_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('held', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('outcome', sa.Enum('bought', 'expired', 'declined', 'removed', 'closed', name='waitlistoutcome', native_enum=False, create_constraint=True, length=20), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_waitlist_entries_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_waitlist_entries_order_id_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_type_id'], ['ticket_types.id'], name=op.f('fk_waitlist_entries_ticket_type_id_ticket_types'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_waitlist_entries_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_waitlist_entries_code_hash')),
    sa.UniqueConstraint('webinar_id', 'email_key', name=op.f('uq_waitlist_entries_webinar_id_email_key'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_entries_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_waitlist_entries_webinar_id_confirmed_at', ['webinar_id', 'confirmed_at'], unique=False)

    with op.batch_alter_table('webinars', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waitlist', sa.Boolean(), server_default=sa.text('true'), nullable=False))
        batch_op.add_column(sa.Column('offer_hours', sa.Integer(), server_default='12', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('webinars', schema=None) as batch_op:
        batch_op.drop_column('offer_hours')
        batch_op.drop_column('waitlist')

    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_entries_webinar_id_confirmed_at')
        batch_op.drop_index(batch_op.f('ix_waitlist_entries_order_id'))

    op.drop_table('waitlist_entries')
