"""Refunds made in Stripe's dashboard for part of an order: recorded, shown to the organizer,
who chooses the seats that lose access when the amount is a whole number of seats."""

from __future__ import annotations

from sqlalchemy import select

from tests import stripe_shapes
from tests.org.conftest import csrf_of, sign_in
from tests.payments.test_disputes import VERSION, _api_order, _bought, _post, _state
from ticketing.db.models import Job, OrderStatus, Ticket, TicketStatus

VALID, REFUNDED = (TicketStatus.VALID, None), (TicketStatus.REVOKED, "refunded")


async def test_one_seat_of_two_refunded_the_organizer_chooses_which(client, sessionmaker):
    webinar, order, key = await _bought(client, sessionmaker, quantity=2)
    refund = stripe_shapes.charge(VERSION, order.stripe_payment_intent_id, amount=5000, amount_refunded=2500)
    assert await _post(client, "charge.refunded", refund) == "order_paid"
    found, tickets, seats = await _state(sessionmaker, order.id)
    assert (found.status, found.amount_refunded, tickets, seats) == (OrderStatus.PAID, 2500, [VALID, VALID], 2)
    listed = await _api_order(client, key, webinar.id, order.id, status="problem")
    assert listed["refunded_outside"] == {"amount": 2500, "seats": 1, "seats_to_choose": 1}

    await sign_in(client, sessionmaker, "ada@example.com")
    html = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert "was refunded in Stripe" in html and f"/org/orders/{order.id}/seats" in html
    form = await client.get(f"/org/orders/{order.id}/seats")
    text = await form.text()
    assert form.status == 200 and text.count('name="seat"') == 2
    token = csrf_of(text)
    async with sessionmaker() as db:
        first, second = list(await db.scalars(select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.seq)))

    both = await client.post(f"/org/orders/{order.id}/seats",
                             data=[("csrf_token", token), ("seat", str(first.id)), ("seat", str(second.id))])
    assert both.status == 422 and "Choose 1 seat." in await both.text()
    junk = await client.post(f"/org/orders/{order.id}/seats", data={"csrf_token": token, "seat": "not-a-seat"})
    assert junk.status == 422
    assert (await _state(sessionmaker, order.id))[1] == [VALID, VALID]

    done = await client.post(f"/org/orders/{order.id}/seats", data={"csrf_token": token, "seat": str(second.id)},
                             allow_redirects=False)
    assert done.status == 303
    found, tickets, seats = await _state(sessionmaker, order.id)
    assert (found.status, tickets, seats) == (OrderStatus.PAID, [VALID, REFUNDED], 1)
    async with sessionmaker() as db:
        [notice] = list(await db.scalars(select(Job).where(Job.kind == "mail.revoked")))
    assert (notice.payload["ticket_id"], notice.payload["reason"], notice.payload["refund_amount"]) == (
        str(second.id), "refunded", 2500)
    assert (await _api_order(client, key, webinar.id, order.id))["refunded_outside"]["seats_to_choose"] == 0
    assert await _api_order(client, key, webinar.id, order.id, status="problem") is None
    again = await client.post(f"/org/orders/{order.id}/seats", data={"csrf_token": token, "seat": str(first.id)})
    assert again.status == 409

    # The rest refunded later: the whole order, as before.
    rest = stripe_shapes.charge(VERSION, order.stripe_payment_intent_id, amount=5000, amount_refunded=5000)
    assert await _post(client, "charge.refunded", rest) == "order_refunded"
    _, tickets, seats = await _state(sessionmaker, order.id)
    assert (tickets, seats) == ([(TicketStatus.REVOKED, "refunded")] * 2, 0)


async def test_an_odd_amount_is_shown_as_such_and_changes_no_seat(client, sessionmaker):
    webinar, order, key = await _bought(client, sessionmaker, quantity=2)
    refund = stripe_shapes.charge(VERSION, order.stripe_payment_intent_id, amount=5000, amount_refunded=1000)
    assert await _post(client, "charge.refunded", refund) == "order_paid"
    listed = await _api_order(client, key, webinar.id, order.id, status="problem")
    assert listed["refunded_outside"] == {"amount": 1000, "seats": None, "seats_to_choose": 0}
    await sign_in(client, sessionmaker, "ada@example.com")
    html = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert "not a whole number of seats" in html
    form = await client.get(f"/org/orders/{order.id}/seats")
    assert "not a whole number of seats" in await form.text() and 'name="seat"' not in await form.text()
    refused = await client.post(f"/org/orders/{order.id}/seats", data={"csrf_token": csrf_of(await form.text())})
    assert refused.status == 409
    assert (await _state(sessionmaker, order.id))[1] == [VALID, VALID]


async def test_a_refund_made_by_this_service_is_not_one_to_choose_for(client, sessionmaker, make_worker, settings):
    webinar, order, key = await _bought(client, sessionmaker, quantity=2)
    async with sessionmaker() as db:
        first = await db.scalar(select(Ticket).where(Ticket.order_id == order.id, Ticket.seq == 0))
    response = await client.post(f"/api/tickets/{first.id}/revoke", json={"refund": True},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    await make_worker(settings).run_until_idle()  # dev mode: a test refund of one seat, recorded
    found, tickets, _ = await _state(sessionmaker, order.id)
    assert (found.amount_refunded, tickets) == (2500, [(TicketStatus.REVOKED, "organizer"), VALID])
    assert (await _api_order(client, key, webinar.id, order.id))["refunded_outside"] is None
    assert await _api_order(client, key, webinar.id, order.id, status="problem") is None
