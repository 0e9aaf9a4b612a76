"""Reading the secrets a paid order's jobs carry, as the buyer's mail would: the order page
code, and the join code of each seat the buyer holds (opened with that order code)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from ticketing.db.models import Job, Order, Ticket
from ticketing.tickets.service import seat_code


async def order_codes(sessionmaker) -> dict[uuid.UUID, str]:
    """Order id → order page code, from the queued `mail.order` jobs (before the worker clears them)."""
    async with sessionmaker() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "mail.order").order_by(Job.id)))
    return {uuid.UUID(j.payload["order_id"]): j.payload["code"] for j in jobs if "code" in j.payload}


async def join_codes(sessionmaker, *, webinar_id: uuid.UUID | None = None) -> dict[uuid.UUID, str]:
    """Ticket id → current join code of every seat still with its buyer, in order and seat order."""
    codes = await order_codes(sessionmaker)
    async with sessionmaker() as session:
        query = select(Ticket).join(Order, Order.id == Ticket.order_id).where(Order.id.in_(list(codes)))
        if webinar_id is not None:
            query = query.where(Ticket.webinar_id == webinar_id)
        tickets = list(await session.scalars(query.order_by(Order.created_at, Ticket.seq)))
    found = {}
    for ticket in tickets:
        code = seat_code(codes[ticket.order_id], ticket)
        if code is not None:
            found[ticket.id] = code
    return found
