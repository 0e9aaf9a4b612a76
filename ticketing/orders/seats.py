"""The buyer's order page: the order's seats, who holds each, and giving a seat to someone.

The page is reached by the order code from the buyer's mail; only its hash is stored. A seat
the buyer still holds shows its join link there (the code is sealed to a key derived from
the order code). Assigning a seat gives it a new code, mails that to the attendee, and keeps
the old code's hash so the old link can say the seat now belongs to someone else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import limits, utcnow
from ticketing.db.models import (
    Order,
    OrderStatus,
    Organizer,
    ReplacedCode,
    Ticket,
    TicketStatus,
    Webinar,
    WebinarStatus,
)
from ticketing.errors import Conflict, Invalid, NotFound, RateLimited
from ticketing.inputs import email_address, has_control
from ticketing.jobs import enqueue, enqueue_many
from ticketing.orders import ticket_types
from ticketing.orders.service import priced_lines
from ticketing.settings import Settings
from ticketing.tickets.service import (
    buyer_holds,
    drop_pending_reminders,
    hash_code,
    order_tickets,
    reminder_jobs,
    replace_code,
    seat_code,
)

NAME_LIMIT = 200
HOUR, DAY = 3600.0, 86400.0
REASSIGNED = "reassigned"


@dataclasses.dataclass(frozen=True)
class ReassignLimits:
    """How often seats may be given to someone (each time mails a new holder): per seat, and
    per order on top of its seat count, in any hour and any day; 0 = no limit."""

    per_seat_hour: int = 3
    per_seat_day: int = 6
    per_order_hour: int = 10
    per_order_day: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> ReassignLimits:
        return cls(settings.reassign_per_seat_hour, settings.reassign_per_seat_day,
                   settings.reassign_per_order_hour, settings.reassign_per_order_day)

    def counted(self, order: Order, ticket: Ticket) -> list[tuple[limits.Limit, str]]:
        """The limits one reassignment of `ticket` counts against, each with its key."""
        def extra(count: int) -> int:
            return count + order.quantity if count > 0 else 0

        return [
            (limits.Limit("reassign.seat.hour", self.per_seat_hour, HOUR), str(ticket.id)),
            (limits.Limit("reassign.seat.day", self.per_seat_day, DAY), str(ticket.id)),
            (limits.Limit("reassign.order.hour", extra(self.per_order_hour), HOUR), str(order.id)),
            (limits.Limit("reassign.order.day", extra(self.per_order_day), DAY), str(order.id)),
        ]


class FreeSeat(Conflict):
    """A free registration's seat belongs to the address that registered and confirmed it: it is
    not passed on, so registering cannot be used to mail strangers. Others register themselves."""

    code = "free_seat"


@dataclasses.dataclass(frozen=True)
class Seat:
    """One seat as its buyer sees it: the ticket, and its join link code while the buyer holds it."""

    ticket: Ticket
    code: str | None
    with_buyer: bool
    # When the seat was given to someone (each time a new holder was mailed), oldest first.
    reassigned_at: tuple[dt.datetime, ...] = ()
    type_name: str | None = None  # shown when the webinar sells more than one kind of seat

    @property
    def number(self) -> int:
        return self.ticket.seq + 1


@dataclasses.dataclass(frozen=True)
class OrderView:
    order: Order
    webinar: Webinar
    organizer: Organizer
    seats: list[Seat]
    can_assign: bool
    free: bool = False
    # (type name, seats, unit price) of a typed webinar's order; empty for a one-price webinar.
    lines: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)


def _not_found() -> NotFound:
    return NotFound("This order link is not known. Check that the whole link was copied from the email.")


async def _order_for_code(session: AsyncSession, code: str, *, for_update: bool = False) -> Order:
    if not 22 <= len(code) <= 128:
        raise _not_found()
    query = select(Order).where(Order.code_hash == hash_code(code))
    order = await session.scalar(query.with_for_update() if for_update else query)
    if order is None or not secrets.compare_digest(order.code_hash or "", hash_code(code)):
        raise _not_found()
    return order


def assignable(order: Order, webinar: Webinar, *, now: dt.datetime) -> bool:
    """Seats can be given to others until the webinar starts, while the order stands."""
    return order.status == OrderStatus.PAID and webinar.status == WebinarStatus.SCHEDULED and now < webinar.starts_at


async def order_view(session: AsyncSession, code: str, *, now: dt.datetime | None = None) -> OrderView:
    """What the order page shows for `code`; NotFound for an unknown code."""
    now = now or utcnow()
    order = await _order_for_code(session, code)
    webinar = await session.get(Webinar, order.webinar_id)
    organizer = await session.get(Organizer, webinar.organizer_id)
    names = await ticket_types.type_names(session, webinar.id) if webinar.typed else {}
    seats = []
    tickets = await order_tickets(session, order.id)
    history = await reassignments(session, [t.id for t in tickets])
    for ticket in tickets:
        mine = buyer_holds(ticket, order)
        link_code = seat_code(code, ticket) if mine and ticket.status == TicketStatus.VALID else None
        seats.append(Seat(ticket, link_code, mine, tuple(history.get(ticket.id, ())), names.get(ticket.ticket_type_id)))
    lines = []
    if webinar.typed:
        lines = [(kind.name, count, unit) for kind, count, unit in await priced_lines(session, order)]
    free = is_free(order)
    return OrderView(order, webinar, organizer, seats, assignable(order, webinar, now=now) and not free, free, lines)


def is_free(order: Order) -> bool:
    return order.expected_amount == 0


async def reassignments(session: AsyncSession, ticket_ids: list) -> dict:
    """Ticket id → when each of its seat's reassignments happened, oldest first."""
    if not ticket_ids:
        return {}
    rows = await session.execute(
        select(ReplacedCode.ticket_id, ReplacedCode.replaced_at)
        .where(ReplacedCode.ticket_id.in_(ticket_ids), ReplacedCode.reason == REASSIGNED)
        .order_by(ReplacedCode.replaced_at))
    found: dict = {}
    for ticket_id, at in rows:
        found.setdefault(ticket_id, []).append(at)
    return found


def _holder(name: str, email: str) -> tuple[str, str]:
    name = " ".join(name.split())
    if not name:
        raise Invalid("enter the attendee's name", field="name")
    if len(name) > NAME_LIMIT or has_control(name):
        raise Invalid(f"the name must be at most {NAME_LIMIT} plain characters", field="name")
    return name, email_address(email)


async def assign_seat(session: AsyncSession, code: str, seq: int, *, name: str, email: str, keep: bool = False,
                      now: dt.datetime | None = None, rates: ReassignLimits | None = None) -> Ticket:
    """Give seat `seq` of the order to `name` <`email`> (or back to the buyer with `keep`).

    The seat gets a new join code, mailed to its new holder with reminders; the old code
    stops working and its link says the seat was reassigned. Invalid for a bad name or
    address, Conflict once the webinar has started or the order no longer stands, FreeSeat
    for a free registration's seat, RateLimited (nothing changes) once the seat or the order
    has been reassigned as often as `rates` allow in the last hour or day.
    """
    rates = rates or ReassignLimits()
    now = now or utcnow()
    order = await _order_for_code(session, code, for_update=True)
    webinar = await session.get(Webinar, order.webinar_id)
    if not assignable(order, webinar, now=now):
        if webinar.status == WebinarStatus.CANCELLED:
            raise Conflict("this webinar has been cancelled")
        if order.status != OrderStatus.PAID:
            raise Conflict("this order no longer has valid seats")
        raise Conflict("the webinar has started: seats can no longer be reassigned")
    ticket = await session.scalar(
        select(Ticket).where(Ticket.order_id == order.id, Ticket.seq == seq).with_for_update())
    if ticket is None:
        raise NotFound("this order has no such seat")
    if ticket.status != TicketStatus.VALID:
        raise Conflict("this seat is no longer valid")
    if keep:
        name, email = order.buyer_name or ticket.name or "", order.email or ticket.email
    else:
        name, email = _holder(name, email)
    if ticket.assigned_at is not None and ticket.email.lower() == email.lower() and ticket.name == name:
        return ticket  # already theirs: nothing changes, no second mail
    if is_free(order):
        raise FreeSeat()
    # Counted in this transaction: a refused or failed reassignment counts nothing.
    for limit, key in rates.counted(order, ticket):
        wait = await limits.hit_in(session, limit, key, now=now.timestamp())
        if wait:
            raise RateLimited("this seat or order has been reassigned too often lately", retry_after=wait)
    ticket.name, ticket.email, ticket.assigned_at = name, email, now
    new_code = await replace_code(session, ticket, order, REASSIGNED, now=now)
    kind = "mail.join" if buyer_holds(ticket, order) else "mail.assigned"
    await enqueue(session, kind, {"ticket_id": str(ticket.id), "code": new_code},
                  dedupe_key=f"{kind}:{ticket.id}:{ticket.code_hash[:16]}")
    await drop_pending_reminders(session, ticket.id)
    await enqueue_many(session, reminder_jobs(ticket.id, webinar, new_code, now=now))
    await session.flush()
    return ticket
