"""A payment that completes after sales closed or after the webinar ended: no ticket, one
refund through Stripe, a mail to the buyer saying why, and the order shown to the organizer."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from tests import factories
from tests.conftest import JITSI_APP_SECRET, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.lifecycle.conftest import jobs_of, order_for
from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, Ticket, Webinar
from ticketing.workers import create_worker


def _settings(make_settings, stripe_standin, smtp):
    return make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                         stripe_api_base=stripe_standin.url, jitsi_app_secret=JITSI_APP_SECRET, smtp_url=smtp.url)


async def _checkout(client, stripe_standin, webinar, email: str = "late@example.com") -> dict:
    """A real checkout: our service creates the session at the stand-in; the buyer pays it there."""
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2", "email": email},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    [session_id] = list(stripe_standin.sessions)
    return stripe_standin.complete_session(session_id)


async def _move(sessionmaker, webinar, **values) -> None:
    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(**values))


async def _settle_late_payment(make_settings, stripe_standin, smtp, start_client, sessionmaker, make_context, **move):
    settings = _settings(make_settings, stripe_standin, smtp)
    client = await start_client(settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, capacity=10)
    session = await _checkout(client, stripe_standin, webinar)
    await _move(sessionmaker, webinar, **move)

    completed = factories.event("checkout.session.completed", session)
    for _ in range(2):  # Stripe delivers twice
        assert (await factories.post_event(client, completed)).status == 200
    order = await order_for(sessionmaker, session["id"])
    assert order.status == OrderStatus.LATE
    async with sessionmaker() as db:
        assert list(await db.scalars(select(Ticket))) == []

    ctx = await make_context(settings)
    await create_worker(ctx).run_until_idle()
    # Anything arriving after the refund changes nothing either.
    later = factories.event("checkout.session.async_payment_succeeded", session)
    assert (await factories.post_event(client, later)).status == 200
    await create_worker(ctx).run_until_idle()

    calls = stripe_standin.calls_to("POST", "/v1/refunds")
    assert [c.idempotency_key for c in calls] == [f"refund-{order.id}"]
    assert calls[0].params["payment_intent"] == session["payment_intent"]
    assert len(stripe_standin.refunds) == 1 and stripe_standin.refunds[0]["amount"] == 5000
    order = await order_for(sessionmaker, session["id"])
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 5000)
    assert len(await jobs_of(sessionmaker, "payment.refund")) == 1

    [mail] = smtp.to("late@example.com")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert mail["Subject"] == f"Refunded: {webinar.title}"

    response = await client.get(f"/api/webinars/{webinar.id}/orders", headers={"Authorization": f"Bearer {key}"})
    [shown] = (await response.json())["orders"]
    assert shown["status"] == "refunded" and shown["amount_refunded"] == 5000
    return order, shown, text, html


async def test_a_payment_after_sales_closed_is_refunded_once_and_explained(
        make_settings, stripe_standin, smtp, start_client, sessionmaker, make_context):
    order, shown, text, html = await _settle_late_payment(
        make_settings, stripe_standin, smtp, start_client, sessionmaker, make_context,
        sales_end=utcnow() - dt.timedelta(minutes=1))
    assert shown["problem"] == "paid after sales had closed; refunded automatically"
    for part in (text, html):
        assert "sales for the webinar had closed when your payment went through" in part
        assert "No ticket was issued" in part


async def test_a_payment_after_the_webinar_ended_is_refunded_once_and_explained(
        make_settings, stripe_standin, smtp, start_client, sessionmaker, make_context):
    ends = utcnow() - dt.timedelta(minutes=5)
    order, shown, text, html = await _settle_late_payment(
        make_settings, stripe_standin, smtp, start_client, sessionmaker, make_context,
        starts_at=ends - dt.timedelta(hours=1), ends_at=ends)
    assert shown["problem"] == "paid after the webinar had ended; refunded automatically"
    for part in (text, html):
        assert "the webinar had already ended when your payment went through" in part


async def test_a_payment_completed_in_time_but_delivered_late_keeps_its_tickets(
        stripe_settings, stripe_standin, start_client, sessionmaker):
    """Stripe's signed `created` says when the checkout completed, not when we heard of it."""
    client = await start_client(stripe_settings)
    webinar = await factories.webinar(sessionmaker, capacity=10)
    session = await _checkout(client, stripe_standin, webinar)
    completed_at = utcnow() - dt.timedelta(minutes=10)
    await _move(sessionmaker, webinar, sales_end=utcnow() - dt.timedelta(minutes=5))
    event = factories.event("checkout.session.completed", session)
    event["created"] = int(completed_at.timestamp())
    assert (await factories.post_event(client, event)).status == 200
    order = await order_for(sessionmaker, session["id"])
    assert order.status == OrderStatus.PAID and order.problem is None
    async with sessionmaker() as db:
        assert len(list(await db.scalars(select(Ticket).where(Ticket.order_id == order.id)))) == 2
    assert await jobs_of(sessionmaker, "payment.refund") == []


async def test_an_async_payment_that_clears_after_the_end_is_refunded(stripe_settings, stripe_standin, start_client,
                                                                       sessionmaker):
    """Checkout completed unpaid in time (a bank debit); the money arrives once the webinar is over."""
    client = await start_client(stripe_settings)
    webinar = await factories.webinar(sessionmaker, capacity=10)
    session = await _checkout(client, stripe_standin, webinar)
    unpaid = dict(session, payment_status="unpaid")
    assert (await factories.post_event(client, factories.event("checkout.session.completed", unpaid))).status == 200
    assert (await order_for(sessionmaker, session["id"])).status == OrderStatus.PENDING
    ends = utcnow() - dt.timedelta(minutes=1)
    await _move(sessionmaker, webinar, starts_at=ends - dt.timedelta(hours=1), ends_at=ends)
    succeeded = factories.event("checkout.session.async_payment_succeeded", session)
    assert (await factories.post_event(client, succeeded)).status == 200
    order = await order_for(sessionmaker, session["id"])
    assert order.status == OrderStatus.LATE
    [job] = await jobs_of(sessionmaker, "payment.refund")
    assert job.payload == {"order_id": str(order.id), "reason": "ended"}
    async with sessionmaker() as db:
        assert (await db.get(Webinar, webinar.id)).seats_taken == 0
        assert (await db.get(Order, order.id)).problem == "paid after the webinar had ended; refunded automatically"
