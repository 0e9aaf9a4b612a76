"""Orders: starting a checkout, recording what Stripe says, and settling the order's tickets.

An order keeps facts (completed, paid, refunded, disputed, …), each set once and never
unset. `settle` derives the status and the tickets from the facts alone, so the end state
is the same whatever order Stripe's events arrive in and however often.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import (
    Order,
    OrderLine,
    OrderStatus,
    PromoCode,
    Ticket,
    TicketStatus,
    TicketType,
    WaitlistEntry,
    WaitlistOutcome,
    Webinar,
    WebinarStatus,
)
from ticketing.errors import N_, Conflict, Invalid, NotFound, SoldOut
from ticketing.jobs import enqueue
from ticketing.orders import promo_codes, ticket_types
from ticketing.tickets.capacity import take_seats
from ticketing.tickets.service import issue_tickets, order_tickets, revoke_tickets
from ticketing.webinars.minimums import describe as describe_amount
from ticketing.webinars.minimums import minimum_charge
from ticketing.webinars.sales import is_on_sale, refuse_if_closed
from ticketing.webinars.service import get_webinar, seats_left, types_waited_for, waitlist_waiting

logger = logging.getLogger(__name__)

MAX_QUANTITY = 50


def check_quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise Invalid(f"quantity must be a whole number from 1 to {MAX_QUANTITY}", field="quantity")
    return quantity


def check_on_sale(webinar: Webinar, quantity: int, *, now: dt.datetime) -> None:
    """Raise Conflict unless `quantity` seats of `webinar` can be bought now (cancelled,
    ended, sales closed, or too few seats left)."""
    refuse_if_closed(webinar, now)
    left = seats_left(webinar)
    if left is not None and left < quantity:
        if left == 0:
            raise SoldOut("this webinar is sold out")
        raise SoldOut(f"only {left} seat is left" if left == 1 else f"only {left} seats are left", left=left)


def _new_order(webinar: Webinar, quantity: int) -> dict[str, object]:
    """A pending order's columns: the price is fixed when the order starts."""
    return {
        "id": uuid.uuid4(),
        "webinar_id": webinar.id,
        "quantity": quantity,
        "expected_amount": webinar.price_amount * quantity,
        "currency": webinar.currency,
        "amount_refunded": 0,
        "status": OrderStatus.PENDING,
    }


async def start_order(session: AsyncSession, webinar_id: uuid.UUID, quantity: int, email: str | None, *,
                      browser_key: str | None = None,
                      lines: dict[uuid.UUID, int] | None = None,
                      code: str | None = None, offer: bool = False) -> tuple[Order, Webinar]:
    """A pending order for a checkout about to be created; raises Conflict when not on sale.

    `lines` are seats by ticket type; without them the order is `quantity` seats of the
    webinar's default type. `browser_key` is the buying browser's public key: the order page
    code is sealed to it once the order is paid, so that browser's success page can link the
    order page. With a promo `code` the seats are priced by it and one use of it is reserved.
    An `offer` (a waitlist offer's checkout) is for seats held for it already: seats left do not
    count, and nor does the waitlist, which keeps every other checkout out while people wait."""
    webinar = await get_webinar(session, webinar_id)
    now = utcnow()
    if not offer and await waitlist_waiting(session, webinar):
        refuse_if_closed(webinar, now)
        raise SoldOut("this webinar is sold out; join its waitlist on the webinar's page")
    promo = await promo_codes.find_code(session, webinar, code, now=now) if code else None
    if lines is None:
        quantity = check_quantity(quantity)
        if not webinar.typed and promo is None:
            check_on_sale(webinar, quantity, now=utcnow())
            order = Order(**_new_order(webinar, quantity), email=email, browser_key=browser_key)
            session.add(order)
            await session.flush()
            return order, webinar
        lines = {(await ticket_types.default_type(session, webinar.id)).id: quantity}
    if not offer and (waited := await types_waited_for(session, webinar)) and waited & lines.keys():
        refuse_if_closed(webinar, now)
        raise SoldOut("this ticket type is sold out; join its waitlist on the webinar's page")
    chosen = await _checked_lines(session, webinar, lines, now=now, promo=promo, held=offer)
    quantity = sum(count for _, count in chosen)
    order = Order(**_new_order(webinar, quantity), email=email, browser_key=browser_key)
    order.expected_amount = sum(promo_codes.unit_price(promo, kind) * count for kind, count in chosen)
    session.add(order)
    await session.flush()
    session.add_all([OrderLine(order_id=order.id, ticket_type_id=kind.id, quantity=count,
                               unit_amount=promo_codes.unit_price(promo, kind)) for kind, count in chosen])
    if promo is not None:
        await promo_codes.reserve(session, promo, order)
    await session.flush()
    return order, webinar


async def _checked_lines(session: AsyncSession, webinar: Webinar, lines: dict[uuid.UUID, int], *,
                         now: dt.datetime, promo: PromoCode | None = None,
                         held: bool = False) -> list[tuple[TicketType, int]]:
    """The types and counts of an order about to start, in page order; Invalid, Conflict or
    SoldOut when they cannot be bought now. A promo code makes the hidden types it names
    buyable and prices the seats it applies to."""
    refuse_if_closed(webinar, now)
    kinds = {kind.id: kind for kind in await ticket_types.types_of(session, webinar.id)}
    wanted = {type_id: count for type_id, count in lines.items() if count}
    for type_id, count in wanted.items():
        if type_id not in kinds:
            raise NotFound("this webinar has no such ticket type")
        if kinds[type_id].hidden and not held and not (promo is not None and promo_codes.reveals(promo, kinds[type_id])):
            raise Conflict("this ticket type is not on sale")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_QUANTITY:
            raise Invalid(f"the number of seats of each type must be a whole number from 0 to {MAX_QUANTITY}",
                          field="quantity")
    total = sum(wanted.values())
    if not 1 <= total <= MAX_QUANTITY:
        raise Invalid(f"choose from 1 to {MAX_QUANTITY} seats in all", field="quantity")
    chosen = [(kind, wanted[kind.id]) for kind in kinds.values() if kind.id in wanted]
    for kind, count in chosen:
        if not ticket_types.checkout_open(kind, webinar, now,
                                          revealed=held or (promo is not None and promo_codes.reveals(promo, kind))):
            raise Conflict(f"{kind.name!r} is not on sale now")
        left = None if held else ticket_types.seats_left(kind, webinar)
        if left is not None and left < count:
            raise SoldOut(f"{kind.name!r} is sold out" if left == 0 else f"only {left} seats of {kind.name!r} are left")
    left = None if held else seats_left(webinar)
    if left is not None and left < total:
        raise SoldOut("this webinar is sold out" if left == 0 else f"only {left} seats are left")
    amount = sum(promo_codes.unit_price(promo, kind) * count for kind, count in chosen)
    minimum = minimum_charge(webinar.currency)
    if amount == 0 and (promo is not None or held):
        # The code makes the order free, or a waitlist offer holds free seats: it is completed
        # without a payment.
        return chosen
    if amount == 0:
        # A Checkout Session in payment mode cannot charge nothing.
        raise Invalid("free seats of this webinar can only be taken together with a paid one", field="quantity")
    if minimum is not None and amount < minimum and promo is not None:
        raise Invalid(f"with this promo code the order comes to less than the smallest amount a card can be "
                      f"charged ({describe_amount(minimum, webinar.currency)})", field="code", reason="below_minimum")
    if minimum is not None and amount < minimum:
        raise Invalid(f"the order comes to less than the smallest amount a card can be charged "
                      f"({describe_amount(minimum, webinar.currency)})", field="quantity")
    return chosen


async def priced_lines(session: AsyncSession, order: Order) -> list[tuple[TicketType, int, int]]:
    """The order's seats by type with the unit price each was bought at, in page order; an
    order without lines is all of the default type, at an even share of its expected amount."""
    rows = (await session.execute(
        select(TicketType, OrderLine.quantity, OrderLine.unit_amount)
        .join(OrderLine, OrderLine.ticket_type_id == TicketType.id).where(OrderLine.order_id == order.id)
        .order_by(TicketType.position, TicketType.created_at, TicketType.id))).all()
    if rows:
        return [(kind, count, unit) for kind, count, unit in rows]
    kind = await ticket_types.default_type(session, order.webinar_id)
    return [(kind, order.quantity, (order.expected_amount or 0) // max(order.quantity, 1))]


async def order_lines(session: AsyncSession, order: Order) -> list[tuple[TicketType, int]]:
    """The order's seats by type in page order: its lines, or all of the default type."""
    return [(kind, count) for kind, count, _ in await priced_lines(session, order)]


async def register_free(session: AsyncSession, order: Order, webinar: Webinar) -> None:
    """Complete an order for a free webinar at once: no payment, the tickets and mails now.

    Raises Invalid without an email to send the link to, and SoldOut when the last seats
    went to somebody else meanwhile (the caller's transaction then keeps nothing).
    """
    if not order.email:
        raise Invalid("enter the email address the join link goes to", field="email")
    now = utcnow()
    order.completed_at = order.paid_at = now
    order.amount_total, order.currency = 0, webinar.currency
    if await settle(session, order, webinar=webinar, tickets=[]) != OrderStatus.PAID:
        raise SoldOut("this webinar is sold out")


async def attach_checkout_session(session: AsyncSession, order_id: uuid.UUID, stripe_session_id: str) -> None:
    await session.execute(
        update(Order).where(Order.id == order_id, Order.stripe_session_id.is_(None)).values(stripe_session_id=stripe_session_id)
    )


async def find_order_by_session(session: AsyncSession, stripe_session_id: str) -> Order | None:
    return await session.scalar(select(Order).where(Order.stripe_session_id == stripe_session_id))


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    return await session.scalar(select(Order).where(Order.id == order_id).with_for_update())


async def order_by_invoice(session: AsyncSession, invoice_id: str) -> Order | None:
    """The order Stripe (or dev mode's stand-in) issued the invoice `invoice_id` for."""
    return (await session.scalars(select(Order).where(Order.invoice_id == invoice_id).limit(1))).first()


async def lock_order_by_invoice(session: AsyncSession, invoice_id: str) -> Order | None:
    query = select(Order).where(Order.invoice_id == invoice_id).with_for_update()
    return (await session.scalars(query.limit(1))).first()


async def lock_order_by_session(session: AsyncSession, stripe_session_id: str) -> Order | None:
    return await session.scalar(select(Order).where(Order.stripe_session_id == stripe_session_id).with_for_update())


async def lock_order_by_payment_intent(session: AsyncSession, payment_intent_id: str) -> Order | None:
    query = select(Order).where(Order.stripe_payment_intent_id == payment_intent_id).with_for_update()
    return (await session.scalars(query.limit(1))).first()


async def adopt_checkout_session(
    session: AsyncSession, stripe_session_id: str, webinar: Webinar, quantity: int
) -> tuple[Order, bool]:
    """The order of a checkout session this service did not create, made once however many
    processes see the session at the same time; True when this call made it."""
    now = utcnow()
    result = await session.execute(
        insert(session, Order)
        .values(**_new_order(webinar, quantity), stripe_session_id=stripe_session_id, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["stripe_session_id"])
    )
    order = await lock_order_by_session(session, stripe_session_id)
    assert order is not None
    return order, result.rowcount == 1


def _payment_problem(order: Order, webinar: Webinar) -> str | None:
    expected = order.expected_amount if order.expected_amount is not None else webinar.price_amount * order.quantity
    currency = (order.currency or "").lower()
    if currency != webinar.currency:
        return f"paid in {currency.upper() or 'an unknown currency'}, the webinar is priced in {webinar.currency.upper()}"
    # Stripe Tax adds its tax on top of prices stated without it.
    if order.amount_total not in (expected, expected + (order.amount_tax or 0)):
        return f"paid {order.amount_total} {currency.upper()}, expected {expected} for {order.quantity} seat(s)"
    return None


async def request_refund(session: AsyncSession, order: Order, reason: str) -> None:
    """Queue the refund of `order` (once per order, however often asked)."""
    if order.refund_requested_at is None:
        order.refund_requested_at = utcnow()
    await enqueue(session, "payment.refund", {"order_id": str(order.id), "reason": reason},
                  dedupe_key=f"payment.refund:{order.id}")


# Why a payment came too late, by the reason its refund job and mail carry.
# Whole sentences, so that the console can say them in the organizer's language.
LATE_PROBLEMS = {
    ("ended", True): N_("paid after the webinar had ended; refunded automatically"),
    ("ended", False): N_("paid after the webinar had ended; no ticket issued"),
    ("sales_closed", True): N_("paid after sales had closed; refunded automatically"),
    ("sales_closed", False): N_("paid after sales had closed; no ticket issued"),
}
OVERSOLD_PROBLEM = N_("paid after the webinar sold out; refunded automatically")


def late_payment(order: Order, webinar: Webinar, *, now: dt.datetime) -> str | None:
    """Why a paid order without tickets came too late ("ended" or "sales_closed"), or None.

    Late: the webinar has ended by now (a ticket would admit nobody), or it was not on sale
    when the checkout completed (Stripe's time of the event, so a webhook that is merely
    delivered late does not count against the buyer).
    """
    if now >= webinar.ends_at or webinar.status == WebinarStatus.ENDED:
        return "ended"
    completed = order.completed_at or order.paid_at or now
    if not is_on_sale(webinar, completed):
        return "sales_closed"
    return None


def _counts(lines: list[tuple[TicketType, int]]) -> dict[uuid.UUID, int]:
    return {kind.id: count for kind, count in lines}


async def _type_closed(session: AsyncSession, order: Order, webinar: Webinar) -> str | None:
    """"sales_closed" when a type of a typed webinar's order was not on sale when the checkout
    completed (its own window), else None."""
    if not webinar.typed:
        return None
    completed = order.completed_at or order.paid_at or utcnow()
    for kind, _ in await order_lines(session, order):
        if not ticket_types.type_on_sale(kind, webinar, completed):
            return "sales_closed"
    return None


def dispute_state(order: Order) -> str | None:
    """Where the order's dispute stands: "inquiry" (open; the issuer asks, no money taken,
    nothing revoked), "inquiry_closed", "open" (a chargeback: tickets revoked), "won" or
    "lost"; None without one. A chargeback outranks an inquiry it may have grown from."""
    if order.dispute_lost_at is not None:
        return "lost"
    if order.dispute_won_at is not None:
        return "won"
    if order.disputed_at is not None:
        return "open"
    if order.inquiry_closed_at is not None:
        return "inquiry_closed"
    if order.inquiry_opened_at is not None:
        return "inquiry"
    return None


def seat_price(order: Order) -> int | None:
    """What one seat of the order cost, when the order was paid at a price per seat."""
    paid = order.amount_total if order.amount_total is not None else order.expected_amount
    if not paid or paid % order.quantity:
        return None
    return paid // order.quantity


def partial_refund(order: Order) -> tuple[int | None, int]:
    """(seats, amount) a refund made outside this service covers, when it is not the whole
    order: seats is None when the amount is not a whole number of seats."""
    if order.refunded_at is not None or order.amount_refunded <= 0 or order.paid_at is None:
        return None, 0
    price = seat_price(order)
    if price is None or order.amount_refunded % price:
        return None, order.amount_refunded
    return order.amount_refunded // price, order.amount_refunded


async def _convert_hold(session: AsyncSession, order: Order) -> bool:
    """True when the order is the checkout of a waitlist offer whose seats are still held for
    it: they are the order's now (taken already, so not taken again). The conditional UPDATE
    decides against an offer expiring at the same moment: exactly one of them wins."""
    return await _convert(session, order, WaitlistEntry.order_id == order.id)


async def _convert(session: AsyncSession, order: Order, which) -> bool:
    result = await session.execute(
        update(WaitlistEntry).where(which, WaitlistEntry.held.is_(True), WaitlistEntry.outcome.is_(None))
        .values(held=False, outcome=WaitlistOutcome.BOUGHT, ended_at=utcnow(), order_id=order.id)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


async def _convert_earlier_checkout(session: AsyncSession, order: Order, lines: list[tuple[TicketType, int]]) -> bool:
    """True when the order is an earlier checkout of an offer still held (a second click or tab
    started another, which the entry now names): exactly the held seats, by the offered address,
    started during the offer. Without this its payment would find the seats taken, by the hold
    made for this very person, and be refunded."""
    if not order.email or len(lines) != 1:
        return False
    kind, count = lines[0]
    return await _convert(session, order, and_(
        WaitlistEntry.webinar_id == order.webinar_id, WaitlistEntry.email_key == order.email.strip().lower(),
        WaitlistEntry.quantity == count, WaitlistEntry.offered_at <= order.created_at,
        WaitlistEntry.order_id.is_not(None),
        WaitlistEntry.ticket_type_id == kind.id if not kind.is_default
        else or_(WaitlistEntry.ticket_type_id.is_(None), WaitlistEntry.ticket_type_id == kind.id)))


async def _seats_for(session: AsyncSession, order: Order, webinar: Webinar) -> list[tuple[TicketType, int]] | None:
    """The order's seats by type once they are the order's (held for its offer, or taken now);
    None when the webinar or a type is full."""
    lines = await order_lines(session, order)
    if await _convert_hold(session, order) or await _convert_earlier_checkout(session, order, lines):
        return lines
    if order.waitlist_entry_id is not None and await session.scalar(
            select(WaitlistEntry.id).where(WaitlistEntry.id == order.waitlist_entry_id,
                                           WaitlistEntry.outcome == WaitlistOutcome.BOUGHT,
                                           WaitlistEntry.order_id != order.id)) is not None:
        return None  # another checkout of the same offer bought it: this payment is refunded
    if not await take_seats(session, webinar.id, _counts(lines)):
        return None
    # An offer paid after it ran out still counts as bought when seats were left for it.
    await session.execute(
        update(WaitlistEntry).where(WaitlistEntry.order_id == order.id,
                                    WaitlistEntry.outcome.is_(None) | (WaitlistEntry.outcome == WaitlistOutcome.EXPIRED))
        .values(held=False, outcome=WaitlistOutcome.BOUGHT, ended_at=utcnow())
        .execution_options(synchronize_session=False))
    return lines


async def settle(session: AsyncSession, order: Order, *, webinar: Webinar | None = None,
                 tickets: list[Ticket] | None = None) -> OrderStatus:
    """Bring the order's status and tickets in line with its facts. Idempotent.

    The caller holds the order's row lock (PostgreSQL) or the database's write lock
    (SQLite), so two processes never settle one order at once. A caller that has the
    webinar, or knows the order has no tickets yet, passes them to save the queries.
    """
    if webinar is None:
        webinar = await get_webinar(session, order.webinar_id)
    if tickets is None:
        tickets = await order_tickets(session, order.id)
    live = [t for t in tickets if t.status == TicketStatus.VALID]
    revoke_reason = None

    if order.refunded_at is not None:
        status, revoke_reason = OrderStatus.REFUNDED, "refunded"
    elif order.disputed_at is not None and order.dispute_won_at is None:
        status, revoke_reason = OrderStatus.DISPUTED, "disputed"
    elif order.paid_at is None:
        if order.payment_failed_at is not None:
            status = OrderStatus.FAILED
        elif order.expired_at is not None:
            status = OrderStatus.EXPIRED
        else:
            status = OrderStatus.PENDING
    elif webinar.status == WebinarStatus.CANCELLED:
        status, revoke_reason = OrderStatus.CANCELLED, "cancelled"
        await request_refund(session, order, "cancelled")
    elif order.status == OrderStatus.FLAGGED:
        status = OrderStatus.FLAGGED
    elif (problem := _payment_problem(order, webinar)) is not None:
        status = OrderStatus.FLAGGED
        order.problem = problem
        logger.warning("order flagged", extra={"order_id": str(order.id), "problem": problem})
    elif tickets:
        status = OrderStatus.PAID if live or order.status == OrderStatus.PAID else order.status
    elif order.status == OrderStatus.OVERSOLD:
        status = OrderStatus.OVERSOLD
    elif order.status == OrderStatus.LATE:
        status = OrderStatus.LATE
    elif (late := late_payment(order, webinar, now=utcnow()) or await _type_closed(session, order, webinar)):
        status = OrderStatus.LATE
        refund = (order.amount_total or 0) > 0  # a free order has nothing to give back
        order.problem = LATE_PROBLEMS[late, refund]
        logger.warning("order paid too late", extra={"order_id": str(order.id), "reason": late})
        if refund:
            await request_refund(session, order, late)
    elif (lines := await _seats_for(session, order, webinar)) is not None:
        await issue_tickets(session, order, webinar, [kind.id for kind, count in lines for _ in range(count)])
        status = OrderStatus.PAID
    else:
        status = OrderStatus.OVERSOLD
        order.problem = OVERSOLD_PROBLEM
        logger.warning("order oversold", extra={"order_id": str(order.id)})
        await request_refund(session, order, "oversold")

    if revoke_reason is not None and live:
        await revoke_tickets(session, live, revoke_reason)
    await promo_codes.account(session, order, status)
    if order.status != status:
        order.status = status
    await session.flush()
    return status


# What a buyer is told became of their checkout, by order status (`buyer_outcome`).
REFUNDED_STATUSES = {OrderStatus.OVERSOLD: "oversold", OrderStatus.LATE: None, OrderStatus.CANCELLED: "cancelled",
                     OrderStatus.REFUNDED: "refunded"}


def buyer_outcome(order: Order) -> tuple[str, str | None]:
    """What became of the order, in the buyer's terms: (outcome, reason).

    Outcomes: "unknown" (Stripe has not told us yet: worth waiting a few seconds), "pending"
    (completed with a payment method that clears later, e.g. a bank debit), "paid" (the seats
    stand), "refunded" (no seats; the money goes back, reason "oversold", "ended",
    "sales_closed", "cancelled" or "refunded"), "flagged" (the organizer looks at it),
    "disputed", "failed" (the delayed payment did not go through) and "expired".
    """
    status = order.status
    if status == OrderStatus.PENDING:
        return ("pending" if order.completed_at is not None else "unknown"), None
    if status in REFUNDED_STATUSES:
        reason = REFUNDED_STATUSES[status]
        if status == OrderStatus.LATE:
            ended = order.problem in (LATE_PROBLEMS["ended", True], LATE_PROBLEMS["ended", False])
            reason = "ended" if ended else "sales_closed"
        return "refunded", reason
    return status.value, None


def refund_amount(order: Order) -> int:
    """What goes back to a refunded buyer: what Stripe recorded as refunded, else what was paid."""
    return order.amount_refunded or order.amount_total or order.expected_amount or 0
