"""attendance from Jitsi events, one device per ticket, certificates of attendance

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-30 19:09:13.778628

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('jitsi_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('room_name', sa.String(length=255), nullable=True),
    sa.Column('webinar_id', sa.Uuid(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_jitsi_events_webinar_id_webinars'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jitsi_events')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_jitsi_events_fingerprint'))
    )
    with op.batch_alter_table('jitsi_events', schema=None) as batch_op:
        batch_op.create_index('ix_jitsi_events_processed_at', ['processed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jitsi_events_webinar_id'), ['webinar_id'], unique=False)

    op.create_table('attendance_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('ticket_id', sa.Uuid(), nullable=True),
    sa.Column('space', sa.String(length=255), nullable=False),
    sa.Column('occupant_jid', sa.String(length=512), nullable=False),
    sa.Column('nick', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('left_exact', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_attendance_sessions_ticket_id_tickets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_attendance_sessions_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance_sessions')),
    sa.UniqueConstraint('webinar_id', 'space', 'occupant_jid', 'joined_at', name=op.f('uq_attendance_sessions_webinar_id_space_occupant_jid_joined_at'))
    )
    with op.batch_alter_table('attendance_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_attendance_sessions_ticket_id_left_at', ['ticket_id', 'left_at'], unique=False)

    op.create_table('certificates',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('ticket_id', sa.Uuid(), nullable=False),
    sa.Column('webinar_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('percent', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_certificates_ticket_id_tickets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webinar_id'], ['webinars.id'], name=op.f('fk_certificates_webinar_id_webinars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('code', name=op.f('uq_certificates_code')),
    sa.UniqueConstraint('ticket_id', name=op.f('uq_certificates_ticket_id'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificates_webinar_id'), ['webinar_id'], unique=False)

    op.create_table('device_moves',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('ticket_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_device_moves_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_moves')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_device_moves_token_hash'))
    )
    with op.batch_alter_table('device_moves', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_moves_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticket_devices',
    sa.Column('ticket_id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('joins', sa.Integer(), nullable=False),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_devices_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'device_id', name=op.f('pk_ticket_devices'))
    )
    with op.batch_alter_table('webinars', schema=None) as batch_op:
        batch_op.add_column(sa.Column('one_device', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('certificate_min_percent', sa.Integer(), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('webinars', schema=None) as batch_op:
        batch_op.drop_column('certificate_min_percent')
        batch_op.drop_column('one_device')

    op.drop_table('ticket_devices')
    with op.batch_alter_table('device_moves', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_moves_ticket_id'))

    op.drop_table('device_moves')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificates_webinar_id'))

    op.drop_table('certificates')
    with op.batch_alter_table('attendance_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_attendance_sessions_ticket_id_left_at')

    op.drop_table('attendance_sessions')
    with op.batch_alter_table('jitsi_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jitsi_events_webinar_id'))
        batch_op.drop_index('ix_jitsi_events_processed_at')

    op.drop_table('jitsi_events')
