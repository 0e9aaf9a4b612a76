"""Tickets: issuing them with their join codes, revoking them, finding one by its code."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import Job, JobStatus, Order, Organizer, Ticket, TicketDelivery, TicketStatus, Webinar, WebinarStatus
from ticketing.errors import Conflict, Forbidden, Invalid, NotFound
from ticketing.inputs import email_address
from ticketing.jobs import NewJob, enqueue, enqueue_many

# 32 random bytes: 256 bits from the CSPRNG, 43 URL-safe characters.
CODE_BYTES = 32


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> tuple[str, str]:
    """A fresh join code and the hash that is all the database keeps of it."""
    code = secrets.token_urlsafe(CODE_BYTES)
    return code, hash_code(code)


async def issue_tickets(session: AsyncSession, order: Order, webinar: Webinar) -> list[Ticket]:
    """Create the order's `quantity` tickets and queue one join mail each, in this transaction.

    The caller has already taken the seats. The join code travels only in the mail job's
    payload, which the mail job clears once the mail is out.
    """
    tickets = []
    for seq in range(order.quantity):
        code, code_hash = new_code()
        ticket = Ticket(
            id=uuid.uuid4(),
            order_id=order.id,
            webinar_id=webinar.id,
            seq=seq,
            email=order.email or "",
            name=order.buyer_name or "",
            code_hash=code_hash,
            status=TicketStatus.VALID,
            join_count=0,
        )
        tickets.append((ticket, code))
    session.add_all([ticket for ticket, _ in tickets])
    await session.flush()
    now = utcnow()
    jobs = []
    for ticket, code in tickets:
        jobs.append(NewJob("mail.join", {"ticket_id": str(ticket.id), "code": code}, dedupe_key=f"mail.join:{ticket.id}"))
        jobs.extend(reminder_jobs(ticket, webinar, code, now=now))
    await enqueue_many(session, jobs)
    return [ticket for ticket, _ in tickets]


# Reminder mails: (name, how long before the start).
REMINDERS = (("24h", dt.timedelta(hours=24)), ("15m", dt.timedelta(minutes=15)))


def _reminder_prefix(ticket_id: uuid.UUID) -> str:
    return f"mail.reminder:{ticket_id}:"


def reminder_jobs(ticket: Ticket, webinar: Webinar, code: str, *, now: dt.datetime) -> list[NewJob]:
    """The ticket's reminders that are still ahead (24 h and 15 min before the start).

    They carry the join code, as the join mail does; the dedupe key names the webinar's
    sequence, so a time change queues a fresh set instead of colliding with the old one.
    """
    return [
        NewJob("mail.reminder",
               {"ticket_id": str(ticket.id), "code": code, "which": which, "sequence": webinar.sequence},
               due_at=webinar.starts_at - before,
               dedupe_key=f"{_reminder_prefix(ticket.id)}{webinar.sequence}:{which}")
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


async def reissue(session: AsyncSession, ticket: Ticket, webinar: Webinar, kind: str, dedupe_key: str, *,
                  now: dt.datetime, **payload: object) -> bool:
    """Give `ticket` a new join code and queue the `kind` mail that carries it; the old link
    stops working and the pending reminders move to the new code.

    Nothing happens (False) when a job with `dedupe_key` exists already, so a job that runs
    this twice never leaves a queued mail holding a code that no longer opens anything.
    """
    code, code_hash = new_code()
    if not await enqueue(session, kind, {"ticket_id": str(ticket.id), "code": code, **payload}, dedupe_key=dedupe_key):
        return False
    ticket.code_hash = code_hash
    ticket.delivery_status, ticket.delivery_error = TicketDelivery.QUEUED, None
    await drop_pending_reminders(session, ticket.id)
    await enqueue_many(session, reminder_jobs(ticket, webinar, code, now=now))
    return True


async def resend_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID, *,
                        now: dt.datetime | None = None) -> Ticket:
    """Send a ticket's join mail again with a new link (the old one stops working).

    NotFound for an unknown ticket, Forbidden for another organizer's, Conflict when the
    ticket no longer admits anyone.
    """
    now = now or utcnow()
    ticket, webinar = await _own_valid_ticket(session, organizer, ticket_id, "sent again")
    # The dedupe key names the new code, so each resend is one mail and a retry is not a second.
    nonce = secrets.token_hex(8)
    await reissue(session, ticket, webinar, "mail.resend", f"mail.resend:{ticket.id}:{nonce}", now=now)
    await session.flush()
    return ticket


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
    if ticket.status != TicketStatus.VALID:
        raise Conflict(f"this ticket is {ticket.status.value}; it cannot be {action}")
    if webinar.status != WebinarStatus.SCHEDULED:
        raise Conflict(f"this webinar is {webinar.status.value}; its tickets cannot be {action}")
    return ticket, webinar


async def update_ticket(session: AsyncSession, organizer: Organizer, ticket_id: uuid.UUID,
                        data: dict[str, object]) -> Ticket:
    """Correct a ticket's address (e.g. after the mail server refused it); the organizer then
    resends, which mails a new link there. Invalid for a missing or malformed `email`;
    NotFound, Forbidden, or Conflict for a ticket that no longer admits anyone."""
    ticket, _ = await _own_valid_ticket(session, organizer, ticket_id, "changed")
    email = data.get("email")
    if not isinstance(email, str) or not email.strip():
        raise Invalid("email is required: the address the ticket's mails go to", field="email")
    email = email_address(email)
    ticket.email = email
    await session.flush()
    return ticket


async def revoke_tickets(session: AsyncSession, tickets: list[Ticket], reason: str) -> int:
    """Revoke the valid ones among `tickets`, free their seats and queue one notice each."""
    revoked = [t for t in tickets if t.status == TicketStatus.VALID]
    if not revoked:
        return 0
    now = utcnow()
    for ticket in revoked:
        ticket.status = TicketStatus.REVOKED
        ticket.revoked_reason = reason
        ticket.revoked_at = now
    by_webinar: dict[uuid.UUID, int] = {}
    for ticket in revoked:
        by_webinar[ticket.webinar_id] = by_webinar.get(ticket.webinar_id, 0) + 1
    for webinar_id, count in by_webinar.items():
        await session.execute(
            update(Webinar).where(Webinar.id == webinar_id).values(seats_taken=Webinar.seats_taken - count)
        )
    await session.flush()
    for ticket in revoked:
        await enqueue(session, "mail.revoked", {"ticket_id": str(ticket.id), "reason": reason},
                      dedupe_key=f"mail.revoked:{ticket.id}")
    return len(revoked)


async def order_tickets(session: AsyncSession, order_id: uuid.UUID) -> list[Ticket]:
    return list(await session.scalars(select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.seq)))


async def ticket_for_code(session: AsyncSession, code: str) -> Ticket | None:
    """The ticket a join code belongs to. Lookup is by SHA-256 of the code, never the code."""
    return await session.scalar(select(Ticket).where(Ticket.code_hash == hash_code(code)))
