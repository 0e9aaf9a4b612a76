"""What an organizer does about a whole order after a dispute or a refund made in Stripe:
restore its tickets once a chargeback is won, choose the seats a partial refund takes away,
and the notes that say why an order is among those to look at."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import Order, Organizer, Refund, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.errors import N_, Conflict, Forbidden, Invalid, NotFound, SoldOut, Text
from ticketing.jobs import enqueue
from ticketing.orders.service import dispute_state, lock_order, seat_price, settle
from ticketing.tickets.capacity import take_seats
from ticketing.tickets.service import order_tickets, replace_code, revoke_tickets
from ticketing.webinars.service import NEEDS_A_LOOK, get_webinar, list_orders

# The reason a seat chosen for a partial refund is revoked with: the holder's notice says "refunded".
REFUNDED = "refunded"


@dataclasses.dataclass(frozen=True)
class RefundedOutside:
    """A refund of part of an order made outside this service (Stripe's dashboard)."""

    amount: int  # minor units refunded that no refund of ours accounts for
    seats: int | None  # how many seats that is, or None when it is not a whole number of seats
    chosen: int  # seats already taken away for it
    price: int | None  # one seat's price

    @property
    def to_choose(self) -> int:
        return max((self.seats or 0) - self.chosen, 0)


@dataclasses.dataclass(frozen=True)
class OrderNote:
    """Why an order needs the organizer, and what they can do about it."""

    order: Order
    dispute: str | None
    refunded: RefundedOutside | None
    can_restore: bool  # a won chargeback whose tickets are still revoked

    @property
    def needs_a_look(self) -> bool:
        return bool(self.order.problem or self.dispute == "inquiry" or self.can_restore
                    or (self.refunded and (self.refunded.seats is None or self.refunded.to_choose)))


async def notes(session: AsyncSession, orders: list[Order]) -> dict[uuid.UUID, OrderNote]:
    """Each order's dispute state, refund made outside this service and restore offer (two queries)."""
    ids = [o.id for o in orders]
    ours = dict((await session.execute(
        select(Refund.order_id, func.sum(Refund.amount)).where(Refund.order_id.in_(ids)).group_by(Refund.order_id)
    )).all()) if ids else {}
    revoked = {(order_id, reason): count for order_id, reason, count in (await session.execute(
        select(Ticket.order_id, Ticket.revoked_reason, func.count()).where(
            Ticket.order_id.in_(ids), Ticket.status == TicketStatus.REVOKED).group_by(Ticket.order_id, Ticket.revoked_reason)
    )).all()} if ids else {}
    found = {}
    for order in orders:
        refunded = None
        outside = order.amount_refunded - int(ours.get(order.id) or 0)
        if order.refunded_at is None and order.paid_at is not None and outside > 0:
            price = seat_price(order)
            seats = outside // price if price and outside % price == 0 else None
            refunded = RefundedOutside(outside, seats, revoked.get((order.id, REFUNDED), 0), price)
        state = dispute_state(order)
        can_restore = (state == "won" and order.refunded_at is None
                       and revoked.get((order.id, "disputed"), 0) > 0)
        found[order.id] = OrderNote(order, state, refunded, can_restore)
    return found


async def orders_with_notes(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID, *,
                            status: str | None = None) -> list[OrderNote]:
    """The webinar's orders (as `webinars.service.list_orders`), each with its note; with
    status "problem" only those that need the organizer: the console's "Orders to look at"."""
    orders = await list_orders(session, organizer, webinar_id, status=status)
    found = await notes(session, orders)
    listed = [found[o.id] for o in orders]
    return [n for n in listed if n.needs_a_look] if status == NEEDS_A_LOOK else listed


async def own_order_note(session: AsyncSession, organizer: Organizer, order_id: uuid.UUID) -> tuple[OrderNote, Webinar]:
    """One of the organizer's orders with its note and webinar, for a page about it; NotFound or Forbidden."""
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound("no such order")
    webinar = await get_webinar(session, order.webinar_id)
    if webinar.organizer_id != organizer.id:
        raise Forbidden("this order belongs to another organizer's webinar")
    return (await notes(session, [order]))[order.id], webinar


async def _own_order(session: AsyncSession, organizer: Organizer, order_id: uuid.UUID) -> tuple[Order, Webinar]:
    """The order, row-locked as a webhook's settle locks it, with its webinar; NotFound or Forbidden."""
    order = await lock_order(session, order_id)
    if order is None:
        raise NotFound("no such order")
    webinar = await get_webinar(session, order.webinar_id)
    if webinar.organizer_id != organizer.id:
        raise Forbidden("this order belongs to another organizer's webinar")
    return order, webinar


async def restore_order(session: AsyncSession, organizer: Organizer, order_id: uuid.UUID, *,
                        grace_minutes: int, now: dt.datetime | None = None) -> list[Ticket]:
    """Give back every ticket a chargeback took, once it is won: one action for the order.

    Refused (Conflict, with the reason) unless the dispute was won and the order not refunded,
    while the webinar is cancelled or over, and when the webinar no longer has the seats
    (SoldOut). Each holder gets a new join link by mail; the old links stay dead.
    """
    now = now or utcnow()
    order, webinar = await _own_order(session, organizer, order_id)
    state = dispute_state(order)
    if state != "won":
        raise Conflict(Text(N_("only an order whose dispute was won can be restored; this dispute is %(state)s"),
                            state=state.replace("_", " ")) if state
                       else Text(N_("only an order whose dispute was won can be restored")))
    if order.refunded_at is not None:
        raise Conflict(Text(N_("this order has been refunded")))
    if webinar.status != WebinarStatus.SCHEDULED or now > webinar.ends_at + dt.timedelta(minutes=grace_minutes):
        raise Conflict(Text(N_("this webinar is cancelled")) if webinar.status == WebinarStatus.CANCELLED
                       else Text(N_("this webinar is over")))
    tickets = [t for t in await order_tickets(session, order.id)
               if t.status == TicketStatus.REVOKED and t.revoked_reason == "disputed"]
    if not tickets:
        raise Conflict(Text(N_("no ticket of this order was revoked by the dispute")))
    if not await take_seats(session, webinar.id, Counter(t.ticket_type_id for t in tickets), scheduled_only=True):
        left = max((webinar.capacity or 0) - webinar.seats_taken, 0)
        raise SoldOut(Text.ngettext("the webinar has %(left)d seat left, and this order needs %(num)d",
                                    "the webinar has %(left)d seats left, and this order needs %(num)d", left,
                                    left=left, num=len(tickets)))
    for ticket in tickets:
        ticket.status = TicketStatus.VALID
        ticket.revoked_reason = None
        ticket.revoked_at = None
        if ticket.assigned_at is None:
            ticket.assigned_at = now  # its new link goes out by mail to its holder
        code = await replace_code(session, ticket, order, "restored", now=now)
        await session.flush()
        await enqueue(session, "mail.join", {"ticket_id": str(ticket.id), "code": code},
                      dedupe_key=f"mail.join:{ticket.id}:{ticket.code_hash[:16]}")
    await settle(session, order)
    return tickets


async def take_refunded_seats(session: AsyncSession, organizer: Organizer, order_id: uuid.UUID,
                              ticket_ids: list[uuid.UUID]) -> list[Ticket]:
    """Revoke the seats the organizer chose for a partial refund made in Stripe's dashboard
    (reason "refunded"; each holder is told, with the seat's price as refunded).

    Refused when the order has no such refund, when the choice is not exactly the seats
    still to choose (Invalid), or names a seat that is not a valid one of this order."""
    order, _ = await _own_order(session, organizer, order_id)
    note = (await notes(session, [order]))[order.id]
    refunded = note.refunded
    if refunded is None or refunded.seats is None:
        raise Conflict(Text(N_("this order has no refund of whole seats made outside this service")))
    if not refunded.to_choose:
        raise Conflict(Text(N_("the seats for this refund have been chosen already")))
    chosen = set(ticket_ids)
    if len(chosen) != refunded.to_choose:
        raise Invalid(Text.ngettext("choose %(num)d seat", "choose %(num)d seats", refunded.to_choose,
                                    num=refunded.to_choose), field="seats")
    valid = {t.id: t for t in await order_tickets(session, order.id) if t.status == TicketStatus.VALID}
    if not chosen <= valid.keys():
        raise Invalid(Text(N_("choose among this order's valid seats")), field="seats")
    tickets = [valid[i] for i in sorted(chosen, key=lambda i: valid[i].seq)]
    await revoke_tickets(session, tickets, REFUNDED, refund_amount=refunded.price)
    await settle(session, order)
    return tickets


async def ticket_disputes(session: AsyncSession, tickets: list[Ticket]) -> dict[uuid.UUID, str | None]:
    """The dispute state of each ticket's order, by order id, for the attendee list and its CSV."""
    ids = {t.order_id for t in tickets}
    if not ids:
        return {}
    return {o.id: dispute_state(o) for o in await session.scalars(select(Order).where(Order.id.in_(ids)))}


async def ticket_invoices(session: AsyncSession, tickets: list[Ticket]) -> dict[uuid.UUID, str | None]:
    """The invoice number of each ticket's order, by order id (None: no invoice, or not known yet)."""
    ids = {t.order_id for t in tickets}
    if not ids:
        return {}
    return dict((await session.execute(select(Order.id, Order.invoice_number).where(Order.id.in_(ids)))).all())
