"""Taking and freeing seats: the webinar's count and, once the webinar is typed, its types'; seats freed
while people wait on the webinar's waitlist queue the job that offers them.

Every seat is taken by a conditional UPDATE that cannot pass a capacity, the webinar's row
first and then the types' rows in id order, so two transactions always lock in the same
order. The webinar's UPDATE returns `typed` as it is under that row lock: a webinar becoming
typed (ticketing.orders.ticket_types) locks the same row before it copies the webinar's
count to its default type, so no seat is counted on one side only. The fast path of a flash
sale (payments/fulfilment.py) takes seats of untyped webinars only, with its own statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.models import TicketType, WaitlistEntry, Webinar, WebinarStatus
from ticketing.jobs import enqueue

WEBINARS, TYPES, ENTRIES = Webinar.__table__, TicketType.__table__, WaitlistEntry.__table__
# Offers the webinar's free seats to its waitlist (ticketing.waitlist.jobs).
OFFER_JOB = "waitlist.offer"


async def take_seats(session: AsyncSession, webinar_id: uuid.UUID, counts: Mapping[uuid.UUID, int], *,
                     scheduled_only: bool = False) -> bool:
    """Take `counts` seats (by ticket type) of the webinar if both it and each type have them;
    False, with nothing taken, when any of them is full."""
    total = sum(counts.values())
    condition = (WEBINARS.c.id == webinar_id) & (
        WEBINARS.c.capacity.is_(None) | (WEBINARS.c.seats_taken + total <= WEBINARS.c.capacity))
    if scheduled_only:
        condition &= WEBINARS.c.status == WebinarStatus.SCHEDULED.value
    row = (await session.execute(
        update(WEBINARS).where(condition).values(seats_taken=WEBINARS.c.seats_taken + total)
        .returning(WEBINARS.c.typed))).first()
    if row is None:
        return False
    if not row.typed:
        return True
    taken: dict[uuid.UUID, int] = {}
    for type_id, count in sorted(counts.items()):
        result = await session.execute(
            update(TYPES)
            .where(TYPES.c.id == type_id, TYPES.c.webinar_id == webinar_id,
                   TYPES.c.capacity.is_(None) | (TYPES.c.seats_taken + count <= TYPES.c.capacity))
            .values(seats_taken=TYPES.c.seats_taken + count))
        if result.rowcount != 1:
            # Give back what this call took; this transaction keeps the rows locked meanwhile.
            await session.execute(update(WEBINARS).where(WEBINARS.c.id == webinar_id)
                                  .values(seats_taken=WEBINARS.c.seats_taken - total))
            await _free_types(session, webinar_id, taken)
            return False
        taken[type_id] = count
    return True


async def free_seats(session: AsyncSession, webinar_id: uuid.UUID, counts: Mapping[uuid.UUID, int]) -> None:
    """Give back `counts` seats (by ticket type) of the webinar, e.g. of revoked tickets."""
    total = sum(counts.values())
    if not total:
        return
    row = (await session.execute(
        update(WEBINARS).where(WEBINARS.c.id == webinar_id).values(seats_taken=WEBINARS.c.seats_taken - total)
        .returning(WEBINARS.c.typed))).first()
    if row is not None and row.typed:
        await _free_types(session, webinar_id, counts)
    await offer_freed_seats(session, webinar_id)


async def offer_freed_seats(session: AsyncSession, webinar_id: uuid.UUID) -> None:
    """Queue the waitlist's offer job when confirmed people wait: seats came free, or more
    of them (a capacity raised). Its row commits with what freed them."""
    waiting = await session.scalar(
        select(ENTRIES.c.id).where(ENTRIES.c.webinar_id == webinar_id, ENTRIES.c.confirmed_at.is_not(None),
                                   ENTRIES.c.outcome.is_(None), ENTRIES.c.offered_at.is_(None)).limit(1))
    if waiting is not None:
        await enqueue(session, OFFER_JOB, {"webinar_id": str(webinar_id)})


async def _free_types(session: AsyncSession, webinar_id: uuid.UUID, counts: Mapping[uuid.UUID, int]) -> None:
    for type_id, count in sorted(counts.items()):
        await session.execute(update(TYPES).where(TYPES.c.id == type_id, TYPES.c.webinar_id == webinar_id)
                              .values(seats_taken=TYPES.c.seats_taken - count))
