"""Order mails claimed together read their orders together: one SELECT for the batch, and
each mail still carries its own buyer's order and links."""

from __future__ import annotations

import uuid

from sqlalchemy import event, select

from tests import factories
from tests.mail.test_delivery import ORDER_LINK, buy, jobs, links
from ticketing.db.models import JobStatus, Order, Ticket, TicketDelivery
from ticketing.jobs import enqueue
from ticketing.tickets.service import hash_code, seat_code, ticket_for_code


async def test_order_mails_of_one_batch_share_one_read_and_each_is_its_buyers(make_settings, smtp, start_client,
                                                                            sessionmaker, engine, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    buyers = [f"buyer{n}@example.com" for n in range(4)]
    for email in buyers:
        await buy(client, webinar, email=email)
    await buy(client, webinar, email="pair@example.com", quantity=2)
    # An order mail whose order is gone by its turn: skipped, and no harm to the others.
    async with sessionmaker.begin() as session:
        await enqueue(session, "mail.order", {"order_id": str(uuid.uuid4()), "code": "x" * 43})

    reads = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM orders" in statement:
            reads.append(statement)

    assert await make_worker(settings, concurrency=10).run_once() == 6
    event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(reads) == 1
    assert {j.status for j in await jobs(sessionmaker, "mail.order")} == {JobStatus.DONE}

    async with sessionmaker() as session:
        orders = {o.email: o for o in await session.scalars(select(Order))}
        for email in buyers:
            [message] = smtp.to(email)
            [code] = links(message)
            [order_code] = ORDER_LINK.findall(message.get_body(preferencelist=("plain",)).get_content())
            order = orders[email]
            assert order.code_hash == hash_code(order_code)
            ticket = await ticket_for_code(session, code)
            assert ticket is not None and ticket.order_id == order.id and ticket.email == email
        [pair] = smtp.to("pair@example.com")
        assert links(pair) == []
        [order_code] = ORDER_LINK.findall(pair.get_body(preferencelist=("plain",)).get_content())
        seats = list(await session.scalars(select(Ticket).where(Ticket.order_id == orders["pair@example.com"].id)))
        assert len(seats) == 2 and all(seat_code(order_code, t) is not None for t in seats)
        assert {t.delivery_status for t in await session.scalars(select(Ticket))} == {TicketDelivery.SENT}
    assert len(smtp.messages) == 5
