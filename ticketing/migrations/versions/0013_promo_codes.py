"""promo codes: an organizer's discount codes with their use counters; the code an order used

Revision ID: 0013_promo_codes
Revises: 0012_ticket_types

Existing orders have no code; nothing they show changes.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_promo_codes'
down_revision: str | Sequence[str] | None = '0012_ticket_types'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('promo_codes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organizer_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('code_key', sa.String(length=64), nullable=False),
    sa.Column('percent_off', sa.Integer(), nullable=True),
    sa.Column('amount_off', sa.BigInteger(), nullable=True),
    sa.Column('fixed_price', sa.BigInteger(), nullable=True),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses_reserved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('uses_paid', sa.Integer(), server_default='0', nullable=False),
    sa.Column('revenue', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('webinar_id', sa.Uuid(), nullable=True),
    sa.Column('ticket_type_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(CASE WHEN percent_off IS NULL THEN 0 ELSE 1 END) + (CASE WHEN amount_off IS NULL THEN 0 ELSE 1 END) + (CASE WHEN fixed_price IS NULL THEN 0 ELSE 1 END) = 1', name=op.f('ck_promo_codes_one_discount')),
    sa.CheckConstraint('max_uses IS NULL OR uses_reserved + uses_paid <= max_uses', name=op.f('ck_promo_codes_uses_within_max')),
    sa.CheckConstraint('uses_reserved >= 0 AND uses_paid >= 0', name=op.f('ck_promo_codes_uses_not_negative')),
    sa.ForeignKeyConstraint(['organizer_id'], ['organizers.id'], name=op.f('fk_promo_codes_organizer_id_organizers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_promo_codes_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promo_codes')),
    sa.UniqueConstraint('organizer_id', 'code_key', name=op.f('uq_promo_codes_organizer_id_code_key'))
    )
    with op.batch_alter_table('promo_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promo_codes_organizer_id'), ['organizer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_promo_codes_webinar_id'), ['webinar_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promo_code_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('promo_use', sa.String(length=10), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_promo_code_id'), ['promo_code_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_orders_promo_code_id_promo_codes'), 'promo_codes', ['promo_code_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_promo_code_id_promo_codes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_orders_promo_code_id'))
        batch_op.drop_column('promo_use')
        batch_op.drop_column('promo_code_id')

    with op.batch_alter_table('promo_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promo_codes_webinar_id'))
        batch_op.drop_index(batch_op.f('ix_promo_codes_organizer_id'))

    op.drop_table('promo_codes')
