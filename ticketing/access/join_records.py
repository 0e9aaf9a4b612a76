"""The statements behind `/j/{code}`, written for a full room pressing its links at once.

PostgreSQL: one `UPDATE … FROM webinars … RETURNING` in autocommit both decides that a link
admits (valid ticket, scheduled webinar, inside the window) and records the join; only a link
that does not admit is looked at again to say why. SQLite: one SELECT in autocommit (WAL
readers never wait for the writer) sent to the driver's thread in one call (`db.direct`),
and the joins are counted in memory and written in batches, one short transaction per
second, so that a full room never queues behind the one writer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import types
import uuid
import weakref
from typing import Any

import asyncpg
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ticketing.db import direct
from ticketing.db.engine import autocommit, engine_of
from ticketing.db.models import Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.db.retry import retry_dead_connection
from ticketing.errors import Unavailable

logger = logging.getLogger(__name__)

TICKETS, WEBINARS = Ticket.__table__, Webinar.__table__
_TICKET_COLUMNS = [c for c in TICKETS.c]
_WEBINAR_COLUMNS = [c for c in WEBINARS.c]
_LABELLED = [c.label(f"t_{c.name}") for c in _TICKET_COLUMNS] + [c.label(f"w_{c.name}") for c in _WEBINAR_COLUMNS]

# How long SQLite's join counts wait in memory before one transaction writes them.
FLUSH_SECONDS = 1.0

_FIND = (select(*_LABELLED).join_from(TICKETS, WEBINARS, WEBINARS.c.id == TICKETS.c.webinar_id)
         .where(TICKETS.c.code_hash == bindparam("j_code_hash")))

# Admits exactly when access.join.decide would: a valid ticket of a scheduled webinar whose
# window (starts_at − early … ends_at + grace) holds `now`, and that does not ask for one
# device per ticket. Sent to asyncpg directly (the one
# statement of the hottest path; SQLAlchemy's execution machinery cost more than the
# statement): $1 code hash, $2 now, $3 now + early, $4 now − grace.
_ADMIT_SQL = (
    "UPDATE tickets SET join_count = tickets.join_count + 1,"
    " first_joined_at = coalesce(tickets.first_joined_at, $2), last_joined_at = $2"
    " FROM webinars WHERE tickets.code_hash = $1 AND webinars.id = tickets.webinar_id"
    f" AND tickets.status = '{TicketStatus.VALID.value}' AND webinars.status = '{WebinarStatus.SCHEDULED.value}'"
    " AND webinars.starts_at <= $3 AND webinars.ends_at >= $4"
    # One device per ticket needs the device claim: those links take access.join's transaction.
    " AND NOT webinars.one_device"
    " RETURNING tickets.id, tickets.name, tickets.email, tickets.code_hash,"
    " webinars.id, webinars.room, webinars.starts_at, webinars.ends_at"
)

_RECORD = (
    update(TICKETS)
    .where(TICKETS.c.id == bindparam("ticket_id", type_=TICKETS.c.id.type))
    .values(join_count=TICKETS.c.join_count + bindparam("joins"),
            first_joined_at=func.coalesce(TICKETS.c.first_joined_at, bindparam("first", type_=TICKETS.c.first_joined_at.type)),
            last_joined_at=bindparam("last", type_=TICKETS.c.last_joined_at.type))
)


async def admit(sessionmaker: async_sessionmaker[AsyncSession], code_hash: str, *, opens_by: dt.datetime,
                closes_by: dt.datetime, now: dt.datetime) -> tuple[Any, Any] | None:
    """PostgreSQL: record a join and return the ticket and webinar when the link admits now;
    None when it does not (unknown, revoked, too early or too late).

    The two objects carry what admitting needs (ticket: id, name, email, code_hash;
    webinar: id, room, starts_at, ends_at), not whole rows.
    """
    engine = autocommit(sessionmaker)
    for attempt in (1, 2):
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            try:
                row = await driver.fetchrow(_ADMIT_SQL, code_hash, now, opens_by, closes_by)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
                # The pooled connection died while it waited: nothing ran, so try once more on a
                # fresh one; a second failure is an outage.
                await connection.invalidate()
                if attempt == 2:
                    raise Unavailable("the database is unavailable") from error
                continue
        break
    if row is None:
        return None
    ticket = types.SimpleNamespace(id=row[0], name=row[1], email=row[2], code_hash=row[3])
    webinar = types.SimpleNamespace(id=row[4], room=row[5], starts_at=row[6], ends_at=row[7])
    return ticket, webinar


_FIND_DIRECT: dict[str, direct.Compiled] = {}


def _select_one(db, statement: direct.Compiled, code_hash: str) -> tuple | None:
    return db.execute(statement.sql, statement.params({"j_code_hash": code_hash})).fetchone()


async def find(sessionmaker: async_sessionmaker[AsyncSession], code_hash: str) -> tuple[Any, Any] | None:
    """SQLite: the ticket with this code hash and its webinar, read in one SELECT outside any
    transaction (WAL readers never wait for the writer), in one call on the driver's thread.

    Every column comes back as the ORM reads it, in two plain objects; `as_models` makes the
    ORM's own from them for the pages that say why a link does not admit.
    """
    engine = autocommit(sessionmaker)
    statement = _FIND_DIRECT.get("sqlite")
    if statement is None:
        statement = _FIND_DIRECT["sqlite"] = direct.compile_for(_FIND, engine.dialect)

    async def run():
        async with direct.connect(engine) as connection:
            return await direct.run(connection, _select_one, statement, code_hash)

    row = await retry_dead_connection(run)
    if row is None:
        return None
    values = statement.row(row)
    ticket = types.SimpleNamespace(**{c.name: v for c, v in zip(_TICKET_COLUMNS, values)})
    webinar = types.SimpleNamespace(**{c.name: v for c, v in zip(_WEBINAR_COLUMNS, values[len(_TICKET_COLUMNS):])})
    return ticket, webinar


def as_models(ticket, webinar) -> tuple[Ticket, Webinar]:
    """The ORM's Ticket and Webinar for what `find` read."""
    return Ticket(**vars(ticket)), Webinar(**vars(webinar))


async def record_now(sessionmaker: async_sessionmaker[AsyncSession], ticket_id: uuid.UUID, now: dt.datetime) -> None:
    """Record one join at once (the rare path: a link that came to admit between two reads)."""
    async with sessionmaker.begin() as session:
        await session.execute(_RECORD, [{"ticket_id": ticket_id, "joins": 1, "first": now, "last": now}])


@dataclasses.dataclass
class _Joins:
    count: int
    first: dt.datetime
    last: dt.datetime


class JoinBatch:
    """Joins counted in memory for one engine and written together (SQLite)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.pending: dict[uuid.UUID, _Joins] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, ticket_id: uuid.UUID, now: dt.datetime) -> None:
        joins = self.pending.get(ticket_id)
        if joins is None:
            self.pending[ticket_id] = _Joins(1, now, now)
        else:
            joins.count += 1
            joins.first, joins.last = min(joins.first, now), max(joins.last, now)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> int:
        """Write every pending count in one transaction; returns how many tickets it touched."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self.pending = self.pending, {}
        if not pending:
            return 0
        rows = [{"ticket_id": ticket_id, "joins": j.count, "first": j.first, "last": j.last}
                for ticket_id, j in pending.items()]
        try:
            async with self.sessionmaker.begin() as session:
                await session.execute(_RECORD, rows)
        except Exception as error:
            # Join counts are for the organizer's attendance figures; a lost batch must not
            # hold back the next one.
            logger.warning("join counts not recorded", extra={"tickets": len(rows), "error": type(error).__name__})
            return 0
        return len(rows)


_BATCHES: weakref.WeakKeyDictionary[AsyncEngine, JoinBatch] = weakref.WeakKeyDictionary()


def batch_for(sessionmaker: async_sessionmaker[AsyncSession]) -> JoinBatch:
    engine = engine_of(sessionmaker)
    batch = _BATCHES.get(engine)
    if batch is None:
        batch = _BATCHES[engine] = JoinBatch(sessionmaker)
    return batch


async def flush_joins(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Write the joins counted in memory for this sessionmaker's engine (at shutdown, in tests)."""
    batch = _BATCHES.get(engine_of(sessionmaker))
    if batch is None:
        return 0
    await asyncio.gather(*batch._tasks, return_exceptions=True)
    return await batch.flush()
