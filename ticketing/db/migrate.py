"""Running the Alembic migrations shipped inside the package."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ticketing.db.engine import create_engine


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "ticketing:migrations")
    config.attributes["url"] = database_url
    config.attributes["configure_logging"] = False
    return config


class MigrationRefused(RuntimeError):
    """A migration found data it will not change on its own; its message says what to do."""


def upgrade(database_url: str, revision: str = "head") -> None:
    """`alembic upgrade head` on `database_url`. Call it outside a running event loop.
    Raises MigrationRefused when a migration stops on data the operator must settle first."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise when the models hold anything the migrations do not (`alembic check`)."""
    command.check(alembic_config(database_url))


def head(database_url: str) -> str | None:
    """The newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def revision(database_url: str) -> str | None:
    """The revision the database is at; None for a database without our schema."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()


async def pending(database_url: str) -> bool:
    """True when the database is not at the newest migration."""
    return await revision(database_url) != head(database_url)


def current_revision(database_url: str) -> str | None:
    return asyncio.run(revision(database_url))


def is_pending(database_url: str) -> bool:
    return asyncio.run(pending(database_url))
