"""order tax and offer: the tax Stripe Tax added to or found in an order's amount; the waitlist
entry whose offer an order is the checkout of

Revision ID: 0016_order_tax_and_offer
Revises: 0015_waitlist

Existing orders were all sold without Stripe Tax: their tax stays unknown (null), as none was added;
existing offer checkouts stay unmarked (the entry names the newest one).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_order_tax_and_offer'
down_revision: str | Sequence[str] | None = '0015_waitlist'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_tax', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('waitlist_entry_id', sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('waitlist_entry_id')
        batch_op.drop_column('amount_tax')
