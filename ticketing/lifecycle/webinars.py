"""The end of a webinar: cancelling it (every paid order refunded, every ticket revoked) and
the sweep that ends webinars and expires their tickets once their time is over."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.access.end_meeting import queue_end_meeting
from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, Organizer, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.errors import N_, Conflict, Text
from ticketing.jobs import enqueue
from ticketing.jobs.registry import JobContext, PermanentError, job, periodic
from ticketing.orders.service import lock_order, settle
from ticketing.settings import Settings
from ticketing.webinars.service import get_own_webinar, get_webinar

logger = logging.getLogger(__name__)

# The job that settles a cancelled webinar's orders again, a little later: it picks up an
# order whose payment was being recorded while the webinar was being cancelled, and it
# finishes the work if the process died before the request's own pass was through.
SETTLE_CANCELLED = "webinar.settle_cancelled"
SETTLE_CANCELLED_DELAY = dt.timedelta(minutes=1)


def is_over(webinar: Webinar, *, now: dt.datetime, grace_minutes: int) -> bool:
    """Past `ends_at` + grace: join links no longer work and the sweep ends the webinar."""
    return now > webinar.ends_at + dt.timedelta(minutes=grace_minutes)


async def cancel_webinar(
    sessionmaker: async_sessionmaker[AsyncSession], organizer: Organizer, webinar_id: uuid.UUID,
    *, grace_minutes: int, now: dt.datetime | None = None, settings: Settings | None = None,
) -> Webinar:
    """Cancel an organizer's webinar and settle its paid orders (each then refunded by a job).

    The status changes in its own short transaction, so checkouts and join links stop at
    once; each order is then settled under its own row lock and in its own transaction, the
    same lock order (order, then webinar) a webhook takes, so the two never deadlock.
    With `settings` whose TICKETING_JITSI_END_MEETING_URL is set, Jitsi is asked to end the
    conference too. Raises NotFound, Forbidden, or Conflict when the webinar is cancelled or over already.
    """
    now = now or utcnow()
    async with sessionmaker.begin() as session:
        webinar = await get_own_webinar(session, organizer, webinar_id, for_update=True)
        if webinar.status == WebinarStatus.CANCELLED:
            raise Conflict(Text(N_("this webinar is already cancelled")))
        if webinar.status == WebinarStatus.ENDED or is_over(webinar, now=now, grace_minutes=grace_minutes):
            raise Conflict(Text(N_("this webinar has already ended")))
        webinar.status = WebinarStatus.CANCELLED
        webinar.cancelled_at = now
        await enqueue(session, SETTLE_CANCELLED, {"webinar_id": str(webinar.id)}, due_at=now + SETTLE_CANCELLED_DELAY,
                      dedupe_key=f"{SETTLE_CANCELLED}:{webinar.id}")
        if settings is not None:
            await queue_end_meeting(session, settings, webinar.id, now=now)
    logger.info("webinar cancelled", extra={"webinar_id": str(webinar_id)})
    await settle_cancelled_orders(sessionmaker, webinar_id)
    async with sessionmaker() as session:
        return await get_webinar(session, webinar_id)


async def settle_cancelled_orders(sessionmaker: async_sessionmaker[AsyncSession], webinar_id: uuid.UUID) -> int:
    """Settle every paid order of a cancelled webinar not settled yet; returns how many. Idempotent."""
    async with sessionmaker() as session:
        order_ids = list(await session.scalars(
            select(Order.id).where(
                Order.webinar_id == webinar_id,
                Order.paid_at.is_not(None),
                Order.status.notin_([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
            ).order_by(Order.created_at, Order.id)
        ))
    settled = 0
    for order_id in order_ids:
        async with sessionmaker.begin() as session:
            order = await lock_order(session, order_id)
            if order is not None:
                await settle(session, order)
                settled += 1
    return settled


@job(SETTLE_CANCELLED)
async def settle_cancelled(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The delayed second pass over a cancelled webinar's orders."""
    try:
        webinar_id = uuid.UUID(str(payload.get("webinar_id")))
    except ValueError:
        raise PermanentError(f"payload webinar_id is not an id: {payload.get('webinar_id')!r}") from None
    count = await settle_cancelled_orders(ctx.sessionmaker, webinar_id)
    if count:
        logger.info("cancelled webinar's late orders settled", extra={"webinar_id": str(webinar_id), "orders": count})


async def expire_ended(session: AsyncSession, *, now: dt.datetime, grace_minutes: int) -> tuple[list[uuid.UUID], int]:
    """End the webinars whose `ends_at` + grace is before `now` and expire their valid tickets.

    Conditional UPDATEs only, so any number of workers may run this at once: each row
    changes once. Returns the ids of the webinars this call ended and how many tickets it expired.
    """
    cutoff = now - dt.timedelta(minutes=grace_minutes)
    due = list(await session.scalars(
        select(Webinar.id).where(Webinar.status == WebinarStatus.SCHEDULED, Webinar.ends_at < cutoff)
    ))
    ended: list[uuid.UUID] = []
    if due:
        result = await session.execute(
            update(Webinar)
            .where(Webinar.id.in_(due), Webinar.status == WebinarStatus.SCHEDULED, Webinar.ends_at < cutoff)
            .values(status=WebinarStatus.ENDED, updated_at=now)
            .returning(Webinar.id)
            .execution_options(synchronize_session=False)
        )
        ended = list(result.scalars())
    result = await session.execute(
        update(Ticket)
        .where(Ticket.status == TicketStatus.VALID, Ticket.webinar_id.in_(select(Webinar.id).where(Webinar.ends_at < cutoff)))
        .values(status=TicketStatus.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return ended, result.rowcount


@periodic("webinars.expire")
async def expire(ctx: JobContext, *, now: dt.datetime | None = None) -> None:
    """Every sweep: end the webinars that are over and expire their tickets (and, when
    configured, ask Jitsi to end their conferences)."""
    now = now or utcnow()
    async with ctx.sessionmaker.begin() as session:
        ended, expired = await expire_ended(session, now=now, grace_minutes=ctx.settings.join_grace_minutes)
        for webinar_id in ended:
            await queue_end_meeting(session, ctx.settings, webinar_id, now=now)
    if ended or expired:
        logger.info("webinars ended", extra={"webinars": len(ended), "tickets_expired": expired})
