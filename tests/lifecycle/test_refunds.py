"""Refunds and disputes: Stripe's events revoke access; the refund job refunds once, however often it runs."""

from __future__ import annotations

import pytest
import stripe
from sqlalchemy import select

from tests import factories
from tests.lifecycle.conftest import jobs_of, order_for, pay
from ticketing.db.models import Order, OrderStatus, Refund, Ticket, TicketStatus
from ticketing.jobs.registry import PermanentError
from ticketing.payments.refunds import refund


async def _tickets(sessionmaker, order_id):
    async with sessionmaker() as db:
        return list(await db.scalars(select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.seq)))


async def test_full_refund_revokes_every_ticket_and_notifies_once(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = await pay(client, webinar, quantity=2)
    full = factories.charge(session["payment_intent"], amount=5000, amount_refunded=5000)
    event = factories.event("charge.refunded", full)
    for _ in range(2):  # delivered twice
        assert (await factories.post_event(client, event)).status == 200
    order = await order_for(sessionmaker, session["id"])
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 5000)
    tickets = await _tickets(sessionmaker, order.id)
    assert [(t.status, t.revoked_reason) for t in tickets] == [(TicketStatus.REVOKED, "refunded")] * 2
    # Both seats were still with the buyer: one notice to them, not one per seat.
    assert len(await jobs_of(sessionmaker, "mail.revoked")) == 1


async def test_partial_refund_records_amount_and_keeps_tickets(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = await pay(client, webinar, quantity=2)
    partial = factories.charge(session["payment_intent"], amount=5000, amount_refunded=1000)
    assert (await factories.post_event(client, factories.event("charge.refunded", partial))).status == 200
    order = await order_for(sessionmaker, session["id"])
    assert (order.status, order.amount_refunded, order.refunded_at) == (OrderStatus.PAID, 1000, None)
    assert [t.status for t in await _tickets(sessionmaker, order.id)] == [TicketStatus.VALID] * 2
    assert await jobs_of(sessionmaker, "mail.revoked") == []


async def test_dispute_revokes_and_a_won_dispute_lets_the_organizer_restore(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    auth = {"Authorization": f"Bearer {key}"}
    webinar = await factories.webinar(sessionmaker, owner, capacity=1)
    session = await pay(client, webinar)
    order = await order_for(sessionmaker, session["id"])
    [ticket] = await _tickets(sessionmaker, order.id)

    opened = factories.dispute(session["payment_intent"], amount=2500)
    assert (await factories.post_event(client, factories.event("charge.dispute.created", opened))).status == 200
    [ticket] = await _tickets(sessionmaker, order.id)
    assert (ticket.status, ticket.revoked_reason) == (TicketStatus.REVOKED, "disputed")
    # Not restorable while the dispute is open.
    response = await client.post(f"/api/tickets/{ticket.id}/restore", headers=auth)
    assert response.status == 409

    won = dict(opened, status="won")
    assert (await factories.post_event(client, factories.event("charge.dispute.closed", won))).status == 200
    other_owner, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    response = await client.post(f"/api/tickets/{ticket.id}/restore", headers={"Authorization": f"Bearer {other_key}"})
    assert response.status == 403
    response = await client.post(f"/api/tickets/{ticket.id}/restore", headers=auth)
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "valid"
    [restored] = await _tickets(sessionmaker, order.id)
    assert restored.status == TicketStatus.VALID and restored.code_hash != ticket.code_hash
    assert (await order_for(sessionmaker, session["id"])).status == OrderStatus.PAID
    joins = [j for j in await jobs_of(sessionmaker, "mail.join") if j.payload["ticket_id"] == str(ticket.id)]
    assert len(joins) == 1  # the new link (the first one came in the order mail)
    assert len(await jobs_of(sessionmaker, "mail.order")) == 1
    response = await client.get(f"/api/webinars/{webinar.id}", headers=auth)
    assert (await response.json())["tickets_sold"] == 1
    # Restoring again: it is valid, nothing to restore.
    assert (await client.post(f"/api/tickets/{ticket.id}/restore", headers=auth)).status == 409


async def _oversold_order(client, sessionmaker, standin=None):
    webinar = await factories.webinar(sessionmaker, capacity=1)
    await pay(client, webinar, email="first@example.com")
    session = await pay(client, webinar, email="late@example.com")
    order = await order_for(sessionmaker, session["id"])
    assert order.status == OrderStatus.OVERSOLD
    if standin is not None:
        standin.add_payment_intent(order.stripe_payment_intent_id, order.amount_total)
    return order


async def test_oversold_payment_is_refunded_once_through_stripe(stripe_settings, stripe_standin, start_client,
                                                                 sessionmaker, make_context):
    client = await start_client(stripe_settings)
    order = await _oversold_order(client, sessionmaker, stripe_standin)
    [job] = await jobs_of(sessionmaker, "payment.refund")
    assert job.payload == {"order_id": str(order.id), "reason": "oversold"}
    ctx = await make_context(stripe_settings)

    await refund(ctx, job.payload)
    await refund(ctx, job.payload)  # a retry after the refund was recorded: nothing left to refund

    calls = stripe_standin.calls_to("POST", "/v1/refunds")
    assert [c.idempotency_key for c in calls] == [f"refund-{order.id}"]
    assert calls[0].params["payment_intent"] == order.stripe_payment_intent_id
    assert calls[0].params["metadata"]["order_id"] == str(order.id)
    assert "amount" not in calls[0].params
    assert len(stripe_standin.refunds) == 1
    async with sessionmaker() as db:
        stored = await db.get(Order, order.id)
        refunds = list(await db.scalars(select(Refund)))
    assert (stored.amount_refunded, stored.status) == (2500, OrderStatus.REFUNDED)
    assert stored.refunded_at is not None
    assert [(r.id, r.amount, r.test) for r in refunds] == [(stripe_standin.refunds[0]["id"], 2500, False)]
    [notice] = await jobs_of(sessionmaker, "mail.order_refunded")
    assert notice.payload == {"order_id": str(order.id), "reason": "oversold"}


async def test_stripe_500_and_timeout_are_retried_then_succeed(stripe_settings, stripe_standin, start_client,
                                                              sessionmaker, make_context):
    client = await start_client(stripe_settings)
    order = await _oversold_order(client, sessionmaker, stripe_standin)
    [job] = await jobs_of(sessionmaker, "payment.refund")
    quick = stripe.StripeClient(stripe_settings.stripe_secret_key, base_addresses={"api": stripe_standin.url},
                                http_client=stripe.AIOHTTPClient(timeout=0.5), max_network_retries=0)
    ctx = await make_context(stripe_settings, stripe_client=quick)

    stripe_standin.fail_next(1, status=500)
    with pytest.raises(stripe.APIError):
        await refund(ctx, job.payload)
    stripe_standin.hang_next(1, path="/v1/refunds")
    with pytest.raises(stripe.APIConnectionError):
        await refund(ctx, job.payload)
    assert (await order_for(sessionmaker, order.stripe_session_id)).refunded_at is None
    assert await jobs_of(sessionmaker, "mail.order_refunded") == []

    stripe_standin.release()
    await refund(ctx, job.payload)
    # The hung request went through on Stripe's side too, with the same key: one refund.
    assert {c.idempotency_key for c in stripe_standin.calls_to("POST", "/v1/refunds")} == {f"refund-{order.id}"}
    assert len(stripe_standin.refunds) == 1
    stored = await order_for(sessionmaker, order.stripe_session_id)
    assert (stored.status, stored.amount_refunded) == (OrderStatus.REFUNDED, 2500)


async def test_stripe_refusing_the_refund_is_permanent(stripe_settings, stripe_standin, start_client, sessionmaker,
                                                       make_context):
    client = await start_client(stripe_settings)
    order = await _oversold_order(client, sessionmaker)
    [job] = await jobs_of(sessionmaker, "payment.refund")
    stripe_standin.fail_next(1, status=400)
    with pytest.raises(PermanentError):
        await refund(await make_context(stripe_settings), job.payload)
    assert (await order_for(sessionmaker, order.stripe_session_id)).refunded_at is None
    with pytest.raises(PermanentError):
        await refund(await make_context(stripe_settings), {"order_id": "not-an-id", "reason": "x"})


async def test_dev_mode_records_a_test_refund(client, sessionmaker, settings, make_context):
    order = await _oversold_order(client, sessionmaker)
    [job] = await jobs_of(sessionmaker, "payment.refund")
    ctx = await make_context(settings)
    assert ctx.stripe is None
    await refund(ctx, job.payload)
    await refund(ctx, job.payload)
    async with sessionmaker() as db:
        refunds = list(await db.scalars(select(Refund)))
        stored = await db.get(Order, order.id)
    assert [(r.amount, r.test) for r in refunds] == [(2500, True)] and refunds[0].id.startswith("re_test_")
    assert (stored.status, stored.amount_refunded) == (OrderStatus.REFUNDED, 2500)
    assert len(await jobs_of(sessionmaker, "mail.order_refunded")) == 1


