"""buyers and attendees: webinar language, order page codes, seat assignment, replaced join codes

Revision ID: 0007
Revises: 0008

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webinars') as batch:
        batch.add_column(sa.Column('language', sa.String(length=10), server_default='en', nullable=False))
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('code_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('page_key', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('browser_key', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('code_sealed', sa.Text(), nullable=True))
        batch.create_unique_constraint(batch.f('uq_orders_code_hash'), ['code_hash'])
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('code_sealed', sa.Text(), nullable=True))
    # Tickets issued before order pages existed each got their own join mail: they count as
    # given to their holders, so time changes and reminders keep reaching them.
    op.execute("UPDATE tickets SET assigned_at = created_at")
    op.create_table('replaced_codes',
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('ticket_id', sa.Uuid(), nullable=False),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_replaced_codes_ticket_id_tickets'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_replaced_codes')),
    )
    op.create_index(op.f('ix_replaced_codes_ticket_id'), 'replaced_codes', ['ticket_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_replaced_codes_ticket_id'), table_name='replaced_codes')
    op.drop_table('replaced_codes')
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('code_sealed')
        batch.drop_column('assigned_at')
    with op.batch_alter_table('orders') as batch:
        batch.drop_constraint(batch.f('uq_orders_code_hash'), type_='unique')
        batch.drop_column('code_sealed')
        batch.drop_column('browser_key')
        batch.drop_column('page_key')
        batch.drop_column('code_hash')
    with op.batch_alter_table('webinars') as batch:
        batch.drop_column('language')
