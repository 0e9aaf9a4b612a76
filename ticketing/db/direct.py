"""SQLite's hottest statements sent straight to the driver's thread.

aiosqlite runs every call on the connection's own thread and hands the result back through
the event loop; through SQLAlchemy one statement costs three or four such hand-offs (cursor,
execute, fetch, close), and a process has one SQLite connection, held through all of them.
Here a function runs a whole unit of work (a transaction, or one SELECT) in one call on that
thread. The statements are SQLAlchemy Core statements compiled once, and every value goes
in and comes out through its column type's own processors, exactly as SQLAlchemy binds and
reads it: what is stored does not depend on which way it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A Core statement compiled for a dialect: its text, how to bind a dict of values, and how
    to read its result columns."""

    sql: str
    names: tuple[str, ...]
    binders: tuple[Any, ...]
    fixed: dict[str, Any]  # the statement's own literals, and scalar column defaults
    readers: tuple[Any, ...]

    def params(self, values: dict[str, Any]) -> tuple[Any, ...]:
        bound = []
        for name, bind in zip(self.names, self.binders):
            value = values[name] if name in values else self.fixed[name]
            bound.append(value if bind is None else bind(value))
        return tuple(bound)

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(value if read is None else read(value) for read, value in zip(self.readers, raw))


def compile_for(statement, dialect, columns: tuple[str, ...] | None = None) -> Compiled:
    """`statement` compiled for `dialect` (an INSERT for the given `columns` only).

    A column default SQLAlchemy would compute at execution (`updated_at`'s onupdate) must be
    among the values given to `params`; a scalar one (a status) is filled in.
    """
    compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)
    defaults = {c.key: c.default for c in compiled.insert_prefetch}
    defaults.update({c.key: c.onupdate for c in compiled.update_prefetch})
    fixed = {}
    for name in compiled.positiontup:
        bind, default = compiled.binds[name], defaults.get(name)
        if default is not None:
            if default.is_scalar:
                fixed[name] = default.arg
        elif not bind.required:
            fixed[name] = bind.effective_value
    # A SELECT's columns are read as the ORM reads them; RETURNING gives plain values.
    columns_read = statement.selected_columns if isinstance(statement, Select) else ()
    readers = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns_read)
    return Compiled(
        sql=compiled.string, names=tuple(compiled.positiontup), fixed=fixed, readers=readers,
        binders=tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                      for name in compiled.positiontup))


_TURNS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The engine's (one) connection, taken in turn by the direct paths.

    SQLAlchemy's pool gives a returned connection to whichever task asks first, and a task
    woken for it that finds it gone waits again at the back: with many short uses the
    unlucky ones waited ten times as long as the rest. An asyncio lock is first come, first
    served.
    """
    turn = _TURNS.get(engine.pool)
    if turn is None:
        turn = _TURNS[engine.pool] = asyncio.Lock()
    async with turn, engine.connect() as connection:
        yield connection


async def run(connection: AsyncConnection, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`work(sqlite3_connection, *args, **kwargs)` in one call on the driver's thread.

    Its sqlite3 errors come back as SQLAlchemy raises them (an IntegrityError, or an
    OperationalError that `db.is_unavailable` knows as a locked database).
    """
    driver = (await connection.get_raw_connection()).driver_connection
    try:
        # aiosqlite has no public call for "run this on the connection's thread"; `_execute` is
        # what each of its own methods goes through (the fast paths' SQLite tests run through here).
        return await driver._execute(work, driver._conn, *args, **kwargs)
    except sqlite3.Error as error:
        raise DBAPIError.instance(None, None, error, sqlite3.Error) from error
