"""SQLite's direct statements (db/direct.py) and the pool they return the connection to."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import IntegrityError

from tests import factories
from ticketing.db import direct
from ticketing.db.models import Webinar, WebinarStatus

# What these test exists on SQLite only.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_a_direct_select_reads_values_as_the_orm_does(engine, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    statement = direct.compile_for(
        select(Webinar.__table__).where(Webinar.__table__.c.id == bindparam("w_id", type_=Webinar.__table__.c.id.type)),
        engine.dialect)
    async with engine.connect() as connection:
        raw = await direct.run(connection, lambda db: db.execute(statement.sql, statement.params({"w_id": webinar.id}))
                               .fetchone())
    read = dict(zip([c.name for c in Webinar.__table__.c], statement.row(raw)))
    assert read["id"] == webinar.id and read["starts_at"] == webinar.starts_at
    assert read["status"] is WebinarStatus.SCHEDULED and read["one_device"] is False


async def test_driver_errors_come_back_as_sqlalchemy_raises_them(engine, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    async with engine.connect() as connection:
        with pytest.raises(IntegrityError):
            await direct.run(connection, lambda db: db.execute(
                "INSERT INTO webinars (id) SELECT id FROM webinars WHERE id = ?", (webinar.id.hex,)))


async def test_the_connection_never_goes_back_to_the_pool_inside_a_transaction(engine):
    async with engine.connect() as connection:
        await direct.run(connection, lambda db: db.execute("BEGIN IMMEDIATE"))
    async with engine.connect() as connection:
        assert not await direct.run(connection, lambda db: db.in_transaction)


async def test_the_connection_goes_to_whoever_waited_first(engine):
    """The pool hands a returned connection to the first task that asks, even one that asks
    the moment it comes back while another has been waiting; the direct paths take turns."""
    order, returned = [], asyncio.Event()
    event.listen(engine.sync_engine, "checkin", lambda *_: returned.set())

    async def use(name: str) -> None:
        async with direct.connect(engine) as connection:
            order.append(name)
            await direct.run(connection, lambda db: None)

    async def arrive_when_returned() -> None:
        while not returned.is_set():  # a busy event loop: this task runs again every turn
            await asyncio.sleep(0)
        await use("arrived")

    async with direct.connect(engine):
        waiting = asyncio.create_task(use("waited"))
        await asyncio.sleep(0.05)
        arriving = asyncio.create_task(arrive_when_returned())
        await asyncio.sleep(0)
    await asyncio.gather(waiting, arriving)
    assert order == ["waited", "arrived"]
