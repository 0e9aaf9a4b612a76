"""The job kinds the worker knows, and what a job handler gets and may raise."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.settings import Settings


class PermanentError(Exception):
    """The job cannot succeed however often it runs: park it as dead with this reason."""


# The writes a running job asked to have made together with its "done" mark (see write_with_done).
_WITH_DONE: contextvars.ContextVar[list[tuple[Any, dict[str, Any]]] | None] = contextvars.ContextVar(
    "ticketing_writes_with_done", default=None)


def write_with_done(statement: Any, params: dict[str, Any]) -> bool:
    """Have the worker execute `statement` with `params` in the transaction that marks the
    running job done, with the other jobs finishing alongside, instead of in one of its own
    now: for bookkeeping after a side effect (a mail accepted) that must not fail the job. If
    that transaction fails, the job runs again and so does this write. False when no worker
    runs the job (the caller then writes it itself)."""
    pending = _WITH_DONE.get()
    if pending is None:
        return False
    pending.append((statement, params))
    return True


@contextlib.contextmanager
def collecting_writes() -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """For the worker, around one job's handler: the writes it asked to make with its done mark."""
    pending: list[tuple[Any, dict[str, Any]]] = []
    token = _WITH_DONE.set(pending)
    try:
        yield pending
    finally:
        _WITH_DONE.reset(token)


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What every job handler may use. A handler opens its own sessions from `sessionmaker`."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    stripe: stripe.StripeClient | None
    http: aiohttp.ClientSession


JobHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]
# Told that a job was parked without its handler finishing its last try (the worker running
# that try died), with the reason; for bookkeeping the handler would have done.
AbandonedHook = Callable[[JobContext, dict[str, Any], str], Awaitable[None]]
PeriodicTask = Callable[[JobContext], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Kind:
    handler: JobHandler
    max_attempts: int
    abandoned: AbandonedHook | None = None


KINDS: dict[str, Kind] = {}
PERIODIC: dict[str, PeriodicTask] = {}


def try_limit(kind: str, stored: int) -> int:
    """How many tries a job of `kind` gets: the kind's policy, or `stored` (the row's copy)
    for a kind this process does not know (the processes load every kind: ticketing.workers)."""
    found = KINDS.get(kind)
    return found.max_attempts if found is not None else stored


def job(kind: str, *, max_attempts: int = 10,
        abandoned: AbandonedHook | None = None) -> Callable[[JobHandler], JobHandler]:
    """Register `handler` for jobs of `kind`. Any exception but PermanentError is retried
    with backoff until `max_attempts`; PermanentError parks the job at once. `abandoned` is
    called when the worker running the last try died and the job is parked without it."""

    def register(handler: JobHandler) -> JobHandler:
        if kind in KINDS:
            raise RuntimeError(f"job kind {kind!r} registered twice")
        KINDS[kind] = Kind(handler, max_attempts, abandoned)
        return handler

    return register


def periodic(name: str) -> Callable[[PeriodicTask], PeriodicTask]:
    """Register a task the worker runs every TICKETING_SWEEP_SECONDS (it must be idempotent
    and safe to run in several workers at once)."""

    def register(task: PeriodicTask) -> PeriodicTask:
        if name in PERIODIC:
            raise RuntimeError(f"periodic task {name!r} registered twice")
        PERIODIC[name] = task
        return task

    return register
