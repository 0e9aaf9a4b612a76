"""What each Stripe event type does to our orders. One function per type; all idempotent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, StripeEvent, Webinar
from ticketing.errors import NotFound
from ticketing.inputs import plain
from ticketing.jobs import enqueue
from ticketing.orders.service import (
    MAX_QUANTITY,
    adopt_checkout_session,
    lock_order,
    lock_order_by_payment_intent,
    lock_order_by_session,
    settle,
)
from ticketing.payments import invoices
from ticketing.webinars.service import get_webinar

logger = logging.getLogger(__name__)

CHECKOUT_TYPES = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
DISPUTE_TYPES = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
CHARGE_TYPES = ("charge.refunded", *DISPUTE_TYPES)

# A dispute's `status`: an inquiry asks questions and takes no money (it may become a
# chargeback later); a chargeback takes the money until it is won.
INQUIRY_OPEN = ("warning_needs_response", "warning_under_review")
INQUIRY_CLOSED = "warning_closed"
CHARGEBACK_OPEN = ("needs_response", "under_review")
HANDLED_TYPES = CHECKOUT_TYPES + CHARGE_TYPES + invoices.INVOICE_TYPES + invoices.CREDIT_NOTE_TYPES


def _id(value: Any) -> str | None:
    """A Stripe reference, which is an id string or, when expanded, an object with one."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def references(event_type: str, obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (checkout session id, payment intent id) an event's object points at."""
    if event_type in CHECKOUT_TYPES:
        return _id(obj.get("id")), _id(obj.get("payment_intent"))
    if event_type in CHARGE_TYPES:
        return None, _id(obj.get("payment_intent"))
    return None, None


def charge_id(event_type: str, obj: dict[str, Any]) -> str | None:
    """The charge a refund or dispute event is about."""
    if event_type == "charge.refunded":
        return _id(obj.get("id"))
    if event_type in DISPUTE_TYPES:
        return _id(obj.get("charge"))
    return None


async def process_event(session: AsyncSession, event: StripeEvent) -> str:
    """Apply one stored event; returns the outcome recorded on it."""
    obj = event.payload["data"]["object"]
    match event.type:
        case t if t in CHECKOUT_TYPES:
            return await _checkout_session(session, obj, event.type, _happened_at(event))
        case t if t in CHARGE_TYPES:
            return await _charge_event(session, obj, event)
        case t if t in invoices.INVOICE_TYPES:
            return await invoices.invoice_event(session, obj)
        case t if t in invoices.CREDIT_NOTE_TYPES:
            return await invoices.credit_note_event(session, obj)
        case _:
            return "ignored"


def _happened_at(event: StripeEvent) -> dt.datetime:
    """When Stripe says the event happened (its signed `created`), never later than now: a
    checkout that completed before sales closed stays in time however late we hear of it."""
    now = utcnow()
    return min(event.created, now) if event.created is not None else now


@dataclasses.dataclass
class _Found:
    """A checkout's order, with the webinar when it was loaded on the way and whether the
    order was made just now (then it has no tickets yet)."""

    order: Order
    webinar: Webinar | None = None
    created: bool = False


async def _order_for_checkout(session: AsyncSession, obj: dict[str, Any]) -> _Found | str:
    """The order a checkout session belongs to, made if needed; or why there is none."""
    session_id = _id(obj.get("id"))
    if session_id is None:
        return "malformed"
    metadata = obj.get("metadata") or {}
    order_id = _uuid(metadata.get("order_id") or obj.get("client_reference_id"))
    if order_id is not None:
        order = await lock_order(session, order_id)
        # Our id, but another session than the one it started: treat the session on its own.
        if order is not None and order.stripe_session_id in (None, session_id):
            order.stripe_session_id = session_id
            return _Found(order)
    webinar_id = _uuid(metadata.get("webinar_id"))
    if webinar_id is None:
        order = await lock_order_by_session(session, session_id)
        return _Found(order) if order is not None else "unknown_webinar"
    try:
        webinar = await get_webinar(session, webinar_id)
    except NotFound:
        return "unknown_webinar"
    try:
        quantity = int(metadata.get("quantity", 1))
    except (TypeError, ValueError):
        quantity = 0
    # Checkout never sells more than MAX_QUANTITY seats at once; anything else is not ours to fulfil.
    valid = 1 <= quantity <= MAX_QUANTITY
    order, created = await adopt_checkout_session(session, session_id, webinar, quantity if valid else 1)
    if not valid:
        order.problem = f"metadata.quantity is not a whole number from 1 to {MAX_QUANTITY}: {metadata.get('quantity')!r}"
        order.status = OrderStatus.FLAGGED
    return _Found(order, webinar, created)


def _record_checkout_facts(order: Order, obj: dict[str, Any], event_type: str, now: dt.datetime) -> bool:
    """Set what the session tells; True when it names a payment intent the order lacked."""
    details = obj.get("customer_details") or {}
    email = details.get("email") or obj.get("customer_email")
    if isinstance(email, str) and plain(email).strip() and not order.email:
        order.email = plain(email).strip()[:320]
    name = details.get("name")
    if isinstance(name, str) and plain(name).strip() and not order.buyer_name:
        order.buyer_name = plain(name).strip()[:200]
    if isinstance(obj.get("amount_total"), int):
        order.amount_total = obj["amount_total"]
    details = obj.get("total_details")
    tax = details.get("amount_tax") if isinstance(details, dict) else None
    if isinstance(tax, int) and not isinstance(tax, bool) and tax >= 0:
        order.amount_tax = tax
    # What Stripe says was charged; anything but a currency code cannot match the price.
    currency = obj.get("currency")
    order.currency = currency.lower() if isinstance(currency, str) and len(currency) == 3 else None
    payment_intent = _id(obj.get("payment_intent"))
    learned_intent = bool(payment_intent) and not order.stripe_payment_intent_id
    if learned_intent:
        order.stripe_payment_intent_id = payment_intent
    if isinstance(obj.get("livemode"), bool):
        order.livemode = obj["livemode"]
    invoices.record_invoice(order, obj.get("invoice"))

    paid = obj.get("payment_status") in ("paid", "no_payment_required")
    if event_type == "checkout.session.completed":
        order.completed_at = order.completed_at or now
        if paid:
            order.paid_at = order.paid_at or now
    elif event_type == "checkout.session.async_payment_succeeded":
        order.completed_at = order.completed_at or now
        order.paid_at = order.paid_at or now
    elif event_type == "checkout.session.async_payment_failed":
        order.payment_failed_at = order.payment_failed_at or now
    elif event_type == "checkout.session.expired":
        order.expired_at = order.expired_at or now
    return learned_intent


async def _checkout_session(session: AsyncSession, obj: dict[str, Any], event_type: str, at: dt.datetime) -> str:
    found = await _order_for_checkout(session, obj)
    if isinstance(found, str):
        logger.warning("checkout event not matched", extra={"outcome": found, "session": _id(obj.get("id"))})
        return found
    order = found.order
    if _record_checkout_facts(order, obj, event_type, at):
        with session.no_autoflush:
            await _replay_charge_events(session, order)
    status = await settle(session, order, webinar=found.webinar, tickets=[] if found.created else None)
    await invoices.fetch_if_needed(session, order)
    return f"order_{status.value}"


async def _replay_charge_events(session: AsyncSession, order: Order) -> None:
    """Apply refund and dispute events that arrived before we knew this order's payment intent."""
    early = await session.scalars(
        select(StripeEvent).where(
            StripeEvent.payment_intent_id == order.stripe_payment_intent_id,
            StripeEvent.outcome == "unmatched",
        ).order_by(StripeEvent.created, StripeEvent.received_at)
    )
    for event in early:
        await _record_charge_facts_and_tell(session, order, event.type, event.payload["data"]["object"])
        event.outcome = "replayed"


async def _order_for_charge(session: AsyncSession, obj: dict[str, Any], known_intent: str | None) -> Order | None:
    # `known_intent`: the stored event's, learnt from its charge when the object names none.
    payment_intent = _id(obj.get("payment_intent")) or known_intent
    if payment_intent:
        order = await lock_order_by_payment_intent(session, payment_intent)
        if order is not None:
            return order
    order_id = _uuid((obj.get("metadata") or {}).get("order_id"))
    if order_id is not None:
        order = await lock_order(session, order_id)
        if order is not None and payment_intent and not order.stripe_payment_intent_id:
            order.stripe_payment_intent_id = payment_intent
        return order
    return None


async def _record_charge_facts_and_tell(session: AsyncSession, order: Order, event_type: str,
                                        obj: dict[str, Any]) -> None:
    """Record the event's facts; when they decide a chargeback, queue the organizer's mail (once per order)."""
    decided = order.dispute_won_at or order.dispute_lost_at
    _record_charge_facts(order, event_type, obj, utcnow())
    if decided is None and (order.dispute_won_at or order.dispute_lost_at):
        await enqueue(session, "mail.dispute_closed", {"order_id": str(order.id)},
                      dedupe_key=f"mail.dispute_closed:{order.id}")


def _record_charge_facts(order: Order, event_type: str, obj: dict[str, Any], now: dt.datetime) -> None:
    if event_type == "charge.refunded":
        refunded = obj.get("amount_refunded")
        if isinstance(refunded, int) and refunded > order.amount_refunded:
            order.amount_refunded = refunded
        amount = obj.get("amount")
        full = obj.get("refunded") is True or (isinstance(amount, int) and isinstance(refunded, int) and refunded >= amount)
        if full:
            order.refunded_at = order.refunded_at or now
    elif event_type in DISPUTE_TYPES:
        _record_dispute(order, event_type, obj.get("status"), now)


def _record_dispute(order: Order, event_type: str, status: Any, now: dt.datetime) -> None:
    """What a dispute's status says, as facts that only ever get set, so the events of one
    dispute (created, updated, closed) end in the same state in whatever order they come."""
    if status in INQUIRY_OPEN:
        order.inquiry_opened_at = order.inquiry_opened_at or now
    elif status == INQUIRY_CLOSED:
        order.inquiry_opened_at = order.inquiry_opened_at or now
        order.inquiry_closed_at = order.inquiry_closed_at or now
    elif status in CHARGEBACK_OPEN or status in ("won", "lost"):
        order.disputed_at = order.disputed_at or now
        if status == "won":
            order.dispute_won_at = order.dispute_won_at or now
        elif status == "lost":
            order.dispute_lost_at = order.dispute_lost_at or now
    elif event_type == "charge.dispute.created":
        # A status this code does not know: a new dispute counts as a chargeback, as it always has.
        logger.warning("dispute of an unknown status taken as a chargeback", extra={"status": str(status)[:40]})
        order.disputed_at = order.disputed_at or now


async def _charge_event(session: AsyncSession, obj: dict[str, Any], event: StripeEvent) -> str:
    order = await _order_for_charge(session, obj, event.payment_intent_id)
    if order is None:
        # Kept as "unmatched"; replayed when the checkout event tells us the payment intent, or
        # (none named) when the worker has looked the charge up (payments/reconcile.py).
        logger.info("Stripe charge event matches no order yet", extra={
            "event_id": event.id, "type": event.type, "payment_intent": event.payment_intent_id,
            "charge": charge_id(event.type, obj)})
        return "unmatched"
    await _record_charge_facts_and_tell(session, order, event.type, obj)
    status = await settle(session, order)
    return f"order_{status.value}"
