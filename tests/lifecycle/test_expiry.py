"""The expiry sweep: webinars end and tickets expire exactly after ends_at + grace."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from tests import factories
from tests.lifecycle.conftest import pay
from ticketing.db.models import Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.lifecycle.webinars import expire, expire_ended


async def _state(sessionmaker, webinar_id):
    async with sessionmaker() as db:
        webinar = await db.get(Webinar, webinar_id)
        tickets = list(await db.scalars(select(Ticket).where(Ticket.webinar_id == webinar_id)))
    return webinar.status, sorted(t.status for t in tickets)


async def test_sweep_ends_webinar_and_expires_tickets_only_after_grace(client, sessionmaker, settings, make_context):
    webinar = await factories.webinar(sessionmaker)
    later = await factories.webinar(sessionmaker, starts_at=(webinar.starts_at + dt.timedelta(days=1)).isoformat(),
                                    ends_at=(webinar.ends_at + dt.timedelta(days=1)).isoformat())
    await pay(client, webinar, quantity=2)
    await pay(client, later)
    boundary = webinar.ends_at + dt.timedelta(minutes=settings.join_grace_minutes)

    async with sessionmaker.begin() as db:
        assert await expire_ended(db, now=boundary, grace_minutes=settings.join_grace_minutes) == ([], 0)
    assert await _state(sessionmaker, webinar.id) == (WebinarStatus.SCHEDULED, [TicketStatus.VALID] * 2)

    async with sessionmaker.begin() as db:
        ended, expired = await expire_ended(db, now=boundary + dt.timedelta(microseconds=1),
                                            grace_minutes=settings.join_grace_minutes)
    assert (ended, expired) == ([webinar.id], 2)
    assert await _state(sessionmaker, webinar.id) == (WebinarStatus.ENDED, [TicketStatus.EXPIRED] * 2)
    assert await _state(sessionmaker, later.id) == (WebinarStatus.SCHEDULED, [TicketStatus.VALID])

    # A second sweep (another worker, or the next round) changes nothing.
    async with sessionmaker.begin() as db:
        assert await expire_ended(db, now=boundary + dt.timedelta(hours=1), grace_minutes=settings.join_grace_minutes) == ([], 0)


async def test_periodic_task_uses_the_configured_grace(client, sessionmaker, make_settings, make_context):
    settings = make_settings(join_grace_minutes="0")
    webinar = await factories.webinar(sessionmaker)
    await pay(client, webinar)
    ctx = await make_context(settings)
    await expire(ctx, now=webinar.ends_at)
    assert await _state(sessionmaker, webinar.id) == (WebinarStatus.SCHEDULED, [TicketStatus.VALID])
    await expire(ctx, now=webinar.ends_at + dt.timedelta(seconds=1))
    assert await _state(sessionmaker, webinar.id) == (WebinarStatus.ENDED, [TicketStatus.EXPIRED])


async def test_ended_webinar_cannot_be_cancelled_or_bought(client, sessionmaker, settings):
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    async with sessionmaker.begin() as db:
        await expire_ended(db, now=webinar.ends_at + dt.timedelta(hours=1), grace_minutes=settings.join_grace_minutes)
    response = await client.post(f"/api/webinars/{webinar.id}/cancel", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conflict"
    response = await client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1})
    assert response.status == 409
