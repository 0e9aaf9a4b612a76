"""The migration to ticket types carries every webinar, order and ticket over unchanged: each
webinar gets one default type at its price, each ticket that type, and nothing else moves."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tests import factories
from ticketing.db import create_engine, migrate
from ticketing.db.models import Order, OrderLine, OrderStatus, Ticket, TicketType, Webinar
from ticketing.orders.ticket_types import seats_left

BEFORE = "0011_console_language_messages"


async def test_existing_webinars_orders_and_tickets_come_through_with_a_default_type(client, database_url, engine):
    from sqlalchemy.ext.asyncio import async_sessionmaker

    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    paid = await factories.webinar(sessionmaker, price_amount=2500, capacity=10)
    free = await factories.webinar(sessionmaker, price_amount=0, capacity=None)
    evt = factories.event("checkout.session.completed", factories.checkout_session(paid, quantity=3))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    await engine.dispose()

    await asyncio.to_thread(migrate.downgrade, database_url, BEFORE)
    await asyncio.to_thread(migrate.upgrade, database_url)

    again = create_engine(database_url)
    try:
        async with async_sessionmaker(again, expire_on_commit=False)() as session:
            kinds = {k.webinar_id: k for k in await session.scalars(select(TicketType))}
            webinars = {w.id: w for w in await session.scalars(select(Webinar))}
            order = await session.scalar(select(Order))
            tickets = list(await session.scalars(select(Ticket)))
            lines = list(await session.scalars(select(OrderLine)))
    finally:
        await again.dispose()
    assert set(kinds) == {paid.id, free.id}
    for webinar_id, kind in kinds.items():
        webinar = webinars[webinar_id]
        assert kind.is_default and kind.name == "Ticket" and kind.price_amount == webinar.price_amount
        assert kind.capacity is None and kind.sales_start is None and kind.sales_end is None and not kind.hidden
        assert webinar.typed is False
    assert webinars[paid.id].seats_taken == 3 and seats_left(kinds[paid.id], webinars[paid.id]) == 7
    assert order.status == OrderStatus.PAID and order.quantity == 3 and lines == []
    assert len(tickets) == 3 and {t.ticket_type_id for t in tickets} == {kinds[paid.id].id}
