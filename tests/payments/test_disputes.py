"""Disputes as Stripe sends them: inquiries revoke nothing, chargebacks do until won, the
outcome shows in the API, the CSV and the console, and a dispute without a payment intent
finds its order through its charge."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import logging

from sqlalchemy import select, update

import ticketing.workers  # noqa: F401  (registers every job kind)
from tests import factories, stripe_shapes
from tests.lifecycle.conftest import make_context  # noqa: F401  (the fixture)
from tests.org.conftest import csrf_of, sign_in
from ticketing.db import utcnow
from ticketing.db.models import Job, Order, OrderStatus, StripeEvent, Ticket, TicketStatus, Webinar
from ticketing.payments.reconcile import reconcile_periodically
from ticketing.payments.versions import API_VERSION

VERSION = "2024-06-20"  # an account's older default; disputes read the same at every version


async def _post(client, event_type: str, obj: dict, *, version: str = VERSION) -> str:
    response = await factories.post_event(client, factories.event(event_type, obj, api_version=version))
    assert response.status == 200
    return (await response.json())["outcome"]


async def _bought(client, sessionmaker, *, quantity: int = 2, capacity: int = 10, email_: str = "ada@example.com"):
    owner, key = await factories.organizer(sessionmaker, email=email_)
    webinar = await factories.webinar(sessionmaker, owner, capacity=capacity)
    session = stripe_shapes.session(VERSION, webinar, quantity=quantity)
    assert await _post(client, "checkout.session.completed", session) == "order_paid"
    async with sessionmaker() as db:
        order = await db.scalar(select(Order).where(Order.stripe_session_id == session["id"]))
    return webinar, order, key


async def _state(sessionmaker, order_id):
    async with sessionmaker() as db:
        order = await db.get(Order, order_id)
        tickets = list(await db.scalars(select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.seq)))
        seats = await db.scalar(select(Webinar.seats_taken).where(Webinar.id == order.webinar_id))
    return order, [(t.status, t.revoked_reason) for t in tickets], seats


async def _api_order(client, key, webinar_id, order_id, status: str | None = None):
    query = f"?status={status}" if status else ""
    response = await client.get(f"/api/webinars/{webinar_id}/orders{query}", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    return next((o for o in (await response.json())["orders"] if o["id"] == str(order_id)), None)


def _mails(var_dir):
    found = []
    for path in sorted((var_dir / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((message["To"].addresses[0].addr_spec, str(message["Subject"]), message.get_body(("plain",)).get_content()))
    return found


async def test_an_inquiry_revokes_nothing_and_shows_until_it_closes(client, sessionmaker):
    webinar, order, key = await _bought(client, sessionmaker)
    inquiry = stripe_shapes.dispute(VERSION, order.stripe_payment_intent_id, amount=5000, status="warning_needs_response")
    assert await _post(client, "charge.dispute.created", inquiry) == "order_paid"
    assert await _post(client, "charge.dispute.updated", dict(inquiry, status="warning_under_review")) == "order_paid"
    found, tickets, seats = await _state(sessionmaker, order.id)
    assert (found.status, tickets, seats) == (OrderStatus.PAID, [(TicketStatus.VALID, None)] * 2, 2)
    listed = await _api_order(client, key, webinar.id, order.id, status="problem")
    assert (listed["dispute"], listed["can_restore"]) == ("inquiry", False)

    assert await _post(client, "charge.dispute.closed", dict(inquiry, status="warning_closed")) == "order_paid"
    assert (await _api_order(client, key, webinar.id, order.id))["dispute"] == "inquiry_closed"
    assert await _api_order(client, key, webinar.id, order.id, status="problem") is None
    found, tickets, seats = await _state(sessionmaker, order.id)
    assert (found.status, tickets, seats) == (OrderStatus.PAID, [(TicketStatus.VALID, None)] * 2, 2)


async def test_an_inquiry_that_becomes_a_chargeback_revokes(client, sessionmaker):
    webinar, order, key = await _bought(client, sessionmaker)
    inquiry = stripe_shapes.dispute(VERSION, order.stripe_payment_intent_id, amount=5000, status="warning_needs_response")
    assert await _post(client, "charge.dispute.created", inquiry) == "order_paid"
    assert await _post(client, "charge.dispute.updated", dict(inquiry, status="needs_response")) == "order_disputed"
    found, tickets, seats = await _state(sessionmaker, order.id)
    assert (tickets, seats) == ([(TicketStatus.REVOKED, "disputed")] * 2, 0)
    assert (await _api_order(client, key, webinar.id, order.id))["dispute"] == "open"


async def test_a_lost_chargeback_stays_revoked_and_the_organizer_is_told(client, sessionmaker, settings, make_worker,
                                                                         var_dir):
    webinar, order, key = await _bought(client, sessionmaker)
    dispute = stripe_shapes.dispute(VERSION, order.stripe_payment_intent_id, amount=5000)
    assert await _post(client, "charge.dispute.created", dispute) == "order_disputed"
    assert await _post(client, "charge.dispute.closed", dict(dispute, status="lost")) == "order_disputed"
    assert await _post(client, "charge.dispute.closed", dict(dispute, status="lost")) == "order_disputed"
    found, tickets, _ = await _state(sessionmaker, order.id)
    assert tickets == [(TicketStatus.REVOKED, "disputed")] * 2
    listed = await _api_order(client, key, webinar.id, order.id)
    assert (listed["status"], listed["dispute"], listed["can_restore"]) == ("disputed", "lost", False)

    response = await client.get(f"/api/webinars/{webinar.id}/tickets",
                                headers={"Authorization": f"Bearer {key}", "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["order_dispute"] for r in rows] == ["lost", "lost"]

    await make_worker(settings).run_until_idle()
    organizer_mails = [m for m in _mails(var_dir) if m[0] == "ada@example.com"]
    assert [subject for _, subject, _ in organizer_mails] == [f"Dispute lost: {webinar.title}"]
    assert f"/org/webinars/{webinar.id}" in organizer_mails[0][2]


async def test_a_won_chargeback_is_visible_and_the_console_restores_the_whole_order(
        client, sessionmaker, settings, make_worker, var_dir):
    webinar, order, key = await _bought(client, sessionmaker)
    dispute = stripe_shapes.dispute(VERSION, order.stripe_payment_intent_id, amount=5000)
    assert await _post(client, "charge.dispute.created", dispute) == "order_disputed"
    assert await _post(client, "charge.dispute.closed", dict(dispute, status="won")) == "order_disputed"
    listed = await _api_order(client, key, webinar.id, order.id, status="problem")
    assert (listed["status"], listed["dispute"], listed["can_restore"]) == ("disputed", "won", True)
    await make_worker(settings).run_until_idle()
    assert [s for to, s, _ in _mails(var_dir) if to == "ada@example.com"] == [f"Dispute won: {webinar.title}"]

    await sign_in(client, sessionmaker, "ada@example.com")
    page = await client.get(f"/org/webinars/{webinar.id}")
    html = await page.text()
    assert "the dispute was won" in html and f"/org/orders/{order.id}/restore" in html
    confirm = await client.get(f"/org/orders/{order.id}/restore")
    assert confirm.status == 200 and "2 tickets" in await confirm.text()
    done = await client.post(f"/org/orders/{order.id}/restore", data={"csrf_token": csrf_of(await confirm.text())},
                             allow_redirects=False)
    assert done.status == 303
    found, tickets, seats = await _state(sessionmaker, order.id)
    assert (found.status, tickets, seats) == (OrderStatus.PAID, [(TicketStatus.VALID, None)] * 2, 2)
    async with sessionmaker() as db:
        joins = list(await db.scalars(select(Job).where(Job.kind == "mail.join")))
    assert len(joins) == 2
    assert (await _api_order(client, key, webinar.id, order.id))["can_restore"] is False

    # Once restored there is nothing left to restore.
    again = await client.post(f"/org/orders/{order.id}/restore", data={"csrf_token": csrf_of(await confirm.text())})
    assert again.status == 409


async def test_restore_is_refused_with_the_reason_when_full_or_over(client, sessionmaker):
    webinar, order, key = await _bought(client, sessionmaker, capacity=3)
    dispute = stripe_shapes.dispute(VERSION, order.stripe_payment_intent_id, amount=5000)
    await _post(client, "charge.dispute.created", dispute)
    await _post(client, "charge.dispute.closed", dict(dispute, status="won"))
    other = stripe_shapes.session(VERSION, webinar, quantity=2)
    assert await _post(client, "checkout.session.completed", other) == "order_paid"  # 2 of the 3 seats

    await sign_in(client, sessionmaker, "ada@example.com")
    confirm = await client.get(f"/org/orders/{order.id}/restore")
    token = csrf_of(await confirm.text())
    full = await client.post(f"/org/orders/{order.id}/restore", data={"csrf_token": token})
    assert full.status == 409 and "1 seat left, and this order needs 2" in await full.text()

    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id)
                         .values(capacity=None, starts_at=utcnow().replace(year=2000), ends_at=utcnow().replace(year=2001)))
    over = await client.post(f"/org/orders/{order.id}/restore", data={"csrf_token": token})
    assert over.status == 409 and "This webinar is over." in await over.text()
    _, tickets, _ = await _state(sessionmaker, order.id)
    assert tickets == [(TicketStatus.REVOKED, "disputed")] * 2


async def test_won_before_created_never_revokes(client, sessionmaker):
    _, order, _ = await _bought(client, sessionmaker)
    dispute = stripe_shapes.dispute(VERSION, order.stripe_payment_intent_id, amount=5000)
    assert await _post(client, "charge.dispute.closed", dict(dispute, status="won")) == "order_paid"
    assert await _post(client, "charge.dispute.created", dispute) == "order_paid"
    _, tickets, _ = await _state(sessionmaker, order.id)
    assert tickets == [(TicketStatus.VALID, None)] * 2


async def test_a_dispute_without_a_payment_intent_finds_its_order_through_the_charge(
        stripe_settings, stripe_standin, start_client, sessionmaker, make_context, caplog):
    client = await start_client(stripe_settings)
    _, order, _ = await _bought(client, sessionmaker)
    # As in Stripe's own fixture: the dispute names the charge, its payment_intent is null.
    dispute = stripe_shapes.dispute(API_VERSION, None, amount=5000, charge_id="ch_3Disputed")
    with caplog.at_level(logging.INFO, logger="ticketing.payments"):
        assert await _post(client, "charge.dispute.created", dispute, version=API_VERSION) == "unmatched"
    assert any("matches no order" in r.getMessage() for r in caplog.records)
    stripe_standin.add_charge("ch_3Disputed", order.stripe_payment_intent_id, 5000)
    unknown = stripe_shapes.dispute(API_VERSION, None, amount=100, charge_id="ch_NotOurs")
    assert await _post(client, "charge.dispute.created", unknown, version=API_VERSION) == "unmatched"

    await reconcile_periodically(await make_context(stripe_settings))

    assert [c.path for c in stripe_standin.calls if c.path.startswith("/v1/charges/")] == [
        "/v1/charges/ch_3Disputed", "/v1/charges/ch_NotOurs"]
    _, tickets, _ = await _state(sessionmaker, order.id)
    assert tickets == [(TicketStatus.REVOKED, "disputed")] * 2
    async with sessionmaker() as db:
        events = {e.payload["data"]["object"]["charge"]: (e.outcome, e.payment_intent_id, e.processed_at is not None)
                  for e in await db.scalars(select(StripeEvent).where(StripeEvent.type == "charge.dispute.created"))}
    assert events == {"ch_3Disputed": ("order_disputed", order.stripe_payment_intent_id, True),
                      "ch_NotOurs": ("not_ours", None, True)}
