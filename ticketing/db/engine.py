"""The engine and the sessionmaker: the one place database sessions come from."""

from __future__ import annotations

import weakref
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ticketing.db.retry import count_statements

# Execution option for SQLite readers that need no transaction (SQLAlchemy's AUTOCOMMIT
# isolation would hand the driver its own BEGIN back when the connection returns to the pool).
NO_TRANSACTION = "ticketing_no_transaction"

# A pooled PostgreSQL connection older than this is closed and replaced at its next checkout.
POOL_RECYCLE_SECONDS = 300


def create_engine(database_url: str, **kwargs) -> AsyncEngine:
    """An async engine; for SQLite, one connection per process with immediate transactions.

    SQLite allows one writer. A single pooled connection queues the tasks of one process
    instead of failing them with "database is locked"; BEGIN IMMEDIATE plus a busy timeout
    makes a second process (a CLI command beside `serve`) wait for the lock rather than
    fail halfway through a transaction.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # A fixed set of connections: overflow ones were opened and closed again under every
        # burst (a new PostgreSQL connection costs more CPU than a whole webhook here).
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 0)
        # No ping at checkout (a round trip on every request): connections are replaced after
        # POOL_RECYCLE_SECONDS, and the hot paths retry a transaction whose first statement met
        # a connection that died meanwhile (ticketing.db.retry).
        kwargs.setdefault("pool_pre_ping", False)
        kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
        engine = create_async_engine(url, **kwargs)
        count_statements(engine)
        return engine

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("pool_size", 1)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_timeout", 60)
    # Rolled back on return only when a transaction is open (`_on_reset`): the rollback is a
    # hand-off to the driver's thread, and the connection is the process's only one.
    kwargs.setdefault("pool_reset_on_return", None)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection):
        # Readers that asked for no transaction (the join link's one SELECT) run in the
        # driver's autocommit: WAL lets them read beside the writer instead of taking its lock.
        if not connection.get_execution_options().get(NO_TRANSACTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection, record, state):
        # A connection never goes back to the pool inside a transaction; the readers and the
        # fast paths that write through `db.direct` return it with none open.
        if state.asyncio_safe and record.driver_connection.in_transaction:
            dbapi_connection.rollback()

    count_statements(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit; one per request or job."""
    return async_sessionmaker(engine, expire_on_commit=False)


_AUTOCOMMIT: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def engine_of(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine behind the sessionmaker, for Core statements on a connection of its own."""
    return sessionmaker.kw["bind"]


def autocommit(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The sessionmaker's engine without transactions (see `without_transactions`)."""
    return without_transactions(engine_of(sessionmaker))


def without_transactions(engine: AsyncEngine) -> AsyncEngine:
    """`engine` without transactions: each statement commits on its own, with no BEGIN and
    COMMIT round trips around it (and on SQLite without the writer's lock), for hot paths that
    read, or write, with one statement."""
    found = _AUTOCOMMIT.get(engine)
    if found is None:
        if engine.dialect.name == "sqlite":
            found = engine.execution_options(**{NO_TRANSACTION: True})
        else:
            found = engine.execution_options(isolation_level="AUTOCOMMIT")
        _AUTOCOMMIT[engine] = found
    return found


def autocommit_session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncSession:
    """A session without a transaction: for reads that need none (each statement sees committed
    rows) and for writes of one statement each."""
    return AsyncSession(autocommit(sessionmaker), expire_on_commit=False)


# Errors about the statement or its data: retrying cannot help, so they are not outages.
_STATEMENT_ERRORS = (IntegrityError, DataError, ProgrammingError)
# SQLSTATE classes of a server that cannot take work right now: connection exceptions (08),
# insufficient resources (53: too many connections, disk full), operator intervention (57:
# shutting down, not accepting connections yet, statement timeout).
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")
# SQLite's words for "another process holds the file" or "the file cannot be reached".
_SQLITE_OUTAGES = ("database is locked", "database table is locked", "unable to open database file", "disk i/o error")


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database cannot be reached or is overloaded right now
    (answer 503, retry later), not that a statement or its data was at fault.

    Only connection-level failures count: pool and network timeouts, OS errors, invalidated
    connections, and server answers of the connection, resource and shutdown classes. Data
    the driver or the server refuses (too long, a NUL byte, a lone surrogate, an integer out
    of range) is the statement's fault, and so is anything not known to be an outage: a
    webhook then keeps its event for a later try instead of asking Stripe to retry for days.
    """
    if isinstance(error, (PoolTimeout, OSError, TimeoutError)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error, _STATEMENT_ERRORS):
        return False
    for cause in _causes(error.orig):
        if isinstance(cause, (OSError, TimeoutError)):
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES:
            return True
    message = str(error.orig).lower()
    return any(words in message for words in _SQLITE_OUTAGES)


def _causes(error: BaseException | None) -> list[BaseException]:
    """`error` and what it was raised from (the driver's own exception behind SQLAlchemy's adapter)."""
    chain: list[BaseException] = []
    while error is not None and error not in chain and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain
