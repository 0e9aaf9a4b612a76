"""The fast path for a new paid checkout (payments/fulfilment.py): it takes the plain cases in
one transaction and leaves every other case, untouched, to the full path."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import uuid

import pytest
from sqlalchemy import event, func, select

from tests import factories
from ticketing.db import is_unavailable, utcnow
from ticketing.db.models import (
    Job,
    Order,
    OrderStatus,
    StripeEvent,
    Ticket,
    TicketDelivery,
    TicketStatus,
    Webinar,
    WebinarStatus,
)
from ticketing.jobs.queue import CHANNEL
from ticketing.orders.service import attach_checkout_session, start_order
from ticketing.payments.fulfilment import fulfil_plain_checkout
from ticketing.payments.webhooks import _event_row, receive_webhook, store_event
from ticketing.tickets.service import hash_code


def _completed(webinar, **kwargs):
    return factories.event("checkout.session.completed", factories.checkout_session(webinar, **kwargs))


async def _fast(engine, settings, evt):
    row = _event_row(evt)
    return await fulfil_plain_checkout(engine, settings, evt, row, now=row["received_at"])


async def _counts(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        return {model.__tablename__: await session.scalar(select(func.count()).select_from(model))
                for model in (StripeEvent, Order, Ticket, Job)}


async def test_a_plain_checkout_is_fulfilled_in_one_go(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker, capacity=5)
    evt = _completed(webinar, quantity=2, email="bea@example.com")
    assert await _fast(engine, settings, evt) == "order_paid"
    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.stripe_session_id == evt["data"]["object"]["id"]))
        tickets = list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))
        jobs = list(await session.scalars(select(Job)))
        stored = await session.get(StripeEvent, evt["id"])
        seats = (await session.get(Webinar, webinar.id)).seats_taken
    created = dt.datetime.fromtimestamp(evt["created"], dt.UTC)
    assert order.status == OrderStatus.PAID and order.email == "bea@example.com"
    # Stripe's event time, as the full path takes it.
    assert order.paid_at == order.completed_at == created
    assert order.expected_amount == order.amount_total == webinar.price_amount * 2
    assert sorted(t.seq for t in tickets) == [0, 1] and {t.email for t in tickets} == {"bea@example.com"}
    # The seats wait on the order page: sealed codes, not yet given out.
    assert all(t.code_sealed and t.assigned_at is None for t in tickets)
    # One mail to the buyer, carrying the order page code; no join mail per ticket.
    [mail] = [j for j in jobs if j.kind.startswith("mail.") and j.kind != "mail.order_reminder"]
    assert mail.kind == "mail.order" and mail.payload["order_id"] == str(order.id)
    assert order.code_hash == hash_code(mail.payload["code"]) and order.page_key
    assert {j.kind for j in jobs} <= {"mail.order", "mail.order_reminder"}
    assert stored.outcome == "order_paid" and stored.processed_at is not None
    assert seats == 2


async def test_our_own_pending_order_is_paid_by_the_fast_path(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        order, _ = await start_order(session, webinar.id, 2, "mine@example.com")
        await attach_checkout_session(session, order.id, "cs_test_ours")
    evt = _completed(webinar, quantity=2, session_id="cs_test_ours", order_id=order.id, email="stripe@example.com")
    assert await _fast(engine, settings, evt) == "order_paid"
    async with sessionmaker() as session:
        orders = list(await session.scalars(select(Order)))
    assert [(o.id, o.status, o.email) for o in orders] == [(order.id, OrderStatus.PAID, "mine@example.com")]
    assert (await _counts(sessionmaker))["tickets"] == 2


@pytest.mark.parametrize("case", ["full", "cancelled", "ended", "sales_closed", "duplicate_event", "paid_already", "wrong_amount",
                                  "unpaid", "early_refund", "unknown_webinar", "bad_quantity", "order_id_taken"])
async def test_anything_else_is_left_to_the_full_path_with_nothing_written(engine, settings, sessionmaker, case):
    webinar = await factories.webinar(sessionmaker, capacity=1)
    evt = _completed(webinar)
    obj = evt["data"]["object"]
    if case == "full":
        assert await _fast(engine, settings, _completed(webinar)) == "order_paid"
    elif case in ("cancelled", "ended", "sales_closed"):
        async with sessionmaker.begin() as session:
            stored = await session.get(Webinar, webinar.id)
            if case == "cancelled":
                stored.status = WebinarStatus.CANCELLED
            elif case == "sales_closed":
                stored.sales_end = utcnow() - dt.timedelta(minutes=5)
            else:
                stored.starts_at, stored.ends_at = utcnow().replace(year=2000), utcnow().replace(year=2001)
    elif case == "duplicate_event":
        await store_event(sessionmaker, evt)
    elif case == "paid_already":
        assert await _fast(engine, settings, _completed(webinar, session_id=obj["id"])) == "order_paid"
    elif case == "wrong_amount":
        obj["amount_total"] -= 1
    elif case == "unpaid":
        obj["payment_status"] = "unpaid"
    elif case == "early_refund":
        refund = factories.event("charge.refunded", factories.charge(obj["payment_intent"], amount=2500,
                                                                     amount_refunded=2500))
        await store_event(sessionmaker, refund)
        async with sessionmaker.begin() as session:
            (await session.get(StripeEvent, refund["id"])).outcome = "unmatched"
    elif case == "unknown_webinar":
        obj["metadata"]["webinar_id"] = str(uuid.uuid4())
    elif case == "bad_quantity":
        obj["metadata"]["quantity"] = "0"
    elif case == "order_id_taken":
        # Our order id names an order that is not this session's: the insert clashes on the id.
        async with sessionmaker.begin() as session:
            order, _ = await start_order(session, webinar.id, 1, "other@example.com")
            await attach_checkout_session(session, order.id, "cs_test_another")
        obj["metadata"]["order_id"] = obj["client_reference_id"] = str(order.id)
    before = await _counts(sessionmaker)
    async with sessionmaker() as session:
        seats = (await session.get(Webinar, webinar.id)).seats_taken

    assert await _fast(engine, settings, evt) is None
    assert await _counts(sessionmaker) == before
    async with sessionmaker() as session:
        assert (await session.get(Webinar, webinar.id)).seats_taken == seats


async def test_a_one_seat_order_gets_its_seat_and_reminders_as_the_full_path_gives_them(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    evt = _completed(webinar, quantity=1)
    assert await _fast(engine, settings, evt) == "order_paid"
    async with sessionmaker() as session:
        [ticket] = list(await session.scalars(select(Ticket)))
        kinds = sorted(j.kind for j in await session.scalars(select(Job)))
    assert ticket.assigned_at is not None and ticket.code_sealed
    assert kinds == ["mail.order", "mail.reminder", "mail.reminder"]


async def test_a_checkout_completed_before_the_sales_end_is_kept_however_late_it_arrives(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        (await session.get(Webinar, webinar.id)).sales_end = utcnow() - dt.timedelta(minutes=5)
    evt = _completed(webinar)
    evt["created"] -= 600  # completed ten minutes ago, before sales closed
    assert await _fast(engine, settings, evt) == "order_paid"


async def test_a_payment_after_sales_closed_ends_refunded_by_the_full_path(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        (await session.get(Webinar, webinar.id)).sales_end = utcnow() - dt.timedelta(minutes=5)
    evt = _completed(webinar)
    body, headers = factories.signed(evt, settings.stripe_webhook_secrets[0])
    _, outcome = await receive_webhook(sessionmaker, settings, body, headers["Stripe-Signature"])
    assert outcome == f"order_{OrderStatus.LATE.value}"
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
        kinds = [j.kind for j in await session.scalars(select(Job))]
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        seats = (await session.get(Webinar, webinar.id)).seats_taken
    assert order.status == OrderStatus.LATE and tickets == 0 and seats == 0
    assert "payment.refund" in kinds and "mail.order" not in kinds


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_writes_a_purchase_in_one_or_two_statements_as_the_orm_would(engine, settings, sessionmaker):
    """A checkout made elsewhere is one statement; our own pending order is the upsert plus one
    statement for its code, tickets, jobs, event and seats. The row defaults the ORM would
    fill in (delivery state, event attempts) are there either way."""
    webinar = await factories.webinar(sessionmaker, capacity=10)
    assert await _fast(engine, settings, _completed(webinar, quantity=1)) == "order_paid"  # reads the price once
    async with sessionmaker.begin() as session:
        ours, _ = await start_order(session, webinar.id, 1, "mine@example.com")
        await attach_checkout_session(session, ours.id, "cs_test_ours")
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        elsewhere = _completed(webinar, quantity=3)
        assert await _fast(engine, settings, elsewhere) == "order_paid"
        assert len(statements) == 1
        evt = _completed(webinar, quantity=1, session_id="cs_test_ours", order_id=ours.id)
        assert await _fast(engine, settings, evt) == "order_paid"
        assert len(statements) == 3 and statements[1].startswith("INSERT INTO orders")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    async with sessionmaker() as session:
        tickets = {}
        for sent in (elsewhere, evt):
            order = await session.scalar(select(Order).where(Order.stripe_session_id == sent["data"]["object"]["id"]))
            tickets[order.id] = list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))
            stored = await session.get(StripeEvent, sent["id"])
            assert order.status == OrderStatus.PAID and order.code_hash and order.page_key
            assert order.updated_at >= order.created_at and order.amount_refunded == 0
            assert stored.attempts == 0 and stored.payload == sent and stored.outcome == "order_paid"
        [ticket] = tickets[ours.id]
        jobs = list(await session.scalars(select(Job).where(Job.dedupe_key.contains(str(ticket.id)))))
        taken = (await session.get(Webinar, webinar.id)).seats_taken
    assert [len(t) for t in tickets.values()] == [3, 1]
    assert all(t.delivery_status == TicketDelivery.QUEUED and t.status == TicketStatus.VALID and t.join_count == 0
               and t.code_sealed for t in sum(tickets.values(), []))
    assert ticket.assigned_at == ticket.created_at and ticket.email == "mine@example.com"
    assert sorted(j.payload["which"] for j in jobs) == ["15m", "24h"] and all(j.attempts == 0 for j in jobs)
    assert taken == 5
    assert (await _counts(sessionmaker))["tickets"] == 5


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_wakes_the_workers_of_other_processes_when_it_queued_jobs(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker, capacity=2)
    async with sessionmaker.begin() as session:
        ours, _ = await start_order(session, webinar.id, 1, "mine@example.com")
        await attach_checkout_session(session, ours.id, "cs_test_ours")
    heard: list[str] = []

    def hear(_connection, _pid, channel, _payload) -> None:
        heard.append(channel)

    outcomes = []
    async with engine.connect() as listening:
        driver = (await listening.get_raw_connection()).driver_connection
        await driver.add_listener(CHANNEL, hear)
        try:
            elsewhere = _completed(webinar)
            for evt in (elsewhere, _completed(webinar, session_id="cs_test_ours", order_id=ours.id),
                        elsewhere, _completed(webinar)):  # the last two: a redelivery, and no seat left
                outcomes.append(await _fast(engine, settings, evt))
                await asyncio.sleep(0.2)  # notifications arrive after the commit, on their own
        finally:
            await driver.remove_listener(CHANNEL, hear)
    assert outcomes == ["order_paid", "order_paid", None, None]
    assert heard == [CHANNEL, CHANNEL]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_stores_what_the_orm_stores(engine, settings, sessionmaker):
    """SQLite's fast path binds its values itself; they must read back as the ORM's do.
    SQLite compares times as text: a time stored without its microseconds sorts before the
    same time stored by the ORM."""
    webinar = await factories.webinar(sessionmaker)
    evt = _completed(webinar, quantity=1)
    assert await _fast(engine, settings, evt) == "order_paid"
    async with engine.connect() as connection:
        times = (await connection.exec_driver_sql(
            "SELECT due_at FROM jobs UNION ALL SELECT created_at FROM jobs UNION ALL SELECT assigned_at FROM tickets"
            " UNION ALL SELECT paid_at FROM orders UNION ALL SELECT updated_at FROM orders"
            " UNION ALL SELECT created FROM stripe_events UNION ALL SELECT updated_at FROM webinars")).scalars().all()
        ids = (await connection.exec_driver_sql(
            "SELECT id FROM tickets UNION ALL SELECT order_id FROM tickets UNION ALL SELECT id FROM orders")).scalars().all()
        kinds = (await connection.exec_driver_sql(
            "SELECT status FROM orders UNION ALL SELECT status FROM tickets UNION ALL SELECT status FROM jobs"
            " UNION ALL SELECT delivery_status FROM tickets")).scalars().all()
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", t) for t in times), times
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert sorted(set(kinds)) == ["paid", "queued", "valid"]
    async with sessionmaker() as session:
        stored = await session.get(StripeEvent, evt["id"])
        jobs = list(await session.scalars(select(Job).order_by(Job.due_at)))
    assert stored.payload == evt and stored.livemode is False
    assert [j.kind for j in jobs] == ["mail.order", "mail.reminder", "mail.reminder"]
    assert jobs[1].due_at == webinar.starts_at - dt.timedelta(hours=24)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_locked_by_another_process_is_an_outage_with_nothing_written(engine, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    before = await _counts(sessionmaker)
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA busy_timeout=100")  # the pool's one connection
    other = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception) as raised:
            await _fast(engine, settings, _completed(webinar))
        assert is_unavailable(raised.value)
    finally:
        other.close()
    assert await _counts(sessionmaker) == before
