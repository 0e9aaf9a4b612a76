"""console language and messages to attendees

Revision ID: 0011_console_language_messages
Revises: 0010_rate_counters

The organizer's chosen console language (NULL: the browser's), and the messages organizers
send to their webinars' ticket holders with one row per recipient and its delivery state.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_console_language_messages'
down_revision: str | Sequence[str] | None = '0010_rate_counters'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('messages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_messages_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_webinar_id_created_at', ['webinar_id', 'created_at'], unique=False)

    op.create_table('message_recipients',
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('ticket_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', name='ticketdelivery', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_recipients_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_message_recipients_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'ticket_id', name=op.f('pk_message_recipients'))
    )
    with op.batch_alter_table('message_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_recipients_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('organizers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('console_language', sa.String(length=5), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('organizers', schema=None) as batch_op:
        batch_op.drop_column('console_language')

    with op.batch_alter_table('message_recipients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_recipients_ticket_id'))

    op.drop_table('message_recipients')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_webinar_id_created_at')

    op.drop_table('messages')
