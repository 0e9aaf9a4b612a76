"""dispute outcomes

Revision ID: 0009_dispute_outcomes
Revises: 0008_unique_organizer_email

A lost dispute is recorded beside a won one, and a card issuer's inquiry (which takes no
money) apart from a chargeback, so neither revokes tickets nor hides the outcome.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_dispute_outcomes'
down_revision: str | Sequence[str] | None = '0008_unique_organizer_email'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispute_lost_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('inquiry_opened_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('inquiry_closed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('inquiry_closed_at')
        batch_op.drop_column('inquiry_opened_at')
        batch_op.drop_column('dispute_lost_at')
