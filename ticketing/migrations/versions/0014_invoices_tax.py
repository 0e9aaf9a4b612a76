"""invoices and tax: an organizer's invoice and tax settings; the invoice and credit note of an order

Revision ID: 0014_invoices_tax
Revises: 0013_promo_codes

Every setting starts off, so existing organizers sell exactly as before; existing orders have no invoice.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_invoices_tax'
down_revision: str | Sequence[str] | None = '0013_promo_codes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTINGS = ('invoices', 'collect_tax_id', 'automatic_tax', 'prices_include_tax')


def upgrade() -> None:
    with op.batch_alter_table('organizers', schema=None) as batch_op:
        for name in SETTINGS:
            batch_op.add_column(sa.Column(name, sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('invoice_footer', sa.String(length=500), nullable=True))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invoice_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('invoice_number', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('invoice_url', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('invoice_pdf', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('credit_note_number', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('credit_note_pdf', sa.String(length=1000), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_invoice_id'), ['invoice_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_invoice_id'))
        for name in ('credit_note_pdf', 'credit_note_number', 'invoice_pdf', 'invoice_url', 'invoice_number',
                     'invoice_id'):
            batch_op.drop_column(name)

    with op.batch_alter_table('organizers', schema=None) as batch_op:
        batch_op.drop_column('invoice_footer')
        for name in reversed(SETTINGS):
            batch_op.drop_column(name)
