"""Cancelling a webinar and revoking single tickets: the endpoints, and refunds that survive a worker crash."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import email
import email.policy
import os
import sys

from sqlalchemy import select

from tests import factories
from tests.conftest import JITSI_APP_SECRET, SESSION_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.lifecycle.conftest import jobs_of, order_for, pay
from tests.seats import join_codes
from ticketing.db import utcnow
from ticketing.db.models import Job, JobStatus, Order, OrderStatus, Refund, Ticket, TicketStatus
from ticketing.jobs.worker import Worker


async def _tickets(sessionmaker, webinar_id):
    async with sessionmaker() as db:
        return list(await db.scalars(select(Ticket).where(Ticket.webinar_id == webinar_id).order_by(Ticket.created_at)))


async def test_cancel_revokes_refunds_and_closes_sales(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    auth = {"Authorization": f"Bearer {key}"}
    webinar = await factories.webinar(sessionmaker, owner)
    paid = [await pay(client, webinar, email=f"b{i}@example.com", quantity=2) for i in range(3)]
    unpaid = factories.checkout_session(webinar, payment_status="unpaid")
    assert (await factories.post_event(client, factories.event("checkout.session.completed", unpaid))).status == 200
    [code, *_] = (await join_codes(sessionmaker, webinar_id=webinar.id)).values()

    response = await client.post(f"/api/webinars/{webinar.id}/cancel", headers=auth)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["id"], body["status"], body["tickets_sold"]) == (str(webinar.id), "cancelled", 0)

    tickets = await _tickets(sessionmaker, webinar.id)
    assert [(t.status, t.revoked_reason) for t in tickets] == [(TicketStatus.REVOKED, "cancelled")] * 6
    refunds = await jobs_of(sessionmaker, "payment.refund")
    orders = [await order_for(sessionmaker, s["id"]) for s in paid]
    assert sorted(j.payload["order_id"] for j in refunds) == sorted(str(o.id) for o in orders)
    assert all(o.status == OrderStatus.CANCELLED for o in orders)
    assert (await order_for(sessionmaker, unpaid["id"])).status == OrderStatus.PENDING
    # Three two-seat orders whose seats are still with their buyers: one notice per buyer.
    assert len(await jobs_of(sessionmaker, "mail.revoked")) == 3

    assert (await client.post(f"/api/webinars/{webinar.id}/cancel", headers=auth)).status == 409
    assert (await client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1})).status == 409
    assert (await client.get(f"/j/{code}", allow_redirects=False)).status == 410

    # The unpaid checkout that pays after the cancellation is refunded, not fulfilled.
    late = dict(unpaid, payment_status="paid")
    assert (await factories.post_event(client, factories.event("checkout.session.async_payment_succeeded", late))).status == 200
    assert (await order_for(sessionmaker, unpaid["id"])).status == OrderStatus.CANCELLED
    assert len(await jobs_of(sessionmaker, "payment.refund")) == 4


async def test_cancel_errors(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    webinar = await factories.webinar(sessionmaker, owner)
    url = f"/api/webinars/{webinar.id}/cancel"
    cases = [
        (client.post(url), 401),
        (client.post(url, headers={"Authorization": f"Bearer {other_key}"}), 403),
        (client.post("/api/webinars/00000000-0000-0000-0000-000000000000/cancel",
                     headers={"Authorization": f"Bearer {key}"}), 404),
        (client.post("/api/webinars/nope/cancel", headers={"Authorization": f"Bearer {key}"}), 404),
    ]
    for request, status in cases:
        response = await request
        assert response.status == status
        assert (await response.json())["error"]["code"]
    response = await client.get(f"/api/webinars/{webinar.id}", headers={"Authorization": f"Bearer {key}"})
    assert (await response.json())["status"] == "scheduled"


async def test_revoke_one_ticket_with_and_without_refund(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    auth = {"Authorization": f"Bearer {key}"}
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    webinar = await factories.webinar(sessionmaker, owner)
    session = await pay(client, webinar, quantity=3)
    first, second, third = await _tickets(sessionmaker, webinar.id)

    response = await client.post(f"/api/tickets/{first.id}/revoke", headers=auth)
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "revoked" and (await response.json())["refund_queued"] is False
    response = await client.post(f"/api/tickets/{second.id}/revoke", json={"refund": True}, headers=auth)
    assert response.status == 200 and (await response.json())["refund_queued"] is True

    order = await order_for(sessionmaker, session["id"])
    [job] = await jobs_of(sessionmaker, "payment.refund")
    assert job.payload == {"order_id": str(order.id), "ticket_id": str(second.id), "reason": "organizer"}
    assert order.status == OrderStatus.PAID
    assert len(await jobs_of(sessionmaker, "mail.revoked")) == 2
    response = await client.get(f"/api/webinars/{webinar.id}", headers=auth)
    assert (await response.json())["tickets_sold"] == 1

    cases = [
        (f"/api/tickets/{first.id}/revoke", {"headers": auth}, 409),
        (f"/api/tickets/{third.id}/revoke", {"headers": {"Authorization": f"Bearer {other_key}"}}, 403),
        ("/api/tickets/00000000-0000-0000-0000-000000000000/revoke", {"headers": auth}, 404),
        (f"/api/tickets/{third.id}/revoke", {"headers": auth, "json": {"refund": "yes"}}, 422),
        (f"/api/tickets/{third.id}/revoke", {"headers": auth, "data": "{", "skip_auto_headers": ()}, 415),
        (f"/api/tickets/{third.id}/revoke", {"headers": {**auth, "Content-Type": "application/json"}, "data": "[1"}, 400),
        (f"/api/tickets/{third.id}/restore", {"headers": auth}, 409),
    ]
    for url, kwargs, status in cases:
        response = await client.post(url, **kwargs)
        assert response.status == status, (url, kwargs, await response.text())
        assert "error" in await response.json()
    assert (await _tickets(sessionmaker, webinar.id))[2].status == TicketStatus.VALID


async def test_refund_of_one_ticket_refunds_its_share(stripe_settings, stripe_standin, start_client, sessionmaker,
                                                      make_context):
    from ticketing.payments.refunds import refund

    client = await start_client(stripe_settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    session = await pay(client, webinar, quantity=2)
    stripe_standin.add_payment_intent(session["payment_intent"], 5000)
    ticket, other = await _tickets(sessionmaker, webinar.id)
    response = await client.post(f"/api/tickets/{ticket.id}/revoke", json={"refund": True},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    [job] = await jobs_of(sessionmaker, "payment.refund")
    await refund(await make_context(stripe_settings), job.payload)

    [call] = stripe_standin.calls_to("POST", "/v1/refunds")
    assert call.idempotency_key == f"refund-ticket-{ticket.id}"
    assert (call.params["amount"], call.params["metadata"]["ticket_id"]) == ("2500", str(ticket.id))
    order = await order_for(sessionmaker, session["id"])
    assert (order.status, order.amount_refunded, order.refunded_at) == (OrderStatus.PAID, 2500, None)
    assert (await _tickets(sessionmaker, webinar.id))[1].status == TicketStatus.VALID


def _mails(mail_dir):
    """(recipient, Message-ID) of every mail in the dev sink."""
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((message["To"].addresses[0].addr_spec, str(message["Message-ID"])))
    return found


async def _until(condition, what: str, timeout: float = 30.0) -> None:
    """Wait for something another process does; fail with `what` if it does not happen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _done(sessionmaker, kind: str) -> int:
    async with sessionmaker() as db:
        return len(list(await db.scalars(select(Job.id).where(Job.kind == kind, Job.status == JobStatus.DONE))))


async def test_cancellation_refunds_each_order_once_across_a_worker_crash(
    stripe_settings, stripe_standin, start_client, sessionmaker, make_context, database_url, var_dir, tmp_path,
):
    client = await start_client(stripe_settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, capacity=20)
    buyers = [f"buyer{i}@example.com" for i in range(6)]
    sessions = [await pay(client, webinar, email=buyer) for buyer in buyers]
    orders = {str((await order_for(sessionmaker, s["id"])).id) for s in sessions}

    # Three refund requests reach Stripe and hang there until the worker is gone.
    stripe_standin.hang_next(3, path="/v1/refunds")
    response = await client.post(f"/api/webinars/{webinar.id}/cancel", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200

    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_DATABASE_URL=database_url, TICKETING_VAR_DIR=str(var_dir),
               TICKETING_STRIPE_SECRET_KEY=STRIPE_SECRET_KEY, TICKETING_STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
               TICKETING_STRIPE_API_BASE=stripe_standin.url, TICKETING_JITSI_APP_SECRET=JITSI_APP_SECRET, TICKETING_SESSION_KEY=SESSION_KEY,
               TICKETING_MAIL_TO_DISK="true", TICKETING_LOG_LEVEL="WARNING")
    worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "ticketing", "worker", env=env, cwd=tmp_path,
                                                  stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async def halfway() -> bool:
            return (len(stripe_standin.calls_to("POST", "/v1/refunds")) >= 6
                    and await _done(sessionmaker, "payment.refund") >= 3
                    and await _done(sessionmaker, "mail.revoked") == 6)
        await _until(halfway, "three refunds done and three hanging")
    finally:
        worker.kill()
        await worker.wait()
    assert await _done(sessionmaker, "payment.refund") == 3

    stripe_standin.release()

    # A new worker takes over the dead one's jobs once their claims time out.
    ctx = await make_context(stripe_settings)
    restarted = Worker(ctx, claim_timeout=60)
    await restarted.run_until_idle(now=utcnow() + dt.timedelta(minutes=2))

    assert collections.Counter(r["metadata"]["order_id"] for r in stripe_standin.refunds) == {o: 1 for o in orders}
    for call in stripe_standin.calls_to("POST", "/v1/refunds"):
        assert call.idempotency_key == f"refund-{call.params['metadata']['order_id']}"
    async with sessionmaker() as db:
        stored = list(await db.scalars(select(Order).where(Order.webinar_id == webinar.id)))
        recorded = list(await db.scalars(select(Refund)))
        states = set((await db.scalars(select(Job.status).where(Job.kind == "payment.refund"))).all())
    assert {(o.status, o.amount_refunded) for o in stored} == {(OrderStatus.REFUNDED, 2500)}
    assert len(recorded) == 6 and states == {JobStatus.DONE}

    mails = _mails(var_dir / "mail")
    by_buyer = collections.defaultdict(set)
    for to, message_id in mails:
        by_buyer[to].add(message_id)
    assert sorted(by_buyer) == sorted(buyers)
    assert all(len(ids) == 1 for ids in by_buyer.values()), by_buyer
