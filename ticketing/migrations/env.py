"""Alembic environment: async engine, batch mode for SQLite, our naming convention."""

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import event

from ticketing.db import (
    create_engine,
    models,  # noqa: F401  (registers the tables)
)
from ticketing.db.base import Base, UTCDateTime
from ticketing.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
VERSIONS = Path(__file__).parent / "versions"


def _url() -> str:
    return config.attributes.get("url") or Settings.from_env().database_url


def _render_item(type_, obj, autogen_context):
    # Migrations spell our UTC type as the plain column type it stores.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _name_new_revision(context, revision, directives) -> None:
    # A new migration is numbered after the newest file, and that number with its slug is
    # both its revision id and its file name (alembic.ini's file_template is the bare id), so
    # the files list in the order they run. The first seven files keep their historic ids.
    script = directives[0]
    numbers = [int(path.name[:4]) for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")]
    # alembic_version.version_num holds 32 characters: "NNNN_" and 27 of the slug.
    slug = re.sub(r"[^a-z0-9]+", "_", (script.message or "change").lower()).strip("_")[:27].rstrip("_")
    script.rev_id = f"{max(numbers, default=0) + 1:04d}_{slug}"


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        process_revision_directives=_name_new_revision,
    )


def _run_sync(connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")


def _without_foreign_keys(dbapi_connection, _record) -> None:
    # Batch mode copies a table and drops the old one. With foreign keys enforced, dropping it
    # would delete (ON DELETE CASCADE) or orphan the rows of every table referring to it, so
    # migrations run without them and check every foreign key before they commit.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


async def _run_async() -> None:
    engine = create_engine(_url())
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _without_foreign_keys)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async())
    else:  # called from async code (tests): run on a loop of its own
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _run_async()).result()
