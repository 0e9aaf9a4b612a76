"""Tickets: issuing them with their join codes, revoking them, finding one by its code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import (
    Job,
    JobStatus,
    Order,
    Organizer,
    ReplacedCode,
    Ticket,
    TicketDelivery,
    TicketStatus,
    Webinar,
    WebinarStatus,
)
from ticketing.errors import N_, Conflict, Forbidden, Invalid, NotFound, Text
from ticketing.inputs import email_address
from ticketing.jobs import NewJob, enqueue, enqueue_many
from ticketing.tickets import sealing
from ticketing.tickets.capacity import free_seats

# 32 random bytes: 256 bits from the CSPRNG, 43 URL-safe characters.
CODE_BYTES = 32


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> tuple[str, str]:
    """A fresh join code and the hash that is all the database keeps of it."""
    code = secrets.token_urlsafe(CODE_BYTES)
    return code, hash_code(code)


@dataclasses.dataclass(frozen=True)
class NewSeats:
    """What a newly paid order gets, before anything is written: the order page code, the
    order's new column values, one ticket row per seat and each seat's join code.

    The codes exist only here and in the jobs `jobs_for_paid_order` builds from this; the
    rows keep their hashes (and the buyer-held seats' codes sealed to the order page key).
    """

    order_code: str
    order_values: dict[str, Any]
    tickets: list[dict[str, Any]]
    codes: list[str]


def new_seats(order: Order, webinar: Webinar, seat_types: list[uuid.UUID], *, now: dt.datetime) -> NewSeats:
    """The order page code, the order's columns and the ticket rows for a paid `order`, seat
    `n` of ticket type `seat_types[n]`.

    Every seat starts with the buyer. A one-seat order's seat counts as given at once (its
    link is in the order mail); the seats of a larger order wait on the order page until
    the buyer assigns them or uses them. Pure: no database, so a Core insert can use it too.
    """
    order_code, order_code_hash = new_code()
    page_key = sealing.public_key(sealing.page_private_key(order_code))
    order_values: dict[str, Any] = {"code_hash": order_code_hash, "page_key": page_key}
    if order.browser_key:
        order_values["code_sealed"] = sealing.seal(order.browser_key, order_code)
    rows, codes = [], []
    for seq in range(order.quantity):
        code, code_hash = new_code()
        rows.append({
            "id": uuid.uuid4(), "order_id": order.id, "webinar_id": webinar.id, "seq": seq,
            "ticket_type_id": seat_types[seq],
            "email": order.email or "", "name": order.buyer_name or "", "code_hash": code_hash,
            "status": TicketStatus.VALID, "join_count": 0, "created_at": now,
            "assigned_at": now if order.quantity == 1 else None,
            "code_sealed": sealing.seal(page_key, code),
        })
        codes.append(code)
    return NewSeats(order_code, order_values, rows, codes)


def jobs_for_paid_order(order: Order, webinar: Webinar, seats: NewSeats, *, now: dt.datetime) -> list[NewJob]:
    """The jobs a newly paid order queues, in the transaction that inserts its tickets.

    One mail to the buyer (`mail.order`): what was bought and paid, the order page link,
    and for a one-seat order the join link too. That one seat also gets its reminders (24 h
    and 15 min before the start). Seats of a larger order get their own join mail and
    reminders when the buyer assigns them on the order page; until then the buyer gets the
    order's reminders (`mail.order_reminder`), which point to the order page. The order
    code rides in the mail job's payload only (dropped once the mail is out); the join codes
    of the buyer's seats are opened with it (they are sealed to a key derived from it).
    """
    jobs = [NewJob("mail.order", {"order_id": str(order.id), "code": seats.order_code},
                   dedupe_key=f"mail.order:{order.id}")]
    if order.quantity == 1:
        jobs.extend(reminder_jobs(seats.tickets[0]["id"], webinar, seats.codes[0], now=now))
    else:
        jobs.extend(order_reminder_jobs(order.id, webinar, now=now))
    return jobs


async def issue_tickets(session: AsyncSession, order: Order, webinar: Webinar,
                        seat_types: list[uuid.UUID]) -> list[Ticket]:
    """Create the order's `quantity` tickets (seat `n` of type `seat_types[n]`) and queue
    `jobs_for_paid_order`, in this transaction. The caller has already taken the seats.
    """
    now = utcnow()
    seats = new_seats(order, webinar, seat_types, now=now)
    for name, value in seats.order_values.items():
        setattr(order, name, value)
    tickets = [Ticket(**row) for row in seats.tickets]
    session.add_all(tickets)
    await session.flush()
    await enqueue_many(session, jobs_for_paid_order(order, webinar, seats, now=now))
    return tickets


# Reminder mails: (name, how long before the start).
REMINDERS = (("24h", dt.timedelta(hours=24)), ("15m", dt.timedelta(minutes=15)))


def _reminder_prefix(ticket_id: uuid.UUID) -> str:
    return f"mail.reminder:{ticket_id}:"


def reminder_jobs(ticket_id: uuid.UUID, webinar: Webinar, code: str, *, now: dt.datetime) -> list[NewJob]:
    """The ticket's reminders that are still ahead (24 h and 15 min before the start).

    They carry the join code, as the join mail does; the dedupe key names the webinar's
    sequence, so a time change queues a fresh set instead of colliding with the old one.
    """
    return [
        NewJob("mail.reminder",
               {"ticket_id": str(ticket_id), "code": code, "which": which, "sequence": webinar.sequence},
               due_at=webinar.starts_at - before,
               dedupe_key=f"{_reminder_prefix(ticket_id)}{webinar.sequence}:{which}")
        for which, before in REMINDERS
        if webinar.starts_at - before > now
    ]


def order_reminder_jobs(order_id: uuid.UUID, webinar: Webinar, *, now: dt.datetime) -> list[NewJob]:
    """The buyer's reminders for the seats still on their order page (no link: the order
    page has them), keyed by the webinar's sequence like the seats' own reminders."""
    return [
        NewJob("mail.order_reminder", {"order_id": str(order_id), "which": which, "sequence": webinar.sequence},
               due_at=webinar.starts_at - before,
               dedupe_key=f"mail.order_reminder:{order_id}:{webinar.sequence}:{which}")
        for which, before in REMINDERS
        if webinar.starts_at - before > now
    ]


async def drop_pending_reminders(session: AsyncSession, ticket_id: uuid.UUID) -> None:
    """Delete the ticket's reminders not yet started (they carry a join code that is going away)."""
    await session.execute(
        delete(Job)
        .where(Job.status == JobStatus.QUEUED, Job.kind == "mail.reminder",
               Job.dedupe_key.startswith(_reminder_prefix(ticket_id), autoescape=True))
        .execution_options(synchronize_session=False)
    )


def seat_code(order_code: str, ticket: Ticket) -> str | None:
    """The seat's current join code, opened with the order code; None when the buyer no longer
    holds the seat (or its code was made where the order code was not known)."""
    code = sealing.unseal(sealing.page_private_key(order_code), ticket.code_sealed)
    return code if code is not None and hash_code(code) == ticket.code_hash else None


def buyer_holds(ticket: Ticket, order: Order) -> bool:
    """Whether the order's buyer holds this seat (not given to anyone else)."""
    return ticket.assigned_at is None or (ticket.email or "").lower() == (order.email or "").lower()


async def replace_code(session: AsyncSession, ticket: Ticket, order: Order, reason: str, *,
                       now: dt.datetime, new: tuple[str, str] | None = None) -> str:
    """Give `ticket` a new join code (`new`, or a fresh one) and return it. The old code's hash
    is kept with `reason` ("rescheduled", "resent", "reassigned", "restored"), so its link can
    say it was replaced instead of "not known"."""
    code, code_hash = new or new_code()
    await session.execute(
        insert(session, ReplacedCode)
        .values(code_hash=ticket.code_hash, ticket_id=ticket.id, reason=reason, replaced_at=now)
        .on_conflict_do_nothing(index_elements=["code_hash"])
    )
    ticket.code_hash = code_hash
    ticket.code_sealed = sealing.seal(order.page_key, code) if order.page_key and buyer_holds(ticket, order) else None
    return code


async def reissue(session: AsyncSession, ticket: Ticket, webinar: Webinar, kind: str, dedupe_key: str, *,
                  now: dt.datetime, reason: str, order: Order | None = None, **payload: object) -> bool:
    """Give `ticket` a new join code and queue the `kind` mail that carries it; the old link
    stops working (and says it was replaced, with `reason`) and the pending reminders move to
    the new code.

    Nothing happens (False) when a job with `dedupe_key` exists already, so a job that runs
    this twice never leaves a queued mail holding a code that no longer opens anything.
    """
    code, code_hash = new_code()
    if not await enqueue(session, kind, {"ticket_id": str(ticket.id), "code": code, **payload}, dedupe_key=dedupe_key):
        return False
    if order is None:
        order = await session.scalar(select(Order).where(Order.id == ticket.order_id))
    await replace_code(session, ticket, order, reason, now=now, new=(code, code_hash))
    ticket.delivery_status, ticket.delivery_error = TicketDelivery.QUEUED, None
    await drop_pending_reminders(session, ticket.id)
    await enqueue_many(session, reminder_jobs(ticket.id, webinar, code, now=now))
    return True


async def resend_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID, *,
                        now: dt.datetime | None = None) -> Ticket:
    """Send a ticket's join mail again with a new link (the old one stops working).

    NotFound for an unknown ticket, Forbidden for another organizer's, Conflict when the
    ticket no longer admits anyone.
    """
    now = now or utcnow()
    ticket, webinar = await _own_valid_ticket(session, organizer, ticket_id, "resend")
    # The dedupe key names the new code, so each resend is one mail and a retry is not a second.
    nonce = secrets.token_hex(8)
    order = await session.scalar(select(Order).where(Order.id == ticket.order_id))
    if ticket.assigned_at is None:
        ticket.assigned_at = now  # the seat's link now goes out by mail to its holder, the buyer
    await reissue(session, ticket, webinar, "mail.resend", f"mail.resend:{ticket.id}:{nonce}", now=now,
                  reason="resent", order=order)
    await session.flush()
    return ticket


# Why a ticket cannot be acted on, by action: (the ticket no longer valid, its webinar no longer scheduled).
_NOT_NOW = {
    "resend": (N_("this ticket is %(state)s; it cannot be sent again"),
               N_("this webinar is %(state)s; its tickets cannot be sent again")),
    "change": (N_("this ticket is %(state)s; it cannot be changed"),
               N_("this webinar is %(state)s; its tickets cannot be changed")),
}


async def _own_valid_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID,
                            action: str) -> tuple[Ticket, Webinar]:
    """The organizer's ticket, locked, that still admits someone; NotFound, Forbidden or Conflict."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())
    if ticket is None:
        raise NotFound("no such ticket")
    webinar = await session.scalar(select(Webinar).where(Webinar.id == ticket.webinar_id))
    if webinar is None:
        raise NotFound("no such ticket")
    if webinar.organizer_id != organizer.id:
        raise Forbidden("this ticket belongs to another organizer's webinar")
    ticket_gone, webinar_gone = _NOT_NOW[action]
    if ticket.status != TicketStatus.VALID:
        raise Conflict(Text(ticket_gone, state=ticket.status.value))
    if webinar.status != WebinarStatus.SCHEDULED:
        raise Conflict(Text(webinar_gone, state=webinar.status.value))
    return ticket, webinar


async def update_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID,
                        data: dict[str, object]) -> Ticket:
    """Correct a ticket's address (e.g. after the mail server refused it); the organizer then
    resends, which mails a new link there. Invalid for a missing or malformed `email`;
    NotFound, Forbidden, or Conflict for a ticket that no longer admits anyone."""
    ticket, _ = await _own_valid_ticket(session, organizer, ticket_id, "change")
    email = data.get("email")
    if not isinstance(email, str) or not email.strip():
        raise Invalid(Text(N_("email is required: the address the ticket's mails go to")), field="email")
    email = email_address(email)
    ticket.email = email
    await session.flush()
    return ticket


async def revoke_tickets(session: AsyncSession, tickets: list[Ticket], reason: str, *,
                         refund_amount: int | None = None) -> int:
    """Revoke the valid ones among `tickets`, free their seats and queue one notice per holder:
    each given seat's holder hears of it, and the buyer once for the seats still with them.
    `refund_amount` (minor units), when a refund of these tickets was asked for, goes in the notice."""
    revoked = [t for t in tickets if t.status == TicketStatus.VALID]
    if not revoked:
        return 0
    now = utcnow()
    for ticket in revoked:
        ticket.status = TicketStatus.REVOKED
        ticket.revoked_reason = reason
        ticket.revoked_at = now
    by_webinar: dict[uuid.UUID, Counter[uuid.UUID]] = {}
    for ticket in revoked:
        by_webinar.setdefault(ticket.webinar_id, Counter())[ticket.ticket_type_id] += 1
    await session.flush()
    for webinar_id, counts in sorted(by_webinar.items()):
        await free_seats(session, webinar_id, counts)
    buyers = dict((await session.execute(
        select(Order.id, Order.email).where(Order.id.in_({t.order_id for t in revoked}))
    )).all())
    by_order: dict[uuid.UUID, list[Ticket]] = {}
    for ticket in revoked:
        by_order.setdefault(ticket.order_id, []).append(ticket)
    extra: dict[str, Any] = {"reason": reason}
    if refund_amount is not None:
        extra["refund_amount"] = refund_amount
    for order_id, seats in by_order.items():
        buyer = (buyers.get(order_id) or "").lower()
        given = [t for t in seats if t.assigned_at is not None and (t.email or "").lower() != buyer]
        for ticket in given:
            await enqueue(session, "mail.revoked", {"ticket_id": str(ticket.id), **extra},
                          dedupe_key=f"mail.revoked:{ticket.id}")
        # The buyer hears once for the whole order: their own seats, and the seats they gave
        # away (whose holders were told above; the refund, if any, is the buyer's).
        own = [t for t in seats if t not in given]
        given_ids = [str(t.id) for t in given]
        if own:
            await enqueue(session, "mail.revoked", {"ticket_id": str(own[0].id), "given": given_ids, **extra},
                          dedupe_key=f"mail.revoked:{own[0].id}")
        elif buyer:
            await enqueue(session, "mail.revoked", {"ticket_id": str(given[0].id), "to_buyer": True,
                                                    "given": given_ids, **extra},
                          dedupe_key=f"mail.revoked:buyer:{given[0].id}")
    return len(revoked)


async def order_tickets(session: AsyncSession, order_id: uuid.UUID) -> list[Ticket]:
    return list(await session.scalars(select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.seq)))


async def ticket_for_code(session: AsyncSession, code: str) -> Ticket | None:
    """The ticket a join code belongs to. Lookup is by SHA-256 of the code, never the code."""
    return await session.scalar(select(Ticket).where(Ticket.code_hash == hash_code(code)))
