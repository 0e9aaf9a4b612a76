"""unique organizer sign-in addresses

Revision ID: 0008_unique_organizer_email
Revises: 0007

Sign-in addresses are stored lower-case and belong to one organizer each. Addresses that two
organizers share (in any case) stop the upgrade with one message naming them, before anything
changes: which organizer keeps an address is the operator's choice, not the migration's.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing.db.migrate import MigrationRefused

revision: str = '0008_unique_organizer_email'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _shared(connection) -> list[tuple[str, list[str]]]:
    rows = connection.execute(sa.text(
        "SELECT lower(email), id FROM organizers WHERE lower(email) IN "
        "(SELECT lower(email) FROM organizers GROUP BY lower(email) HAVING count(*) > 1) "
        "ORDER BY lower(email), created_at, id"
    )).all()
    shared: dict[str, list[str]] = {}
    for email, organizer_id in rows:
        shared.setdefault(email, []).append(str(organizer_id))
    return sorted(shared.items())


def upgrade() -> None:
    connection = op.get_bind()
    shared = _shared(connection)
    if shared:
        listed = "; ".join(f"{email}: {len(ids)} organizers ({', '.join(ids)})" for email, ids in shared)
        raise MigrationRefused(
            f"organizers share sign-in addresses, which must be unique now: {listed}. Give each its own "
            f"address (UPDATE organizers SET email = 'new@example.com' WHERE id = '…';) or delete the one not "
            f"used (DELETE FROM organizers WHERE id = '…'; its webinars go with it), then migrate again"
        )
    connection.execute(sa.text("UPDATE organizers SET email = lower(email) WHERE email <> lower(email)"))
    with op.batch_alter_table('organizers') as batch:
        batch.create_unique_constraint(batch.f('uq_organizers_email'), ['email'])


def downgrade() -> None:
    with op.batch_alter_table('organizers') as batch:
        batch.drop_constraint(batch.f('uq_organizers_email'), type_='unique')
