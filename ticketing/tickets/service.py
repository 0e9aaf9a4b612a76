"""Tickets: issuing them with their join codes, revoking them, finding one by its code."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import Order, Ticket, TicketStatus, Webinar
from ticketing.jobs import enqueue

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
        session.add(ticket)
        tickets.append((ticket, code))
    await session.flush()
    for ticket, code in tickets:
        await enqueue(session, "mail.join", {"ticket_id": str(ticket.id), "code": code},
                      dedupe_key=f"mail.join:{ticket.id}")
    return [ticket for ticket, _ in tickets]


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
