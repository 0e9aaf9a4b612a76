"""The job kinds the worker knows, and what a job handler gets and may raise."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.settings import Settings


class PermanentError(Exception):
    """The job cannot succeed however often it runs: park it as dead with this reason."""


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What every job handler may use. A handler opens its own sessions from `sessionmaker`."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    stripe: stripe.StripeClient | None
    http: aiohttp.ClientSession


JobHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]
PeriodicTask = Callable[[JobContext], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Kind:
    handler: JobHandler
    max_attempts: int


KINDS: dict[str, Kind] = {}
PERIODIC: dict[str, PeriodicTask] = {}


def registered(kind: str) -> Kind | None:
    """The registration of `kind`, loading every module that registers kinds first: a process
    that queues jobs without running a worker (`serve --no-worker`) has imported only some."""
    if kind not in KINDS:
        import ticketing.jobs.kinds  # noqa: F401  (registers every kind)
    return KINDS.get(kind)


def try_limit(kind: str, stored: int) -> int:
    """How many tries a job of `kind` gets: the kind's policy, or `stored` (the row's copy)
    for a kind this code does not know."""
    found = registered(kind)
    return found.max_attempts if found is not None else stored


def job(kind: str, *, max_attempts: int = 10) -> Callable[[JobHandler], JobHandler]:
    """Register `handler` for jobs of `kind`. Any exception but PermanentError is retried
    with backoff until `max_attempts`; PermanentError parks the job at once."""

    def register(handler: JobHandler) -> JobHandler:
        if kind in KINDS:
            raise RuntimeError(f"job kind {kind!r} registered twice")
        KINDS[kind] = Kind(handler, max_attempts)
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
