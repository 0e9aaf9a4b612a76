"""rate counters shared by every process

Revision ID: 0010_rate_counters
Revises: 0009_dispute_outcomes

Rate limits (join links, sign-in mails, registrations, API keys, seat reassignments) were
counted in each process's memory; this table lets every process count the same allowance.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_rate_counters'
down_revision: str | Sequence[str] | None = '0009_dispute_outcomes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rate_counters',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('full_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_counters'))
    )
    with op.batch_alter_table('rate_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_counters_full_at'), ['full_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_counters_full_at'))
    op.drop_table('rate_counters')
