"""Recovering missed webhooks: list Stripe's events through its API and feed the ones we never
stored through the webhook path; retry stored events whose processing failed.

Stripe retries a webhook for three days; an event that never got through (the service was
down longer, or the endpoint was misconfigured) is still in Stripe's event list for 30 days.
A cursor remembers the newest event seen through the list, and each pass reads from a little
before it, so an outage of any length is caught up on the next pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import stripe
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import Order, StripeEvent, SyncCursor
from ticketing.jobs.registry import JobContext, periodic
from ticketing.payments.events import CHARGE_TYPES, HANDLED_TYPES, charge_id
from ticketing.payments.webhooks import process_stored_event, store_event
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

CURSOR = "stripe.events"
# Read a little before the cursor: events of the same second, or listed a moment late.
OVERLAP = dt.timedelta(minutes=10)
# Where the first pass starts: Stripe's webhook retry window.
FIRST_LOOKBACK = dt.timedelta(days=3)
# Stripe keeps events for 30 days.
MAX_LOOKBACK = dt.timedelta(days=30)
# An unprocessed stored event younger than this may still be in the hands of its webhook request.
RETRY_AFTER = dt.timedelta(minutes=1)
# Events that keep failing are retried this long after they arrived, then left to an operator.
RETRY_FOR = dt.timedelta(days=3)
PAGE_SIZE = 100


@dataclasses.dataclass
class Reconciled:
    """What one reconciliation pass did."""

    listed: int = 0
    stored: int = 0
    processed: int = 0
    retried: int = 0


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, client: stripe.StripeClient,
    *, since: dt.datetime | None = None, now: dt.datetime | None = None,
) -> Reconciled:
    """List Stripe events of the handled types created since `since` (default: a little before
    the cursor) and store and process the ones not stored yet. Safe to run in many workers."""
    now = now or utcnow()
    if since is None:
        since = await _cursor_start(sessionmaker, now)
    since = max(since, now - MAX_LOOKBACK)
    result = Reconciled()
    newest = 0
    page = await client.v1.events.list_async(
        {"types": list(HANDLED_TYPES), "created": {"gte": int(since.timestamp())}, "limit": PAGE_SIZE})
    while True:
        for listed in page.data:
            event = listed.to_dict(for_json=True)
            result.listed += 1
            newest = max(newest, int(event.get("created") or 0))
            if await store_event(sessionmaker, event):
                result.stored += 1
                logger.info("missed Stripe event recovered", extra={"event_id": event["id"], "type": event["type"]})
            outcome = await process_stored_event(sessionmaker, settings, event["id"], due_by=now)
            if outcome not in ("duplicate", "missing", "not_due"):
                result.processed += 1
        if not page.has_more or not page.data:
            break
        page = await client.v1.events.list_async(
            {"types": list(HANDLED_TYPES), "created": {"gte": int(since.timestamp())}, "limit": PAGE_SIZE,
             "starting_after": page.data[-1].id})
    if newest:
        await _advance_cursor(sessionmaker, newest, now)
    return result


async def retry_unprocessed(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                            *, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Process again the stored events left unprocessed: an error whose backoff is over (not
    parked; payments/retries.py), a crash before processing, or a refund or dispute whose
    order has since learned its payment intent."""
    now = now or utcnow()
    failed = StripeEvent.outcome == "error"
    async with sessionmaker() as session:
        stale = list(await session.scalars(
            select(StripeEvent.id).where(
                StripeEvent.processed_at.is_(None),
                StripeEvent.parked_at.is_(None),
                or_(
                    # Failed: when its backoff is over, however old (tries are bounded instead).
                    and_(failed, or_(StripeEvent.next_attempt_at <= now,
                                     and_(StripeEvent.next_attempt_at.is_(None),
                                          StripeEvent.received_at < now - RETRY_AFTER))),
                    and_(
                        StripeEvent.outcome.is_distinct_from("error"),
                        StripeEvent.received_at < now - RETRY_AFTER,
                        StripeEvent.received_at > now - RETRY_FOR,
                        # A refund or dispute of a payment that is not (yet) one of ours waits until an
                        # order names its payment intent; charges of the account's other sales never do.
                        or_(StripeEvent.outcome.is_distinct_from("unmatched"),
                            StripeEvent.payment_intent_id.in_(select(Order.stripe_payment_intent_id))),
                    ),
                ),
            ).order_by(StripeEvent.created, StripeEvent.received_at).limit(limit)
        ))
    done = 0
    for event_id in stale:
        outcome = await process_stored_event(sessionmaker, settings, event_id, due_by=now)
        if outcome not in ("duplicate", "missing", "error", "not_due"):
            done += 1
    if stale:
        logger.info("stored Stripe events retried", extra={"events": len(stale), "processed": done})
    return done


async def resolve_charges(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                          client: stripe.StripeClient, *, now: dt.datetime | None = None, limit: int = 50) -> int:
    """Refund and dispute events that name no payment intent (Stripe's own dispute objects
    often do not) and so match no order: ask Stripe for their charge, whose payment intent
    is the order's, and process them again. Returns how many found their order.

    A charge without a payment intent was not made by a Checkout Session: not ours, and
    recorded so (`not_ours`). Stripe errors end the pass; the next sweep tries again.
    """
    now = now or utcnow()
    async with sessionmaker() as session:
        waiting = list(await session.execute(
            select(StripeEvent.id, StripeEvent.type, StripeEvent.payload).where(
                StripeEvent.outcome == "unmatched", StripeEvent.processed_at.is_(None),
                StripeEvent.payment_intent_id.is_(None), StripeEvent.type.in_(CHARGE_TYPES),
                StripeEvent.received_at > now - RETRY_FOR,
            ).order_by(StripeEvent.received_at).limit(limit)))
    matched = 0
    for event_id, event_type, payload in waiting:
        charge = charge_id(event_type, payload["data"]["object"])
        intent = None
        if charge is not None:
            try:
                found = await client.v1.charges.retrieve_async(charge)
            except stripe.InvalidRequestError:
                found = None  # no such charge in this account
            intent = getattr(found, "payment_intent", None)
            intent = getattr(intent, "id", intent)
        async with sessionmaker.begin() as session:
            if isinstance(intent, str) and intent:
                await session.execute(update(StripeEvent).where(StripeEvent.id == event_id)
                                      .values(payment_intent_id=intent[:255]))
            else:
                await session.execute(update(StripeEvent).where(StripeEvent.id == event_id,
                                                                StripeEvent.processed_at.is_(None))
                                      .values(outcome="not_ours", processed_at=now))
                logger.info("Stripe charge event is not of a Checkout payment; not ours",
                            extra={"event_id": event_id, "charge": charge})
                continue
        outcome = await process_stored_event(sessionmaker, settings, event_id)
        if outcome == "unmatched":
            logger.warning("Stripe charge event still matches no order after its charge was looked up",
                           extra={"event_id": event_id, "charge": charge, "payment_intent": intent})
        else:
            matched += 1
    return matched


async def _cursor_start(sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime) -> dt.datetime:
    async with sessionmaker() as session:
        position = await session.scalar(select(SyncCursor.position).where(SyncCursor.name == CURSOR))
    if position is None:
        return now - FIRST_LOOKBACK
    return dt.datetime.fromtimestamp(position, dt.UTC) - OVERLAP


async def _advance_cursor(sessionmaker: async_sessionmaker[AsyncSession], position: int, now: dt.datetime) -> None:
    """Move the cursor forward only (two workers may finish their passes in either order)."""
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(session, SyncCursor).values(name=CURSOR, position=position, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        await session.execute(
            update(SyncCursor).where(SyncCursor.name == CURSOR, SyncCursor.position < position)
            .values(position=position, updated_at=now)
        )


@periodic("stripe.reconcile")
async def reconcile_periodically(ctx: JobContext, *, now: dt.datetime | None = None) -> None:
    """Every sweep: retry failed stored events, then (with a Stripe key) pull missed ones."""
    await retry_unprocessed(ctx.sessionmaker, ctx.settings, now=now)
    if ctx.stripe is None:
        return
    try:
        await resolve_charges(ctx.sessionmaker, ctx.settings, ctx.stripe, now=now)
        result = await reconcile(ctx.sessionmaker, ctx.settings, ctx.stripe, now=now)
    except stripe.StripeError as error:
        # Stripe down or slow: the next sweep reads from the same cursor.
        logger.warning("listing Stripe events failed; will try at the next sweep",
                       extra={"error": type(error).__name__, "http_status": error.http_status})
        return
    if result.stored:
        logger.info("Stripe events reconciled", extra=dataclasses.asdict(result))
