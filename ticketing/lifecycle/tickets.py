"""An organizer's actions on one ticket: revoking it (optionally refunding its share) and
restoring one that a dispute revoked once the organizer has won that dispute."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import Order, Organizer, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.errors import N_, Conflict, Forbidden, NotFound, SoldOut, Text
from ticketing.jobs import enqueue
from ticketing.orders.service import lock_order, settle
from ticketing.payments.refunds import request_ticket_refund, ticket_share
from ticketing.tickets.capacity import take_seats
from ticketing.tickets.service import replace_code, revoke_tickets
from ticketing.webinars.service import get_webinar


async def _own_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID) -> tuple[Ticket, Order, Webinar]:
    """The ticket with its order locked (the lock a webhook's settle takes too), or NotFound/Forbidden."""
    order_id = await session.scalar(select(Ticket.order_id).where(Ticket.id == ticket_id))
    if order_id is None:
        raise NotFound("no such ticket")
    order = await lock_order(session, order_id)
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True))
    if order is None or ticket is None:
        raise NotFound("no such ticket")
    webinar = await get_webinar(session, ticket.webinar_id)
    if webinar.organizer_id != organizer.id:
        raise Forbidden("this ticket belongs to another organizer's webinar")
    return ticket, order, webinar


async def revoke_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID, *,
                        refund: bool = False, refund_required: bool = False) -> tuple[Ticket, bool]:
    """Revoke one ticket (reason "organizer"), free its seat and queue the buyer's notice;
    with `refund`, also queue the refund of its share. Returns the ticket and whether a
    refund was queued. Raises Conflict when the ticket is not valid any more, and with
    `refund_required` when there is nothing to refund (nothing is revoked then)."""
    ticket, order, _ = await _own_ticket(session, organizer, ticket_id)
    if ticket.status == TicketStatus.REVOKED:
        raise Conflict(Text(N_("this ticket is already revoked")))
    if ticket.status == TicketStatus.EXPIRED:
        raise Conflict(Text(N_("this ticket has expired with its webinar")))
    refund_queued = await request_ticket_refund(session, order, ticket, "organizer") if refund else False
    if refund_required and not refund_queued:
        # An order not paid through Stripe (made by hand, free) or already refunded: the
        # organizer asked for money back, so revoking alone would not be what was asked.
        raise Conflict(Text(N_("nothing of this ticket's order can be refunded (it was not paid through Stripe, "
                               "or its money has gone back already); revoke the ticket without a refund instead")))
    # The notice says how much comes back (one seat's share), so it is queued knowing that.
    share = await ticket_share(session, order, ticket) if refund_queued else None
    await revoke_tickets(session, [ticket], "organizer", refund_amount=share)
    return ticket, refund_queued


async def restore_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID, *,
                         grace_minutes: int, now: dt.datetime | None = None) -> Ticket:
    """Make a ticket that a dispute revoked valid again once the dispute is won.

    The seat is taken again (Conflict when the webinar has sold out meanwhile) and the buyer
    gets a fresh join link by mail; the old link stays dead.
    """
    now = now or utcnow()
    ticket, order, webinar = await _own_ticket(session, organizer, ticket_id)
    if ticket.status != TicketStatus.REVOKED:
        raise Conflict(Text(N_("this ticket is %(state)s; only a revoked ticket can be restored"),
                            state=ticket.status.value))
    if ticket.revoked_reason != "disputed" or order.dispute_won_at is None:
        raise Conflict(Text(N_("only a ticket revoked by a dispute that was then won can be restored")))
    if order.refunded_at is not None:
        raise Conflict(Text(N_("this order has been refunded")))
    if webinar.status != WebinarStatus.SCHEDULED or now > webinar.ends_at + dt.timedelta(minutes=grace_minutes):
        raise Conflict(Text(N_("this webinar is cancelled")) if webinar.status == WebinarStatus.CANCELLED
                       else Text(N_("this webinar is over")))
    if not await take_seats(session, webinar.id, {ticket.ticket_type_id: 1}, scheduled_only=True):
        raise SoldOut(Text(N_("the webinar has sold out since this ticket was revoked")))
    ticket.status = TicketStatus.VALID
    ticket.revoked_reason = None
    ticket.revoked_at = None
    if ticket.assigned_at is None:
        ticket.assigned_at = now  # its new link goes out by mail to its holder
    code = await replace_code(session, ticket, order, "restored", now=now)
    code_hash = ticket.code_hash
    await session.flush()
    await enqueue(session, "mail.join", {"ticket_id": str(ticket.id), "code": code},
                  dedupe_key=f"mail.join:{ticket.id}:{code_hash[:16]}")
    await settle(session, order)
    return ticket
