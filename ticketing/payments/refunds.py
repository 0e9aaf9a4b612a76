"""Refunds: the `payment.refund` job that returns a buyer's money through Stripe's Refund API.

A refund is asked for once per order (oversold, cancelled webinar) or once per ticket (an
organizer's revoke with refund). The job sends Stripe an idempotency key derived from that
order or ticket, so a crash between Stripe's answer and our commit, and the retry after it,
refunds once. What was refunded is kept in the `refunds` table, keyed by Stripe's refund id,
so the order's `amount_refunded` never counts one refund twice.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import Order, OrderLine, Refund, Ticket
from ticketing.jobs import enqueue
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.orders.service import lock_order, settle
from ticketing.payments.invoices import credit_refund
from ticketing.tickets.service import order_tickets

logger = logging.getLogger(__name__)

KIND = "payment.refund"


def paid_amount(order: Order) -> int:
    """What the buyer paid for the order, as far as we know."""
    if order.amount_total is not None:
        return order.amount_total
    return order.expected_amount or 0


async def ticket_share(session: AsyncSession, order: Order, ticket: Ticket | None) -> int:
    """One seat's part of what was paid: the unit price of its ticket type in an order with
    lines (with its share of any tax Stripe Tax added on top), else an even share (the order's
    remainder goes with the last refund)."""
    unit = None if ticket is None else await session.scalar(select(OrderLine.unit_amount).where(
        OrderLine.order_id == order.id, OrderLine.ticket_type_id == ticket.ticket_type_id))
    if unit is None:
        return paid_amount(order) // order.quantity
    expected = order.expected_amount
    if order.amount_tax and expected and paid_amount(order) > expected:
        return unit * paid_amount(order) // expected  # the seat's tax, added on top, goes back too
    return unit


def idempotency_key(order_id: uuid.UUID, ticket_id: uuid.UUID | None) -> str:
    return f"refund-ticket-{ticket_id}" if ticket_id else f"refund-{order_id}"


async def request_ticket_refund(session: AsyncSession, order: Order, ticket: Ticket, reason: str) -> bool:
    """Queue the refund of one ticket's share, once per ticket; False when nothing can be refunded."""
    if order.paid_at is None or order.refunded_at is not None or await ticket_share(session, order, ticket) <= 0:
        return False
    if order.amount_refunded >= paid_amount(order):
        return False
    await enqueue(session, KIND, {"order_id": str(order.id), "ticket_id": str(ticket.id), "reason": reason},
                  dedupe_key=f"{KIND}:ticket:{ticket.id}")
    return True


def _payload_id(payload: dict[str, Any], name: str, *, required: bool) -> uuid.UUID | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise PermanentError(f"payload {name} is not an id: {value!r}") from None


@job(KIND, max_attempts=15)
async def refund(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Refund an order (or one ticket's share of it), record the refund, queue the buyer's notice."""
    order_id = _payload_id(payload, "order_id", required=True)
    ticket_id = _payload_id(payload, "ticket_id", required=False)
    reason = str(payload.get("reason") or "requested")[:40]
    async with ctx.sessionmaker() as session:
        order = await session.get(Order, order_id)
        if order is None:
            raise PermanentError(f"no order {order_id}")
        ticket = await session.get(Ticket, ticket_id) if ticket_id else None
        amount = await ticket_share(session, order, ticket) if ticket_id else None
        paid = paid_amount(order)
        nothing_left = order.refunded_at is not None or paid <= 0 or order.amount_refunded >= paid
        currency = (order.currency or "").lower()
        payment_intent = order.stripe_payment_intent_id
        webinar_id = order.webinar_id

    refunded: tuple[str, int, str, bool] | None = None  # (refund id, amount, currency, test)
    fully_refunded = False
    if nothing_left:
        logger.info("nothing left to refund", extra={"order_id": str(order_id)})
    elif ctx.stripe is None:
        # Dev mode has no Stripe account: the refund is a test refund, recorded here only.
        key = idempotency_key(order_id, ticket_id)
        refunded = ("re_test_" + hashlib.sha256(key.encode()).hexdigest()[:24], amount, currency, True)
    else:
        if not payment_intent:
            raise PermanentError(f"order {order_id} has no Stripe payment intent to refund")
        params: dict[str, Any] = {
            "payment_intent": payment_intent,
            "reason": "requested_by_customer",
            "metadata": {"order_id": str(order_id), "webinar_id": str(webinar_id), "reason": reason},
        }
        if ticket_id is not None:
            params["amount"] = amount
            params["metadata"]["ticket_id"] = str(ticket_id)
        try:
            made = await ctx.stripe.v1.refunds.create_async(
                params, {"idempotency_key": idempotency_key(order_id, ticket_id)})
        except stripe.StripeError as error:
            if getattr(error, "code", None) == "charge_already_refunded":
                fully_refunded = True  # refunded elsewhere (e.g. the Dashboard): nothing more to do
            else:
                _raise_for(error, order_id)
        else:
            refunded = (made.id, made.amount, (made.currency or currency).lower(), False)

    await _record(ctx, order_id, ticket_id, reason, refunded, fully_refunded=fully_refunded)


def _raise_for(error: stripe.StripeError, order_id: uuid.UUID) -> None:
    """Retry what may pass later (Stripe down, slow, rate limited); park what never will."""
    status = error.http_status
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)) or status is None or status >= 500 \
            or status in (409, 429):
        logger.warning("Stripe refund failed; will retry",
                       extra={"order_id": str(order_id), "error": type(error).__name__, "http_status": status})
        raise error
    raise PermanentError(f"Stripe refused the refund ({status}): {error.user_message or type(error).__name__}") from error


async def _record(ctx: JobContext, order_id: uuid.UUID, ticket_id: uuid.UUID | None, reason: str,
                  refunded: tuple[str, int, str, bool] | None, *, fully_refunded: bool) -> None:
    async with ctx.sessionmaker.begin() as session:
        order = await lock_order(session, order_id)
        if order is None:
            raise PermanentError(f"no order {order_id}")
        paid = paid_amount(order)
        if refunded is not None:
            refund_id, amount, currency, test = refunded
            if amount is None:  # a test refund of whatever is left
                amount = max(paid - order.amount_refunded, 0)
            await session.execute(
                insert(session, Refund).values(
                    id=refund_id, order_id=order_id, ticket_id=ticket_id, amount=amount, currency=currency or "",
                    reason=reason, test=test, created_at=utcnow(),
                ).on_conflict_do_nothing(index_elements=["id"])
            )
            total = await session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(Refund.order_id == order_id))
            order.amount_refunded = max(order.amount_refunded, int(total))
            await credit_refund(session, order, refund_id, amount, test=test)
            fully_refunded = fully_refunded or ticket_id is None
            logger.info("refund recorded", extra={"order_id": str(order_id), "refund_id": refund_id, "amount": amount,
                                                  "test": test})
        if fully_refunded or (paid > 0 and order.amount_refunded >= paid):
            order.amount_refunded = max(order.amount_refunded, paid)
            order.refunded_at = order.refunded_at or utcnow()
        await settle(session, order)
        # Buyers with tickets heard of the revocation already ("mail.revoked"); one who never got
        # a ticket (oversold, flagged) learns of the refund here, once.
        if not await order_tickets(session, order_id):
            await enqueue(session, "mail.order_refunded", {"order_id": str(order_id), "reason": reason},
                          dedupe_key=f"mail.order_refunded:{order_id}")
