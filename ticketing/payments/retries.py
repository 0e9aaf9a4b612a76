"""Stored Stripe events whose processing failed: retried with capped exponential backoff,
counted per event, and parked for an operator after the last try.

The first failure is logged with its stack trace; later ones with one short line, so a bug
that fails an event on every try does not fill the log. A parked event stays visible
(`ticketing events list --failed`) until someone retries it (`ticketing events retry ID`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import utcnow
from ticketing.db.models import StripeEvent
from ticketing.errors import Conflict, NotFound
from ticketing.payments.sanitise import clean_text

logger = logging.getLogger(__name__)

# The first retry waits a minute (the webhook request may still hold the event), each next
# one twice as long, at most an hour: the 25 tries span about 20 hours.
FIRST_DELAY = dt.timedelta(minutes=1)
MAX_DELAY = dt.timedelta(hours=1)
MAX_ATTEMPTS = 25
MAX_ERROR_CHARS = 2000


async def failed_counts(session: AsyncSession) -> tuple[int, int]:
    """(waiting for a retry, parked) stored events."""
    waiting, parked = (await session.execute(select(
        func.count(StripeEvent.next_attempt_at), func.count(StripeEvent.parked_at),
    ).where((StripeEvent.next_attempt_at.is_not(None)) | (StripeEvent.parked_at.is_not(None))))).one()
    return waiting, parked


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed try (1-based) before the next."""
    exponent = min(max(attempts - 1, 0), 20)
    return min(FIRST_DELAY * (2 ** exponent), MAX_DELAY)


def describe(error: BaseException) -> str:
    """An error as the one line stored on the event (storable: no NUL byte, no lone surrogate)."""
    return clean_text(f"{type(error).__name__}: {error}", MAX_ERROR_CHARS)


def failure_values(attempts: int, error: str, now: dt.datetime) -> dict[str, object]:
    """The columns of an event whose `attempts`-th try has just failed with `error`."""
    values: dict[str, object] = {"outcome": "error", "error": error, "attempts": attempts, "processed_at": None}
    if attempts >= MAX_ATTEMPTS:
        values.update(next_attempt_at=None, parked_at=now)
    else:
        values.update(next_attempt_at=now + retry_delay(attempts), parked_at=None)
    return values


def log_failure(event_id: str, attempts: int, error: BaseException) -> None:
    """The trace on the first failure, one short line on each later one, a warning when parked.

    Call it from an `except` block: the first failure's line carries the current exception."""
    extra = {"event_id": event_id, "attempts": attempts}
    if attempts <= 1:
        logger.exception("processing a Stripe event failed; it is stored and will be retried", extra=extra)
    elif attempts >= MAX_ATTEMPTS:
        logger.warning("Stripe event parked after its last try; `ticketing events retry %s` tries it again",
                       event_id, extra=dict(extra, error=describe(error)[:200]))
    else:
        logger.warning("Stripe event failed again", extra=dict(extra, error=describe(error)[:200]))


async def record_failure(sessionmaker: async_sessionmaker[AsyncSession], event_id: str, error: BaseException,
                         *, now: dt.datetime | None = None) -> int:
    """Count one more failed try of a stored event and schedule the next (or park it); returns
    the number of failed tries so far, 0 when the event is not stored."""
    now = now or utcnow()
    async with sessionmaker.begin() as session:
        event = await session.get(StripeEvent, event_id, with_for_update=True)
        if event is None:
            return 0
        for name, value in failure_values((event.attempts or 0) + 1, describe(error), now).items():
            setattr(event, name, value)
        return event.attempts


def is_due(event: StripeEvent, now: dt.datetime) -> bool:
    """Whether the sweep may try a failed event now: not parked, its backoff over."""
    return event.parked_at is None and (event.next_attempt_at is None or event.next_attempt_at <= now)


@dataclasses.dataclass(frozen=True)
class EventRow:
    """One stored event as `ticketing events list` shows it (never the payload)."""

    id: str
    type: str
    received_at: dt.datetime
    outcome: str | None
    processed_at: dt.datetime | None
    attempts: int
    next_attempt_at: dt.datetime | None
    parked_at: dt.datetime | None
    error: str | None

    @property
    def state(self) -> str:
        if self.parked_at is not None:
            return "parked"
        if self.outcome == "error":
            return "retrying"
        if self.processed_at is None:
            return "pending"
        return "done"


async def list_events(session: AsyncSession, *, failed: bool = False, limit: int = 100) -> list[EventRow]:
    """Stored events newest first; with `failed`, only those whose processing failed (parked or not)."""
    query = select(StripeEvent.id, StripeEvent.type, StripeEvent.received_at, StripeEvent.outcome,
                   StripeEvent.processed_at, StripeEvent.attempts, StripeEvent.next_attempt_at,
                   StripeEvent.parked_at, StripeEvent.error)
    if failed:
        query = query.where(StripeEvent.outcome == "error", StripeEvent.processed_at.is_(None))
    rows = await session.execute(query.order_by(StripeEvent.received_at.desc(), StripeEvent.id).limit(limit))
    return [EventRow(*row) for row in rows]


async def release_for_retry(sessionmaker: async_sessionmaker[AsyncSession], event_id: str,
                            *, now: dt.datetime | None = None) -> StripeEvent:
    """Make a stored, unprocessed event due at once with a fresh count of tries (an operator's
    retry); NotFound for an unknown id, Conflict when it has been processed already."""
    now = now or utcnow()
    async with sessionmaker.begin() as session:
        event = await session.get(StripeEvent, event_id, with_for_update=True)
        if event is None:
            raise NotFound(f"no stored Stripe event {event_id!r}")
        if event.processed_at is not None:
            raise Conflict(f"Stripe event {event_id} was processed already (outcome {event.outcome})")
        event.attempts = 0
        event.next_attempt_at = now
        event.parked_at = None
        return event
