"""organizer profile: contact address, imprint and terms links

Revision ID: 0002
Revises: 0001

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('organizers') as batch:
        batch.add_column(sa.Column('contact_email', sa.String(length=320), nullable=True))
        batch.add_column(sa.Column('imprint_url', sa.String(length=500), nullable=True))
        batch.add_column(sa.Column('terms_url', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('organizers') as batch:
        batch.drop_column('terms_url')
        batch.drop_column('imprint_url')
        batch.drop_column('contact_email')
