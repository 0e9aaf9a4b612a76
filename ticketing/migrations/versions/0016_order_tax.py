"""order tax: the tax Stripe Tax added to or found in an order's amount

Revision ID: 0016_order_tax
Revises: 0015_waitlist

Existing orders were all sold without Stripe Tax: their tax stays unknown (null), as none was added.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_order_tax'
down_revision: str | Sequence[str] | None = '0015_waitlist'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_tax', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('amount_tax')
