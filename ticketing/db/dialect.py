"""What differs between SQLite and PostgreSQL, kept in one place."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert(session: AsyncSession, model):
    """The backend's INSERT into `model`'s table, which has `on_conflict_do_nothing()` on both.

    A plain table insert: the ORM's bulk machinery costs several times the statement itself
    and nothing here needs it (these inserts load no objects).
    """
    module = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return module.insert(model.__table__)
