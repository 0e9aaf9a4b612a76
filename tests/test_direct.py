"""SQLite's direct statements (db/direct.py) and the pool they return the connection to."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from ticketing.db import direct
from ticketing.db.models import Webinar, WebinarStatus
from tests import factories


@pytest.fixture
def sqlite_engine(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's driver thread")
    return engine


async def test_a_direct_select_reads_values_as_the_orm_does(sqlite_engine, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    statement = direct.compile_for(
        select(Webinar.__table__).where(Webinar.__table__.c.id == bindparam("w_id", type_=Webinar.__table__.c.id.type)),
        sqlite_engine.dialect)
    async with sqlite_engine.connect() as connection:
        raw = await direct.run(connection, lambda db: db.execute(statement.sql, statement.params({"w_id": webinar.id}))
                               .fetchone())
    read = dict(zip([c.name for c in Webinar.__table__.c], statement.row(raw)))
    assert read["id"] == webinar.id and read["starts_at"] == webinar.starts_at
    assert read["status"] is WebinarStatus.SCHEDULED and read["one_device"] is False


async def test_driver_errors_come_back_as_sqlalchemy_raises_them(sqlite_engine, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    async with sqlite_engine.connect() as connection:
        with pytest.raises(IntegrityError):
            await direct.run(connection, lambda db: db.execute(
                "INSERT INTO webinars (id) SELECT id FROM webinars WHERE id = ?", (webinar.id.hex,)))


async def test_the_connection_never_goes_back_to_the_pool_inside_a_transaction(sqlite_engine):
    async with sqlite_engine.connect() as connection:
        await direct.run(connection, lambda db: db.execute("BEGIN IMMEDIATE"))
    async with sqlite_engine.connect() as connection:
        assert not await direct.run(connection, lambda db: db.in_transaction)
