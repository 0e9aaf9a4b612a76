"""Retrying a transaction that met a dead pooled connection before doing anything.

The pool does not ping a connection at checkout (that costs a round trip on every request);
connections are recycled after a while instead. A connection the server or the network
dropped meanwhile fails on the transaction's first statement. When nothing in the
transaction has succeeded yet, running it again on a fresh connection is always safe, so
the caller never sees an outage that was only a stale socket.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

# Statements that succeeded in the current attempt: a one-item list the engine event bumps.
# SQLAlchemy runs the driver in a greenlet that shares the caller's context, so the event sees it.
_succeeded: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("ticketing_statements", default=None)


def count_statements(engine: AsyncEngine) -> None:
    """Let `retry_dead_connection` know whether a statement on `engine` succeeded."""

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(*_args) -> None:
        box = _succeeded.get()
        if box is not None:
            box[0] += 1


def is_dead_connection(error: BaseException) -> bool:
    """True when the driver said the connection itself is gone (SQLAlchemy invalidated it)."""
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


async def retry_dead_connection(run: Callable[[], Awaitable[T]], *, attempts: int = 3) -> T:
    """`run()`, again (up to `attempts` times in all) when it failed on a dead connection
    before any of its statements succeeded; any other failure propagates at once."""
    for attempt in range(1, attempts + 1):
        box = [0]
        token = _succeeded.set(box)
        try:
            return await run()
        except DBAPIError as error:
            if attempt == attempts or box[0] or not is_dead_connection(error):
                raise
        finally:
            _succeeded.reset(token)
    raise AssertionError("unreachable")
