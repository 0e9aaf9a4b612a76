"""Buying: the public page, POST /w/{id}/checkout through the real Stripe client against the
stand-in, and dev mode's test-payment page running the real webhook path."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import func, select

from tests import factories
from ticketing.db.models import Order, OrderStatus, Ticket, Webinar, WebinarStatus


async def _webinar(sessionmaker, **overrides) -> Webinar:
    return await factories.webinar(sessionmaker, **overrides)


async def _count(sessionmaker, model, *where) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_checkout_creates_a_stripe_session_and_redirects_to_it(start_client, stripe_settings, stripe_standin,
                                                                     sessionmaker):
    client = await start_client(stripe_settings)
    webinar = await _webinar(sessionmaker, price_amount=1999, currency="usd", title="Widgets & Co")
    before = int(time.time())
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "3", "email": "bea@example.com"},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()

    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    [stripe_session] = stripe_standin.sessions.values()
    assert response.headers["Location"] == stripe_session["url"]

    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.webinar_id == webinar.id))
    assert order.stripe_session_id == stripe_session["id"]
    assert order.status == OrderStatus.PENDING and order.quantity == 3 and order.expected_amount == 3 * 1999

    params = call.params
    assert params["mode"] == "payment"
    metadata = {"webinar_id": str(webinar.id), "quantity": "3", "order_id": str(order.id)}
    assert params["metadata"] == metadata
    assert params["payment_intent_data"] == {"metadata": metadata}
    assert params["client_reference_id"] == str(order.id)
    assert params["customer_email"] == "bea@example.com"
    assert params["line_items"] == [{"quantity": "3", "price_data": {
        "currency": "usd", "unit_amount": "1999", "product_data": {"name": "Widgets & Co"}}}]
    assert params["success_url"].startswith(f"{stripe_settings.base_url}/checkout/success")
    assert params["cancel_url"] == f"{stripe_settings.base_url}/w/{webinar.id}"
    expires = int(params["expires_at"])
    assert before + 30 * 60 <= expires <= int(time.time()) + 30 * 60 + 1
    assert call.idempotency_key == f"checkout-{order.id}"
    assert call.headers["Authorization"] == f"Bearer {stripe_settings.stripe_secret_key}"


async def test_checkout_without_email_leaves_it_to_stripe(start_client, stripe_settings, stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    webinar = await _webinar(sessionmaker)
    response = await client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1}, allow_redirects=False)
    assert response.status == 303
    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    assert "customer_email" not in call.params
    assert call.params["line_items"][0]["quantity"] == "1"


async def test_sold_out_and_cancelled_webinars_answer_409_without_calling_stripe(
        start_client, stripe_settings, stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    full = await _webinar(sessionmaker, capacity=2)
    async with sessionmaker.begin() as session:
        (await session.get(Webinar, full.id)).seats_taken = 2
    cancelled = await _webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        (await session.get(Webinar, cancelled.id)).status = WebinarStatus.CANCELLED
    few = await _webinar(sessionmaker, capacity=3)

    for webinar_id, quantity in ((full.id, 1), (cancelled.id, 1), (few.id, 4)):
        response = await client.post(f"/w/{webinar_id}/checkout", data={"quantity": str(quantity)},
                                     allow_redirects=False)
        assert response.status == 409, (webinar_id, await response.text())
        assert "traceback" not in (await response.text()).lower()
    assert stripe_standin.calls == []
    assert await _count(sessionmaker, Order) == 0


async def test_checkout_bad_input(start_client, stripe_settings, stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    webinar = await _webinar(sessionmaker)
    cases = [
        (f"/w/{webinar.id}/checkout", {"data": {"quantity": "many"}}, 422),
        (f"/w/{webinar.id}/checkout", {"data": {"quantity": "0"}}, 422),
        (f"/w/{webinar.id}/checkout", {"data": {"quantity": "51"}}, 422),
        (f"/w/{webinar.id}/checkout", {"data": {"email": "not an email"}}, 422),
        (f"/w/{webinar.id}/checkout", {"data": {"email": "a\x00@b.com"}}, 422),
        (f"/w/{webinar.id}/checkout", {"json": {"email": ["bea@example.com"]}}, 422),
        (f"/w/{webinar.id}/checkout", {"data": b"{nope", "headers": {"Content-Type": "application/json"}}, 400),
        (f"/w/{uuid.uuid4()}/checkout", {"data": {"quantity": "1"}}, 404),
        ("/w/garbage/checkout", {"data": {"quantity": "1"}}, 404),
    ]
    for path, kwargs, status in cases:
        response = await client.post(path, allow_redirects=False, **kwargs)
        assert response.status == status, (path, kwargs, await response.text())
    assert stripe_standin.calls == []
    assert await _count(sessionmaker, Order) == 0


async def test_stripe_down_answers_503_and_keeps_no_session(start_client, stripe_settings, stripe_standin,
                                                            sessionmaker):
    client = await start_client(stripe_settings)
    webinar = await _webinar(sessionmaker)
    stripe_standin.fail_next(1, status=500, should_retry=False)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    assert response.status == 503
    assert "traceback" not in (await response.text()).lower()
    assert stripe_standin.sessions == {}
    async with sessionmaker() as session:
        orders = list(await session.scalars(select(Order)))
    assert all(o.stripe_session_id is None and o.status == OrderStatus.PENDING for o in orders)


async def test_public_page_shows_the_webinar(client, sessionmaker):
    webinar = await _webinar(sessionmaker, title="Gears <and> Levers", price_amount=2500, currency="EUR", capacity=7)
    response = await client.get(f"/w/{webinar.id}")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "Gears &lt;and&gt; Levers" in page
    assert "€25.00" in page
    assert '<dd id="seats-left">7</dd>' in page
    assert f'action="/w/{webinar.id}/checkout"' in page and ">Buy<" in page
    # The start as an ISO instant the page's script shows in the viewer's own zone.
    assert f'datetime="{webinar.starts_at.isoformat().replace("+00:00", "Z")}"' in page

    async with sessionmaker.begin() as session:
        (await session.get(Webinar, webinar.id)).seats_taken = 7
    sold_out = await (await client.get(f"/w/{webinar.id}")).text()
    assert "sold out" in sold_out.lower() and ">Buy<" not in sold_out

    assert (await client.get(f"/w/{uuid.uuid4()}")).status == 404
    assert (await client.get("/w/not-an-id")).status == 404


async def test_dev_checkout_page_pays_through_the_real_webhook(client, settings, sessionmaker):
    assert settings.dev_checkout
    webinar = await _webinar(sessionmaker, capacity=5)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"}, allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(f"{settings.base_url}/dev/checkout/cs_test_")
    path = location.removeprefix(settings.base_url)

    page = await client.get(path)
    assert page.status == 200
    assert "test payment" in (await page.text()).lower()

    for form in ({"email": "nobody"}, {"email": "bea@example.com", "name": "Bea\x00"}):
        refused = await client.post(path, data=form, allow_redirects=False)
        assert refused.status == 422, form
    assert await _count(sessionmaker, Ticket) == 0

    paid = await client.post(path, data={"email": "bea@example.com", "name": "Bea"}, allow_redirects=False)
    assert paid.status == 303, await paid.text()
    assert paid.headers["Location"].startswith("/checkout/success")
    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.webinar_id == webinar.id))
        tickets = list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))
    assert order.status == OrderStatus.PAID
    assert len(tickets) == 2 and {t.email for t in tickets} == {"bea@example.com"}

    # Paying the same test checkout again changes nothing.
    again = await client.post(path, data={"email": "bea@example.com"}, allow_redirects=False)
    assert again.status == 303
    assert await _count(sessionmaker, Ticket) == 2

    success = await client.get(paid.headers["Location"])
    assert success.status == 200 and "on its way" in (await success.text())


async def test_dev_checkout_is_absent_with_a_stripe_key(start_client, stripe_settings):
    client = await start_client(stripe_settings)
    assert (await client.get("/dev/checkout/cs_test_x")).status == 404
    assert (await client.post("/dev/checkout/cs_test_x", data={"email": "a@b.c"})).status in (404, 405)


async def test_unknown_dev_checkout_is_404(client):
    assert (await client.get("/dev/checkout/cs_test_unknown")).status == 404
