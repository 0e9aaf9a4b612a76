"""Receiving a Stripe webhook: verify, store durably, then process, each event once."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import is_unavailable, utcnow
from ticketing.db.dialect import insert
from ticketing.db.engine import engine_of
from ticketing.db.models import StripeEvent
from ticketing.db.retry import retry_dead_connection
from ticketing.errors import Unavailable
from ticketing.payments.events import process_event, references
from ticketing.payments.fulfilment import fulfil_plain_checkout
from ticketing.payments.retries import describe, failure_values, is_due, log_failure, record_failure
from ticketing.payments.sanitise import clean_text, storable_row
from ticketing.payments.signature import verify
from ticketing.payments.versions import check_version
from ticketing.settings import Settings

logger = logging.getLogger(__name__)


async def receive_webhook(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, body: bytes, signature: str | None
) -> tuple[str, str]:
    """Handle one delivery; returns (event type, outcome).

    Raises BadSignature or BadPayload (nothing stored) and Unavailable when the database
    cannot be reached or the event could not be stored for any other reason (nothing stored
    either: Stripe retries). A stored event is never answered with an error.
    """
    event = verify(body, signature, settings.stripe_webhook_secrets)
    try:
        outcome = await retry_dead_connection(lambda: _process_and_store(sessionmaker, settings, event))
    except Exception as error:
        if is_unavailable(error):
            logger.warning("database unavailable for webhook",
                           extra={"event_id": clean_text(str(event["id"]), 255), "error": type(error).__name__})
        else:
            logger.exception("a verified Stripe event could not be stored; Stripe will retry",
                             extra={"event_id": clean_text(str(event["id"]), 255)})
        raise Unavailable("the database is unavailable; Stripe will retry") from error
    return event["type"], outcome


class _StoredBefore(Exception):
    """The event's id is stored already: undo this delivery's work and look at the stored one."""


async def _process_and_store(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                             event: dict[str, Any]) -> str:
    """Process a new event and store it, processed, in one transaction.

    The event row is written last, with ON CONFLICT DO NOTHING on its id: a delivery that
    finds the id taken (a redelivery, or the same event racing in another process, which
    waits for the first to commit) rolls its work back and defers to the stored event.
    One transaction per delivery keeps a flash sale cheap; a failure that is not the
    database's still keeps the event, unprocessed, for the worker's sweep.
    """
    row = _event_row(event)
    # A new paid checkout of a webinar on sale, the bulk of a flash sale, takes the short way.
    outcome = await fulfil_plain_checkout(engine_of(sessionmaker), settings, event, row, now=row["received_at"])
    if outcome is not None:
        return outcome
    try:
        async with sessionmaker.begin() as session:
            outcome = await _apply(session, settings, StripeEvent(**row))
            values = dict(row, outcome=outcome, processed_at=None if outcome in UNSETTLED else utcnow())
            result = await session.execute(
                insert(session, StripeEvent).values(**values).on_conflict_do_nothing(index_elements=["id"])
            )
            if result.rowcount != 1:
                raise _StoredBefore
            return outcome
    except _StoredBefore:
        return await process_stored_event(sessionmaker, settings, event["id"])
    except Exception as error:
        if is_unavailable(error):
            raise
        log_failure(clean_text(str(event["id"]), 255), 1, error)
        await store_event(sessionmaker, event, error=describe(error))
        return "error"


# Outcomes that leave an event to be tried again by the sweep: processing failed, or a refund
# or dispute came before the order it belongs to was known.
UNSETTLED = ("error", "unmatched")


async def _apply(session: AsyncSession, settings: Settings, event: StripeEvent) -> str:
    """Act on an event unless its mode is not ours; returns the outcome to record."""
    if event.livemode != settings.stripe_livemode:
        logger.warning("event livemode does not match the configured Stripe key; recorded, not acted on",
                       extra={"event_id": event.id, "livemode": event.livemode})
        return "livemode_mismatch"
    check_version(event.api_version)
    return await process_event(session, event)


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    checkout_session_id, payment_intent_id = references(event["type"], event["data"]["object"])
    livemode = event.get("livemode")
    return {
        "id": event["id"][:255],
        "type": event["type"][:100],
        "api_version": str(event.get("api_version"))[:40] if event.get("api_version") else None,
        "livemode": livemode if isinstance(livemode, bool) else False,
        "created": _timestamp(event.get("created")),
        "payload": event,
        "checkout_session_id": checkout_session_id,
        "payment_intent_id": payment_intent_id,
        "received_at": utcnow(),
    }


async def store_event(sessionmaker: async_sessionmaker[AsyncSession], event: dict[str, Any], *,
                      error: str | None = None) -> bool:
    """Insert the event, unprocessed, unless its id is stored already; True when this call stored it.

    The row is made storable first (payments/sanitise.py): a verified event is kept even when a
    value in it is one the database refuses. With `error` (its first processing failed) the
    event counts one failed try and is due again after the first backoff.
    """
    values = _event_row(event)
    if error is not None:
        values.update(failure_values(1, error, utcnow()))
    values = storable_row(values)
    async with sessionmaker.begin() as session:
        result = await session.execute(
            insert(session, StripeEvent).values(**values).on_conflict_do_nothing(index_elements=["id"])
        )
    return result.rowcount == 1


async def process_stored_event(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, event_id: str,
                               *, due_by: dt.datetime | None = None) -> str:
    """Process a stored event unless it has been already; returns its outcome.

    The event's row lock (PostgreSQL) or the write lock (SQLite) means two deliveries of the
    same event in two processes run this one after the other; the second finds it done.
    With `due_by` (the sweep), an event whose processing failed is tried only when its
    backoff is over by then and it is not parked ("not_due" otherwise).
    """
    try:
        async with sessionmaker.begin() as session:
            event = await session.scalar(select(StripeEvent).where(StripeEvent.id == event_id).with_for_update())
            if event is None:
                return "missing"
            if event.processed_at is not None:
                return "duplicate"
            if due_by is not None and event.outcome == "error" and not is_due(event, due_by):
                return "not_due"
            outcome = await _apply(session, settings, event)
            event.processed_at = None if outcome in UNSETTLED else utcnow()
            event.outcome = outcome
            event.error = None
            event.next_attempt_at = None
            event.parked_at = None
            return outcome
    except Exception as error:
        if is_unavailable(error):
            raise
        # A bug, not an outage: keep the event unprocessed with the reason, answer 200 so
        # Stripe stops retrying, and let the worker's sweep try it again, with backoff.
        attempts = await record_failure(sessionmaker, event_id, error, now=due_by)
        log_failure(event_id, attempts, error)
        return "error"


def _timestamp(value: Any) -> dt.datetime | None:
    """Stripe's `created` (Unix seconds) as a time; None when absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
