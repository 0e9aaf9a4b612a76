"""ticket types: each webinar's price becomes its default type; order lines; each seat's type

Revision ID: 0012_ticket_types
Revises: 0011_console_language_messages

Every webinar gets one default type named "Ticket" at its price, without a capacity or sale
window of its own, so nothing a buyer or organizer sees changes; every ticket is of that type.
Orders keep no lines: an order without lines holds seats of its webinar's default type.
"""
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_ticket_types'
down_revision: str | Sequence[str] | None = '0011_console_language_messages'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_NAME = "Ticket"


def upgrade() -> None:
    with op.batch_alter_table('webinars') as batch:
        batch.add_column(sa.Column('typed', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    types = op.create_table('ticket_types',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('webinar_id', sa.Uuid(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('description', sa.Text(), server_default='', nullable=False),
        sa.Column('price_amount', sa.BigInteger(), nullable=False),
        sa.Column('capacity', sa.Integer(), nullable=True),
        sa.Column('seats_taken', sa.Integer(), server_default='0', nullable=False),
        sa.Column('sales_start', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sales_end', sa.DateTime(timezone=True), nullable=True),
        sa.Column('hidden', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('position', sa.Integer(), server_default='0', nullable=False),
        sa.Column('is_default', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('capacity IS NULL OR capacity > 0', name=op.f('ck_ticket_types_capacity_positive')),
        sa.CheckConstraint('price_amount >= 0', name=op.f('ck_ticket_types_price_not_negative')),
        sa.CheckConstraint('sales_start IS NULL OR sales_end IS NULL OR sales_end > sales_start',
                           name=op.f('ck_ticket_types_window_not_empty')),
        sa.CheckConstraint('seats_taken >= 0', name=op.f('ck_ticket_types_seats_taken_not_negative')),
        sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_ticket_types_webinar_id_webinars'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_types')),
    )
    op.create_index(op.f('ix_ticket_types_webinar_id'), 'ticket_types', ['webinar_id'], unique=False)
    op.create_index('uq_ticket_types_default', 'ticket_types', ['webinar_id'], unique=True,
                    sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
    op.create_table('order_lines',
        sa.Column('order_id', sa.Uuid(), nullable=False),
        sa.Column('ticket_type_id', sa.Uuid(), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('unit_amount', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('quantity > 0', name=op.f('ck_order_lines_quantity_positive')),
        sa.CheckConstraint('unit_amount >= 0', name=op.f('ck_order_lines_unit_amount_not_negative')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_type_id'], ['ticket_types.id'],
                                name=op.f('fk_order_lines_ticket_type_id_ticket_types')),
        sa.PrimaryKeyConstraint('order_id', 'ticket_type_id', name=op.f('pk_order_lines')),
    )
    op.create_index(op.f('ix_order_lines_ticket_type_id'), 'order_lines', ['ticket_type_id'], unique=False)

    # One default type per existing webinar, at its price; ids made here so both databases agree.
    connection = op.get_bind()
    webinars = sa.table('webinars', sa.column('id', sa.Uuid()), sa.column('price_amount', sa.BigInteger()),
                        sa.column('created_at', sa.DateTime(timezone=True)))
    rows = [{"id": uuid.uuid4(), "webinar_id": webinar_id, "name": DEFAULT_NAME, "description": "",
             "price_amount": price, "seats_taken": 0, "hidden": False, "position": 0, "is_default": True,
             "created_at": created}
            for webinar_id, price, created in connection.execute(
                sa.select(webinars.c.id, webinars.c.price_amount, webinars.c.created_at)).all()]
    if rows:
        op.bulk_insert(types, rows)

    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('ticket_type_id', sa.Uuid(), nullable=True))
    op.execute("UPDATE tickets SET ticket_type_id = (SELECT ticket_types.id FROM ticket_types "
               "WHERE ticket_types.webinar_id = tickets.webinar_id AND ticket_types.is_default)")
    with op.batch_alter_table('tickets') as batch:
        batch.alter_column('ticket_type_id', existing_type=sa.Uuid(), nullable=False)
        batch.create_index(batch.f('ix_tickets_ticket_type_id'), ['ticket_type_id'], unique=False)
        batch.create_foreign_key(batch.f('fk_tickets_ticket_type_id_ticket_types'), 'ticket_types',
                                 ['ticket_type_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.drop_constraint(batch.f('fk_tickets_ticket_type_id_ticket_types'), type_='foreignkey')
        batch.drop_index(batch.f('ix_tickets_ticket_type_id'))
        batch.drop_column('ticket_type_id')
    op.drop_index(op.f('ix_order_lines_ticket_type_id'), table_name='order_lines')
    op.drop_table('order_lines')
    op.drop_index('uq_ticket_types_default', table_name='ticket_types',
                  sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
    op.drop_index(op.f('ix_ticket_types_webinar_id'), table_name='ticket_types')
    op.drop_table('ticket_types')
    with op.batch_alter_table('webinars') as batch:
        batch.drop_column('typed')
