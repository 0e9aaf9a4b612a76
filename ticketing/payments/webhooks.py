"""Receiving a Stripe webhook: verify, store durably, then process, each event once."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import StripeEvent
from ticketing.errors import Unavailable
from ticketing.payments.events import process_event, references
from ticketing.payments.signature import verify
from ticketing.payments.stripe_api import API_VERSION
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

# The database cannot be reached or is overloaded: answer 503 so Stripe delivers again.
DATABASE_DOWN = (OperationalError, DBAPIError, OSError, PoolTimeout, TimeoutError)


async def receive_webhook(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, body: bytes, signature: str | None
) -> tuple[str, str]:
    """Handle one delivery; returns (event type, outcome).

    Raises BadSignature or BadPayload (nothing stored) and Unavailable when the database
    cannot be reached (Stripe retries; a stored event is then processed on the retry).
    """
    event = verify(body, signature, settings.stripe_webhook_secrets)
    try:
        await store_event(sessionmaker, event)
        outcome = await process_stored_event(sessionmaker, settings, event["id"])
    except DATABASE_DOWN as error:
        logger.warning("database unavailable for webhook", extra={"event_id": event["id"], "error": type(error).__name__})
        raise Unavailable("the database is unavailable; Stripe will retry") from error
    return event["type"], outcome


async def store_event(sessionmaker: async_sessionmaker[AsyncSession], event: dict[str, Any]) -> bool:
    """Insert the event unless its id is stored already; True when this call stored it."""
    obj = event["data"]["object"]
    checkout_session_id, payment_intent_id = references(event["type"], obj)
    created = event.get("created")
    livemode = event.get("livemode")
    async with sessionmaker.begin() as session:
        result = await session.execute(
            insert(session, StripeEvent)
            .values(
                id=event["id"][:255],
                type=event["type"][:100],
                api_version=str(event.get("api_version"))[:40] if event.get("api_version") else None,
                livemode=livemode if isinstance(livemode, bool) else False,
                created=_timestamp(created),
                payload=event,
                checkout_session_id=checkout_session_id,
                payment_intent_id=payment_intent_id,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
    return result.rowcount == 1


async def process_stored_event(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, event_id: str) -> str:
    """Process a stored event unless it has been already; returns its outcome.

    The event's row lock (PostgreSQL) or the write lock (SQLite) means two deliveries of the
    same event in two processes run this one after the other; the second finds it done.
    """
    try:
        async with sessionmaker.begin() as session:
            event = await session.scalar(select(StripeEvent).where(StripeEvent.id == event_id).with_for_update())
            if event is None:
                return "missing"
            if event.processed_at is not None:
                return "duplicate"
            if event.livemode != settings.stripe_livemode:
                logger.warning("event livemode does not match the configured Stripe key; recorded, not acted on",
                               extra={"event_id": event.id, "livemode": event.livemode})
                outcome = "livemode_mismatch"
            else:
                if event.api_version and event.api_version != API_VERSION:
                    logger.warning("event API version differs from the one this code reads",
                                   extra={"event_id": event.id, "api_version": event.api_version, "expected": API_VERSION})
                outcome = await process_event(session, event)
            event.processed_at = utcnow()
            event.outcome = outcome
            event.error = None
            return outcome
    except DATABASE_DOWN:
        raise
    except Exception as error:
        # A bug, not an outage: keep the event unprocessed with the reason, answer 200 so
        # Stripe stops retrying, and let the worker's sweep try it again after a fix.
        logger.exception("processing a Stripe event failed", extra={"event_id": event_id})
        async with sessionmaker.begin() as session:
            event = await session.get(StripeEvent, event_id)
            if event is not None:
                event.error = f"{type(error).__name__}: {error}"[:2000]
                event.outcome = "error"
        return "error"


def _timestamp(value: Any) -> dt.datetime | None:
    """Stripe's `created` (Unix seconds) as a time; None when absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
