"""Promo codes through the API and the checkout, their uses counted exactly under concurrent
checkouts, on SQLite and PostgreSQL, with real HTTP, signed webhooks and the Stripe stand-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, update

from tests import factories
from ticketing.db import utcnow
from ticketing.db.models import Order, OrderLine, OrderStatus, PromoCode, Ticket, Webinar


@pytest.fixture
async def key(sessionmaker) -> str:
    _, api_key = await factories.organizer(sessionmaker)
    return api_key


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def _webinar(client, api_key, **overrides) -> dict:
    response = await client.post("/api/webinars", json=factories.webinar_input(**overrides), headers=auth(api_key))
    assert response.status == 201, await response.text()
    return await response.json()


async def _code(client, api_key, **fields) -> dict:
    response = await client.post("/api/promo-codes", json=fields, headers=auth(api_key))
    assert response.status == 201, await response.text()
    return await response.json()


async def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["message"] and "Traceback" not in error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


async def _row(sessionmaker, model, row_id):
    async with sessionmaker() as session:
        return await session.get(model, uuid.UUID(str(row_id)))


async def test_codes_are_created_listed_edited_and_removed(client, key):
    webinar = await _webinar(client, key)
    made = await _code(client, key, code="Partner10", percent_off=10, max_uses=5, webinar_id=webinar["id"])
    assert made["code"] == "Partner10" and made["percent_off"] == 10 and made["amount_off"] is None
    assert made["uses"] == 0 and made["uses_reserved"] == 0 and made["revenue"] == 0
    assert made["webinar_id"] == webinar["id"]
    listed = (await (await client.get("/api/promo-codes", headers=auth(key))).json())["promo_codes"]
    assert [c["id"] for c in listed] == [made["id"]]

    patched = await client.patch(f"/api/promo-codes/{made['id']}", json={"amount_off": 500, "max_uses": None},
                                 headers=auth(key))
    assert patched.status == 200, await patched.text()
    body = await patched.json()
    assert body["amount_off"] == 500 and body["percent_off"] is None and body["max_uses"] is None

    # Codes are one per organizer regardless of case.
    await _error(await client.post("/api/promo-codes", json={"code": "PARTNER10", "percent_off": 5},
                                   headers=auth(key)), 409)
    assert (await client.delete(f"/api/promo-codes/{made['id']}", headers=auth(key))).status == 204
    assert (await (await client.get("/api/promo-codes", headers=auth(key))).json())["promo_codes"] == []


async def test_bad_codes_are_refused_and_change_nothing(client, key, sessionmaker):
    webinar = await _webinar(client, key)
    cases = [
        ({"code": "X1", "percent_off": 101}, "percent_off"),
        ({"code": "X1", "percent_off": 0}, "percent_off"),
        ({"code": "X1", "amount_off": -5}, "amount_off"),
        ({"code": "X1", "fixed_price": -1}, "fixed_price"),
        ({"code": "X1", "percent_off": 10, "amount_off": 100}, "percent_off"),
        ({"code": "X1"}, "percent_off"),
        ({"code": "no spaces", "percent_off": 10}, "code"),
        ({"code": "X1", "percent_off": 10, "max_uses": 0}, "max_uses"),
        ({"code": "X1", "percent_off": 10, "valid_from": utcnow().isoformat(),
          "valid_until": (utcnow() - dt.timedelta(hours=1)).isoformat()}, "valid_until"),
        ({"code": "X1", "percent_off": 10, "ticket_type_ids": [str(uuid.uuid4())]}, "ticket_type_ids"),
        ({"code": "X1", "percent_off": 10, "colour": "red"}, "colour"),
    ]
    for fields, field in cases:
        await _error(await client.post("/api/promo-codes", json=fields, headers=auth(key)), 422, field=field)
    # Another organizer's webinar is unknown, not merely forbidden.
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    await _error(await client.post("/api/promo-codes", json={"code": "X1", "percent_off": 10,
                                                             "webinar_id": webinar["id"]}, headers=auth(other_key)),
                 404)
    mine = await _code(client, key, code="Mine", percent_off=10)
    await _error(await client.patch(f"/api/promo-codes/{mine['id']}", json={"percent_off": 20},
                                    headers=auth(other_key)), 404)
    await _error(await client.delete(f"/api/promo-codes/{mine['id']}", headers=auth(other_key)), 404)
    await _error(await client.get("/api/promo-codes"), 401)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PromoCode)) == 1
        assert (await session.get(PromoCode, uuid.UUID(mine["id"]))).percent_off == 10


async def test_a_code_prices_the_checkout_names_itself_on_the_line_and_counts_when_paid(
        start_client, stripe_settings, stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(client, api_key, price_amount=2500, capacity=10, title="Widgets")
    code = await _code(client, api_key, code="Partner", percent_off=20, max_uses=3)

    response = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                                 data={"quantity": "2", "email": "bea@example.com", "code": "pArTnEr"})
    assert response.status == 303, await response.text()
    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    assert call.params["line_items"] == [
        {"quantity": "2", "price_data": {"currency": "eur", "unit_amount": "2000",
                                         "product_data": {"name": "Widgets · Ticket · code PARTNER"}}},
    ]
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
        line = await session.scalar(select(OrderLine))
    assert order.expected_amount == 4000 and line.unit_amount == 2000 and order.promo_use == "reserved"
    listed = (await (await client.get("/api/promo-codes", headers=auth(api_key))).json())["promo_codes"]
    assert listed[0]["uses_reserved"] == 1 and listed[0]["uses"] == 0

    [stripe_session] = stripe_standin.sessions.values()
    row = await _row(sessionmaker, Webinar, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(
        row, quantity=2, amount_total=4000, session_id=stripe_session["id"], order_id=order.id))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    # The same event again changes nothing.
    await factories.post_event(client, evt)
    got = await (await client.get("/api/promo-codes", headers=auth(api_key))).json()
    [counted] = got["promo_codes"]
    assert counted["id"] == code["id"]
    assert counted["uses"] == 1 and counted["uses_reserved"] == 0 and counted["revenue"] == 4000
    assert counted["net_revenue"] == {"eur": 4000}


async def test_an_expired_checkout_releases_its_use(start_client, settings, sessionmaker):
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(client, api_key, price_amount=2500)
    await _code(client, api_key, code="ONCE", amount_off=500, max_uses=1)
    first = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                              data={"email": "a@example.com", "code": "once"})
    assert first.status == 303, await first.text()
    # The only use is held: a second buyer is told so, and no order is made.
    held = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                             data={"email": "b@example.com", "code": "ONCE"})
    assert held.status == 409
    async with sessionmaker() as session:
        [order] = list(await session.scalars(select(Order)))
    row = await _row(sessionmaker, Webinar, webinar["id"])
    expired = factories.event("checkout.session.expired", factories.checkout_session(
        row, amount_total=2000, session_id=order.stripe_session_id, order_id=order.id, payment_status="unpaid",
        status="expired"))
    assert (await factories.post_event(client, expired)).status == 200
    async with sessionmaker() as session:
        code = await session.scalar(select(PromoCode))
        assert (await session.get(Order, order.id)).status == OrderStatus.EXPIRED
    assert code.uses_reserved == 0 and code.uses_paid == 0
    again = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                              data={"email": "b@example.com", "code": "ONCE"})
    assert again.status == 303, await again.text()


async def test_a_payment_refunded_for_want_of_a_seat_gives_its_use_back(start_client, settings, sessionmaker):
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(client, api_key, price_amount=2500, capacity=1)
    await _code(client, api_key, code="ONCE", amount_off=500, max_uses=1)
    started = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                                data={"email": "a@example.com", "code": "once"})
    assert started.status == 303, await started.text()
    async with sessionmaker() as session:
        [order] = list(await session.scalars(select(Order)))
    async with sessionmaker.begin() as session:  # the last seat went to someone else meanwhile
        await session.execute(update(Webinar).where(Webinar.id == order.webinar_id).values(seats_taken=1))
    row = await _row(sessionmaker, Webinar, webinar["id"])
    paid = factories.event("checkout.session.completed", factories.checkout_session(
        row, amount_total=2000, session_id=order.stripe_session_id, order_id=order.id))
    assert (await factories.post_event(client, paid)).status == 200
    async with sessionmaker() as session:
        code = await session.scalar(select(PromoCode))
        assert (await session.get(Order, order.id)).status == OrderStatus.OVERSOLD
    assert (code.uses_reserved, code.uses_paid, code.revenue) == (0, 0, 0)
    again = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                              data={"email": "b@example.com", "code": "ONCE"})
    assert again.status == 409  # sold out, but not "used up"
    assert "used up" not in await again.text()


async def test_concurrent_checkouts_never_use_a_code_more_often_than_allowed(start_client, settings, sessionmaker):
    first, second = await start_client(settings), await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(first, api_key, price_amount=2500)
    await _code(first, api_key, code="FLASH", percent_off=50, max_uses=3)
    answers = await asyncio.gather(*(
        (first, second)[i % 2].post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                                    data={"email": f"b{i}@example.com", "code": "flash"})
        for i in range(12)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [303] * 3 + [409] * 9
    async with sessionmaker() as session:
        code = await session.scalar(select(PromoCode))
        priced = await session.scalar(select(func.count()).select_from(Order).where(Order.promo_code_id == code.id))
    assert code.uses_reserved == 3 and priced == 3


async def test_codes_that_are_unknown_expired_or_too_deep_are_refused(client, key, sessionmaker):
    webinar = await _webinar(client, key, price_amount=2500)
    other = await _webinar(client, key, price_amount=2500)
    await _code(client, key, code="OTHER", percent_off=10, webinar_id=other["id"])
    await _code(client, key, code="OLD", percent_off=10, valid_until=(utcnow() - dt.timedelta(minutes=1)).isoformat())
    await _code(client, key, code="DEEP", amount_off=2460)
    path = f"/w/{webinar['id']}/checkout"
    # The buyer gets a page saying why, and nothing is ordered or held.
    for code, status, words in [("nope", 404, "not known"), ("other", 404, "not known"), ("old", 409, "expired"),
                                ("deep", 422, "less than a card")]:
        response = await client.post(path, data={"email": "a@example.com", "code": code}, allow_redirects=False)
        assert response.status == status, (code, await response.text())
        assert words in await response.text() and "Traceback" not in await response.text()
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0
        assert sum(c.uses_reserved for c in await session.scalars(select(PromoCode))) == 0


async def test_a_code_that_makes_the_order_free_issues_the_tickets_without_payment(client, key, sessionmaker):
    webinar = await _webinar(client, key, price_amount=2500)
    await _code(client, key, code="GUEST", fixed_price=0, max_uses=2)
    response = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                                 data={"email": "guest@example.com", "code": "guest"})
    assert response.status == 303, await response.text()
    assert "/checkout/success?order=" in response.headers["Location"]
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        code = await session.scalar(select(PromoCode))
    assert order.status == OrderStatus.PAID and order.stripe_session_id is None and tickets == 1
    assert code.uses_paid == 1 and code.uses_reserved == 0 and code.revenue == 0


async def test_a_code_reveals_the_hidden_type_it_names(client, key, sessionmaker):
    webinar = await _webinar(client, key, price_amount=2500, capacity=10)
    hidden = await client.post(f"/api/webinars/{webinar['id']}/ticket-types", headers=auth(key),
                               json={"name": "Press", "price_amount": 1000, "hidden": True})
    assert hidden.status == 201
    press = await hidden.json()
    data = {f"quantity.{press['id']}": "1", "email": "p@example.com"}
    refused = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False, data=data)
    assert refused.status == 409
    await _code(client, key, code="PRESS", percent_off=100 - 60, webinar_id=webinar["id"],
                ticket_type_ids=[press["id"]])
    shown = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False, data={**data, "code": "press"})
    assert shown.status == 303, await shown.text()
    async with sessionmaker() as session:
        line = await session.scalar(select(OrderLine))
    assert line.ticket_type_id == uuid.UUID(press["id"]) and line.unit_amount == 600


async def test_a_paid_order_with_a_code_that_changed_no_price_still_counts_its_use(client, key, sessionmaker):
    # Such a payment looks like a plain one; the use must still move from reserved to used.
    webinar = await _webinar(client, key, price_amount=2500, capacity=10)
    await _code(client, key, code="FLAT", fixed_price=3000)  # above the price: no seat gets dearer
    response = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                                 data={"email": "a@example.com", "code": "flat"})
    assert response.status == 303, await response.text()
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
    assert order.expected_amount == 2500
    assert (await _row(sessionmaker, Webinar, webinar["id"])).typed is False
    row = await _row(sessionmaker, Webinar, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(
        row, amount_total=2500, session_id=order.stripe_session_id, order_id=order.id))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    async with sessionmaker() as session:
        code = await session.scalar(select(PromoCode))
        assert (await session.get(Order, order.id)).promo_use == "used"
    assert code.uses_paid == 1 and code.uses_reserved == 0 and code.revenue == 2500
