"""What an organizer reads about their webinars: where each stands, sales and revenue,
attendees with the state of their latest mail, orders that need a look, and what a
cancellation would set off. Read-only; the actions live in the services they belong to."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import (
    Order,
    OrderStatus,
    Organizer,
    Registration,
    ReplacedCode,
    Ticket,
    TicketDelivery,
    TicketStatus,
    Webinar,
    WebinarStatus,
)
from ticketing.errors import NotFound
from ticketing.webinars import sales
from ticketing.webinars.service import get_own_webinar, seats_left


def status_label(webinar: Webinar, *, now: dt.datetime | None = None) -> str:
    """"on sale", "sold out", "sales closed", "live", "ended" or "cancelled", as the organizer
    thinks of it. Whether sales are closed is the buyer's page's rule (`sales.closed_reason`)."""
    now = now or utcnow()
    if webinar.status == WebinarStatus.CANCELLED:
        return "cancelled"
    if webinar.status == WebinarStatus.ENDED or now >= webinar.ends_at:
        return "ended"
    if now >= webinar.starts_at:
        return "live"
    left = seats_left(webinar)
    if left is not None and left <= 0:
        return "sold out"
    if sales.closed_reason(webinar, now) is not None:
        return "sales closed"
    return "on sale"


@dataclasses.dataclass(frozen=True)
class Sales:
    """A webinar's sales: seats, and money by currency (minor units) paid, refunded and kept."""

    tickets_sold: int
    capacity: int | None
    seats_left: int | None
    paid_orders: int
    pending_orders: int  # checkouts started, not paid (yet)
    paid: dict[str, int]
    refunded: dict[str, int]
    pending_registrations: int = 0  # free registrations whose address is not confirmed yet

    @property
    def revenue(self) -> dict[str, int]:
        """Paid less refunded, by currency."""
        return {c: self.paid.get(c, 0) - self.refunded.get(c, 0) for c in sorted(set(self.paid) | set(self.refunded))}


async def sales_by_webinar(session: AsyncSession, webinars: list[Webinar]) -> dict[uuid.UUID, Sales]:
    """The sales of each of `webinars`, in one grouped query over their orders."""
    ids = [w.id for w in webinars]
    paid: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    refunded: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: {"paid": 0, "pending": 0, "registrations": 0})
    if ids:
        rows = await session.execute(
            select(Order.webinar_id, Order.currency, Order.status,
                   func.count(), func.coalesce(func.sum(Order.amount_total), 0), func.coalesce(func.sum(Order.amount_refunded), 0))
            .where(Order.webinar_id.in_(ids))
            .group_by(Order.webinar_id, Order.currency, Order.status)
        )
        for webinar_id, currency, status, count, total, refund in rows:
            code = (currency or "").upper()
            if status == OrderStatus.PENDING:
                counts[webinar_id]["pending"] += count
                continue
            if status not in (OrderStatus.FAILED, OrderStatus.EXPIRED) and code:
                counts[webinar_id]["paid"] += count
                paid[webinar_id][code] = paid[webinar_id].get(code, 0) + int(total)
                if refund:
                    refunded[webinar_id][code] = refunded[webinar_id].get(code, 0) + int(refund)
        waiting = await session.execute(
            select(Registration.webinar_id, func.count())
            .where(Registration.webinar_id.in_(ids), Registration.confirmed_at.is_(None))
            .group_by(Registration.webinar_id)
        )
        for webinar_id, count in waiting:
            counts[webinar_id]["registrations"] += count
    return {w.id: Sales(tickets_sold=w.seats_taken, capacity=w.capacity, seats_left=seats_left(w),
                        paid_orders=counts[w.id]["paid"], pending_orders=counts[w.id]["pending"],
                        paid=paid[w.id], refunded=refunded[w.id], pending_registrations=counts[w.id]["registrations"])
            for w in webinars}


@dataclasses.dataclass(frozen=True)
class Attendee:
    ticket: Ticket
    order: Order
    # When the buyer gave this seat to someone (each time a new holder was mailed), oldest first.
    reassigned_at: tuple[dt.datetime, ...] = ()

    @property
    def mail(self) -> str:
        """The ticket's stored delivery state as the console names it: "sent", "queued",
        "retrying" (queued, and the last try was refused for now: see `mail_error`) or "failed"."""
        state = self.ticket.delivery_status
        if state == TicketDelivery.QUEUED and self.ticket.delivery_error:
            return "retrying"
        return state.value

    @property
    def mail_error(self) -> str | None:
        return self.ticket.delivery_error


async def attendees(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID) -> list[Attendee]:
    """The webinar's tickets, oldest first, each with its order (the delivery state of its
    latest link mail is the ticket's own, recorded by the mail jobs)."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    rows = (await session.execute(
        select(Ticket, Order).join(Order, Order.id == Ticket.order_id).where(Ticket.webinar_id == webinar.id)
        .order_by(Ticket.created_at, Ticket.order_id, Ticket.seq)
    )).all()
    history: dict[uuid.UUID, list[dt.datetime]] = {}
    for ticket_id, at in await session.execute(
            select(ReplacedCode.ticket_id, ReplacedCode.replaced_at)
            .join(Ticket, Ticket.id == ReplacedCode.ticket_id)
            .where(Ticket.webinar_id == webinar.id, ReplacedCode.reason == "reassigned")
            .order_by(ReplacedCode.replaced_at)):
        history.setdefault(ticket_id, []).append(at)
    return [Attendee(ticket=ticket, order=order, reassigned_at=tuple(history.get(ticket.id, ())))
            for ticket, order in rows]


@dataclasses.dataclass(frozen=True)
class CancelPreview:
    refunds: int  # paid orders that will be refunded
    mails: int  # buyers told: one per valid ticket


async def cancel_preview(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID) -> CancelPreview:
    """What cancelling the webinar now would set off, for the confirmation to state."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    refunds = await session.scalar(select(func.count()).select_from(Order).where(
        Order.webinar_id == webinar.id, Order.paid_at.is_not(None),
        # The orders cancel_webinar settles, less those with nothing to give back.
        Order.status.notin_([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
        Order.amount_total.is_(None) | (Order.amount_total > Order.amount_refunded)))
    mails = await session.scalar(select(func.count()).select_from(Ticket).where(
        Ticket.webinar_id == webinar.id, Ticket.status == TicketStatus.VALID))
    return CancelPreview(refunds=refunds or 0, mails=mails or 0)


def valid_ticket_count(webinar_id: uuid.UUID):
    """A statement counting the webinar's valid tickets (who a time change mails)."""
    return select(func.count()).select_from(Ticket).where(Ticket.webinar_id == webinar_id,
                                                          Ticket.status == TicketStatus.VALID)


async def own_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID) -> tuple[Ticket, Webinar]:
    """One of the organizer's tickets with its webinar; NotFound or Forbidden otherwise."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id))
    if ticket is None:
        raise NotFound("no such ticket")
    webinar = await get_own_webinar(session, organizer, ticket.webinar_id)
    return ticket, webinar
