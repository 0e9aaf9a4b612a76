"""money safety: sales end, late orders, ticket delivery state, free registrations

Revision ID: 0003
Revises: 0002

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_STATUSES = ('pending', 'paid', 'failed', 'expired', 'flagged', 'oversold', 'refunded', 'disputed', 'cancelled')


def _order_status_check(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def upgrade() -> None:
    op.create_table('registrations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_registrations_order_id_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_registrations_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registrations')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_registrations_code_hash')),
    sa.UniqueConstraint('webinar_id', 'email_key', name=op.f('uq_registrations_webinar_id_email_key'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_status', sa.Enum('queued', 'sent', 'failed', name='ticketdelivery', native_enum=False, create_constraint=True, length=20), server_default='queued', nullable=False))
        batch_op.add_column(sa.Column('delivery_error', sa.Text(), nullable=True))
    # Tickets from before delivery was tracked: their mails went out long ago.
    op.execute("UPDATE tickets SET delivery_status = 'sent'")

    with op.batch_alter_table('webinars', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sales_end', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(op.f('ck_webinars_sales_end_not_after_end'),
                                         'sales_end IS NULL OR sales_end <= ends_at')

    # A new order status: the CHECK of the enum column is rebuilt with it.
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_orderstatus'), type_='check')
        batch_op.create_check_constraint(op.f('ck_orders_orderstatus'), _order_status_check(ORDER_STATUSES + ('late',)))


def downgrade() -> None:
    op.execute("UPDATE orders SET status = 'refunded' WHERE status = 'late'")
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_orderstatus'), type_='check')
        batch_op.create_check_constraint(op.f('ck_orders_orderstatus'), _order_status_check(ORDER_STATUSES))

    with op.batch_alter_table('webinars', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_webinars_sales_end_not_after_end'), type_='check')
        batch_op.drop_column('sales_end')

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_tickets_ticketdelivery'), type_='check')
        batch_op.drop_column('delivery_error')
        batch_op.drop_column('delivery_status')

    op.drop_table('registrations')
