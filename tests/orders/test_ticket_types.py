"""Ticket types through the API, checkout by type, and seats counted per type and per webinar,
on SQLite and PostgreSQL, with real HTTP, signed webhooks and the Stripe stand-in."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import uuid

import pytest
from sqlalchemy import func, select

from tests import factories
from tests.buyer.conftest import html_of, text_of
from tests.seats import order_codes
from ticketing.db import utcnow
from ticketing.db.models import Job, Order, OrderLine, OrderStatus, Ticket, TicketType, Webinar
from ticketing.orders.service import start_order


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


async def _types(client, api_key, webinar_id) -> list[dict]:
    response = await client.get(f"/api/webinars/{webinar_id}/ticket-types", headers=auth(api_key))
    assert response.status == 200, await response.text()
    return (await response.json())["ticket_types"]


async def _add(client, api_key, webinar_id, **fields) -> dict:
    response = await client.post(f"/api/webinars/{webinar_id}/ticket-types", json=fields, headers=auth(api_key))
    assert response.status == 201, await response.text()
    return await response.json()


async def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["message"] and "Traceback" not in error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


async def test_a_webinar_starts_with_its_price_as_the_default_type(client, key):
    webinar = await _webinar(client, key, price_amount=2500, capacity=10)
    [default] = await _types(client, key, webinar["id"])
    assert default["default"] is True and default["name"] == "Ticket"
    assert default["price_amount"] == 2500 and default["currency"] == "EUR"
    assert default["capacity"] is None and default["sales_start"] is None and default["sales_end"] is None
    assert default["tickets_sold"] == 0 and default["seats_left"] == 10 and default["on_sale"] is True

    # The webinar's price and its default type's price are one.
    patched = await client.patch(f"/api/webinars/{webinar['id']}", json={"price_amount": 3000}, headers=auth(key))
    assert patched.status == 200
    [default] = await _types(client, key, webinar["id"])
    assert default["price_amount"] == 3000
    renamed = await client.patch(f"/api/ticket-types/{default['id']}", json={"name": "Standard", "price_amount": 3500},
                                 headers=auth(key))
    assert renamed.status == 200, await renamed.text()
    got = await (await client.get(f"/api/webinars/{webinar['id']}", headers=auth(key))).json()
    assert got["price_amount"] == 3500


async def test_types_are_added_edited_listed_in_order_and_removed(client, key, sessionmaker):
    webinar = await _webinar(client, key, capacity=10)
    closes = (utcnow() + dt.timedelta(days=1)).replace(microsecond=0)
    early = await _add(client, key, webinar["id"], name="Early bird", price_amount=1500, capacity=4,
                       sales_end=closes.isoformat(), position=0, description="Until tomorrow")
    assert early["capacity"] == 4 and early["seats_left"] == 4 and early["default"] is False
    assert dt.datetime.fromisoformat(early["sales_end"]) == closes
    student = await _add(client, key, webinar["id"], name="Student", price_amount=900, position=5, hidden=True)
    names = [t["name"] for t in await _types(client, key, webinar["id"])]
    assert names == ["Ticket", "Early bird", "Student"]

    moved = await client.patch(f"/api/ticket-types/{student['id']}", json={"position": 0, "hidden": False},
                               headers=auth(key))
    assert moved.status == 200 and (await moved.json())["hidden"] is False
    async with sessionmaker() as session:
        assert (await session.get(Webinar, uuid.UUID(webinar["id"]))).typed is True

    assert (await client.delete(f"/api/ticket-types/{student['id']}", headers=auth(key))).status == 204
    assert [t["name"] for t in await _types(client, key, webinar["id"])] == ["Ticket", "Early bird"]
    [default] = [t for t in await _types(client, key, webinar["id"]) if t["default"]]
    await _error(await client.delete(f"/api/ticket-types/{default['id']}", headers=auth(key)), 409)


async def test_bad_ticket_types_are_refused_and_change_nothing(client, key, sessionmaker):
    webinar = await _webinar(client, key, capacity=10)
    path = f"/api/webinars/{webinar['id']}/ticket-types"
    after_end = dt.datetime.fromisoformat(webinar["ends_at"]) + dt.timedelta(hours=1)
    cases = [
        ({"name": "Big", "price_amount": 1000, "capacity": 11}, "capacity"),
        ({"name": "Late", "price_amount": 1000, "sales_end": after_end.isoformat()}, "sales_end"),
        ({"name": "Negative", "price_amount": -1}, "price_amount"),
        ({"name": "Tiny", "price_amount": 10}, "price_amount"),
        ({"name": "", "price_amount": 1000}, "name"),
        ({"name": "Window", "price_amount": 1000, "sales_start": utcnow().isoformat(),
          "sales_end": (utcnow() - dt.timedelta(hours=1)).isoformat()}, "sales_end"),
        ({"name": "Odd", "price_amount": 1000, "colour": "red"}, "colour"),
        ({"name": "Flag", "price_amount": 1000, "hidden": "yes"}, "hidden"),
    ]
    for fields, field in cases:
        await _error(await client.post(path, json=fields, headers=auth(key)), 422, field=field)
    [default] = await _types(client, key, webinar["id"])
    await _error(await client.patch(f"/api/ticket-types/{default['id']}", json={"capacity": 20}, headers=auth(key)),
                 422, field="capacity")

    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    await _error(await client.post(path, json={"name": "Mine", "price_amount": 1000}, headers=auth(other_key)), 403)
    await _error(await client.patch(f"/api/ticket-types/{default['id']}", json={"name": "x"},
                                    headers=auth(other_key)), 403)
    await _error(await client.delete(f"/api/ticket-types/{uuid.uuid4()}", headers=auth(key)), 404)

    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TicketType)) == 1
        assert (await session.get(Webinar, uuid.UUID(webinar["id"]))).typed is False
    # The webinar cannot shrink below a type's capacity.
    vip = await _add(client, key, webinar["id"], name="VIP", price_amount=5000, capacity=5)
    await _error(await client.patch(f"/api/webinars/{webinar['id']}", json={"capacity": 4}, headers=auth(key)), 422,
                 field="capacity")
    assert vip["capacity"] == 5


async def test_one_order_with_several_types_pays_once_and_each_seat_has_its_type(
        start_client, stripe_settings, stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    owner, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(client, api_key, price_amount=2500, capacity=10, title="Widgets")
    early = await _add(client, api_key, webinar["id"], name="Early bird", price_amount=1500, capacity=3)
    [default] = [t for t in await _types(client, api_key, webinar["id"]) if t["default"]]

    response = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False, data={
        f"quantity.{early['id']}": "2", f"quantity.{default['id']}": "1", "email": "bea@example.com"})
    assert response.status == 303, await response.text()
    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    assert call.params["line_items"] == [
        {"quantity": "1", "price_data": {"currency": "eur", "unit_amount": "2500",
                                         "product_data": {"name": "Widgets · Ticket"}}},
        {"quantity": "2", "price_data": {"currency": "eur", "unit_amount": "1500",
                                         "product_data": {"name": "Widgets · Early bird"}}},
    ]
    assert call.params["metadata"]["quantity"] == "3"
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
        lines = {line.ticket_type_id: (line.quantity, line.unit_amount)
                 for line in await session.scalars(select(OrderLine))}
    assert order.expected_amount == 2500 + 2 * 1500
    assert lines == {uuid.UUID(early["id"]): (2, 1500), uuid.UUID(default["id"]): (1, 2500)}

    [stripe_session] = stripe_standin.sessions.values()
    webinar_row = await _webinar_row(sessionmaker, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(
        webinar_row, quantity=3, amount_total=5500, session_id=stripe_session["id"], order_id=order.id))
    answered = await factories.post_event(client, evt)
    assert (await answered.json())["outcome"] == "order_paid"

    tickets = (await (await client.get(f"/api/webinars/{webinar['id']}/tickets", headers=auth(api_key))).json())["tickets"]
    assert sorted(t["ticket_type"] for t in tickets) == ["Early bird", "Early bird", "Ticket"]
    as_csv = await client.get(f"/api/webinars/{webinar['id']}/tickets", headers={**auth(api_key), "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert sorted(r["ticket_type"] for r in rows) == ["Early bird", "Early bird", "Ticket"]
    kinds = {t["name"]: t for t in await _types(client, api_key, webinar["id"])}
    assert kinds["Early bird"]["tickets_sold"] == 2 and kinds["Early bird"]["seats_left"] == 1
    assert kinds["Ticket"]["tickets_sold"] == 1
    got = await (await client.get(f"/api/webinars/{webinar['id']}", headers=auth(api_key))).json()
    assert got["tickets_sold"] == 3

    # More than the type has left is refused before any session is made.
    refused = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False,
                                data={f"quantity.{early['id']}": "2"})
    assert refused.status == 409
    assert len(stripe_standin.calls_to("POST", "/v1/checkout/sessions")) == 1


async def _webinar_row(sessionmaker, webinar_id) -> Webinar:
    async with sessionmaker() as session:
        return await session.get(Webinar, uuid.UUID(str(webinar_id)))


async def _start(sessionmaker, webinar_id, lines) -> Order:
    async with sessionmaker.begin() as session:
        order, _ = await start_order(session, uuid.UUID(str(webinar_id)), 0, "buyer@example.com", lines=lines)
        order.stripe_session_id = "cs_test_" + uuid.uuid4().hex
    return order


async def test_a_type_is_never_oversold_under_concurrent_webhooks_and_the_late_payer_is_refunded(
        start_client, settings, sessionmaker):
    first, second = await start_client(settings), await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(first, api_key, capacity=10)
    vip = await _add(first, api_key, webinar["id"], name="VIP", price_amount=5000, capacity=3)
    vip_id = uuid.UUID(vip["id"])
    orders = [await _start(sessionmaker, webinar["id"], {vip_id: 2}) for _ in range(3)]
    row = await _webinar_row(sessionmaker, webinar["id"])
    events = [factories.event("checkout.session.completed", factories.checkout_session(
        row, quantity=2, amount_total=10000, session_id=order.stripe_session_id, order_id=order.id))
        for order in orders]
    answers = await asyncio.gather(*(factories.post_event((first, second)[i % 2], e) for i, e in enumerate(events)))
    assert [a.status for a in answers] == [200] * 3
    outcomes = sorted([(await a.json())["outcome"] for a in answers])
    assert outcomes == ["order_oversold", "order_oversold", "order_paid"]

    async with sessionmaker() as session:
        kind = await session.get(TicketType, vip_id)
        seats = await session.scalar(select(Webinar.seats_taken).where(Webinar.id == row.id))
        tickets = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.ticket_type_id == vip_id))
        refunds = list(await session.scalars(select(Job).where(Job.kind == "payment.refund")))
        statuses = sorted(o.status for o in await session.scalars(select(Order)))
    assert kind.seats_taken == 2 and seats == 2 and tickets == 2
    assert len(refunds) == 2
    assert statuses == [OrderStatus.OVERSOLD, OrderStatus.OVERSOLD, OrderStatus.PAID]


async def test_the_webinar_is_never_oversold_across_types(start_client, settings, sessionmaker):
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(client, api_key, capacity=3)
    a = uuid.UUID((await _add(client, api_key, webinar["id"], name="A", price_amount=1000))["id"])
    b = uuid.UUID((await _add(client, api_key, webinar["id"], name="B", price_amount=2000))["id"])
    first, second = await _start(sessionmaker, webinar["id"], {a: 2}), await _start(sessionmaker, webinar["id"], {b: 2})
    row = await _webinar_row(sessionmaker, webinar["id"])
    answers = await asyncio.gather(*(factories.post_event(client, factories.event(
        "checkout.session.completed", factories.checkout_session(
            row, quantity=2, amount_total=order.expected_amount, session_id=order.stripe_session_id,
            order_id=order.id))) for order in (first, second)))
    assert sorted([(await r.json())["outcome"] for r in answers]) == ["order_oversold", "order_paid"]
    async with sessionmaker() as session:
        taken = {k.name: k.seats_taken for k in await session.scalars(select(TicketType))}
        seats = await session.scalar(select(Webinar.seats_taken).where(Webinar.id == row.id))
    assert seats == 2 and sorted(taken.values()) == [0, 0, 2]


async def test_a_payment_after_its_type_stopped_selling_is_refunded(client, key, sessionmaker):
    webinar = await _webinar(client, key, capacity=10)
    early = await _add(client, key, webinar["id"], name="Early bird", price_amount=1500,
                       sales_end=(utcnow() + dt.timedelta(days=1)).isoformat())
    order = await _start(sessionmaker, webinar["id"], {uuid.UUID(early["id"]): 1})
    closed = await client.patch(f"/api/ticket-types/{early['id']}", headers=auth(key),
                                json={"sales_end": (utcnow() - dt.timedelta(minutes=1)).isoformat()})
    assert closed.status == 200, await closed.text()
    row = await _webinar_row(sessionmaker, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(
        row, amount_total=1500, session_id=order.stripe_session_id, order_id=order.id))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_late"
    async with sessionmaker() as session:
        refunds = list(await session.scalars(select(Job).where(Job.kind == "payment.refund")))
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 0
        assert (await session.get(TicketType, uuid.UUID(early["id"]))).seats_taken == 0
    assert len(refunds) == 1


async def test_revoking_a_ticket_frees_its_type_seat(client, key, sessionmaker):
    webinar = await _webinar(client, key, capacity=10)
    vip = await _add(client, key, webinar["id"], name="VIP", price_amount=5000, capacity=1)
    order = await _start(sessionmaker, webinar["id"], {uuid.UUID(vip["id"]): 1})
    row = await _webinar_row(sessionmaker, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(
        row, amount_total=5000, session_id=order.stripe_session_id, order_id=order.id))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    [ticket] = (await (await client.get(f"/api/webinars/{webinar['id']}/tickets", headers=auth(key))).json())["tickets"]
    assert ticket["ticket_type"] == "VIP" and ticket["ticket_type_id"] == vip["id"]
    assert (await client.post(f"/api/tickets/{ticket['id']}/revoke", headers=auth(key))).status == 200
    kinds = {t["name"]: t for t in await _types(client, key, webinar["id"])}
    assert kinds["VIP"]["tickets_sold"] == 0 and kinds["VIP"]["seats_left"] == 1


async def test_seats_sold_before_a_webinar_had_types_stay_with_its_default_type(client, key, sessionmaker):
    """The default type of an untyped webinar takes the webinar's count when the first type is added."""
    webinar = await _webinar(client, key, capacity=5)
    row = await _webinar_row(sessionmaker, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(row, quantity=2))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    await _add(client, key, webinar["id"], name="VIP", price_amount=5000, capacity=3)
    kinds = {t["name"]: t for t in await _types(client, key, webinar["id"])}
    assert kinds["Ticket"]["tickets_sold"] == 2 and kinds["VIP"]["tickets_sold"] == 0
    assert kinds["VIP"]["seats_left"] == 3
    # A plain checkout event of the default type now takes the full path and counts on both.
    evt = factories.event("checkout.session.completed", factories.checkout_session(row, quantity=3))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    kinds = {t["name"]: t for t in await _types(client, key, webinar["id"])}
    assert kinds["Ticket"]["tickets_sold"] == 5 and kinds["VIP"]["seats_left"] == 0


async def test_the_buyer_sees_the_types_on_sale_buys_two_and_each_seat_names_its_type(
        make_settings, smtp, start_client, sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    webinar = await _webinar(client, api_key, capacity=10, price_amount=2500, title="Widgets")
    soon = (utcnow() + dt.timedelta(days=1)).replace(microsecond=0)
    early = await _add(client, api_key, webinar["id"], name="Early bird", price_amount=1500, capacity=3,
                       sales_end=soon.isoformat(), description="For the quick ones")
    partner = await _add(client, api_key, webinar["id"], name="Partner", price_amount=1000, hidden=True)
    await _add(client, api_key, webinar["id"], name="Last call", price_amount=3000, sales_start=soon.isoformat())
    closed = await _add(client, api_key, webinar["id"], name="Pre-sale", price_amount=1200,
                        sales_end=(utcnow() - dt.timedelta(hours=1)).isoformat())
    [default] = [t for t in await _types(client, api_key, webinar["id"]) if t["default"]]

    page = await client.get(f"/w/{webinar['id']}")
    assert page.status == 200
    html = await page.text()
    for shown in ("Early bird", "For the quick ones", "€15.00", "€25.00", "Last call", "On sale from", "Pre-sale",
                  "Sales have closed"):
        assert shown in html, shown
    assert "Partner" not in html
    assert f'name="quantity.{early["id"]}"' in html and f'name="quantity.{default["id"]}"' in html
    assert f'name="quantity.{closed["id"]}"' not in html

    bought = await client.post(f"/w/{webinar['id']}/checkout", allow_redirects=False, data={
        f"quantity.{early['id']}": "1", f"quantity.{default['id']}": "1", "email": "bea@example.com"})
    assert bought.status == 303, await bought.text()
    pay_url = bought.headers["Location"].removeprefix(settings.base_url)
    paid = await client.post(pay_url, data={"email": "bea@example.com", "name": "Bea"}, allow_redirects=False)
    assert paid.status == 303, await paid.text()

    [order_code] = (await order_codes(sessionmaker)).values()
    order_page = await (await client.get(f"/o/{order_code}")).text()
    assert order_page.count('class="seat-type"') == 2
    assert "Early bird" in order_page and "1 × €15.00" in order_page and "1 × €25.00" in order_page

    # Nothing of a hidden or closed type can be bought, and nothing is left behind.
    for type_id in (closed["id"], partner["id"]):
        refused = await client.post(f"/w/{webinar['id']}/checkout", data={f"quantity.{type_id}": "1"},
                                    allow_redirects=False)
        assert refused.status == 409
    unknown = await client.post(f"/w/{webinar['id']}/checkout", data={f"quantity.{uuid.uuid4()}": "1"},
                                allow_redirects=False)
    assert unknown.status == 404
    empty = await client.post(f"/w/{webinar['id']}/checkout", data={f"quantity.{early['id']}": "0"},
                              allow_redirects=False)
    assert empty.status == 422
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1

    await make_worker(settings).run_until_idle()
    [message] = smtp.to("bea@example.com")
    for body in (text_of(message), html_of(message)):
        assert "Early bird" in body and "1 × €15.00" in body and "1 × €25.00" in body and "€40.00" in body


async def test_revoking_with_refund_returns_that_seats_own_price(client, key, sessionmaker, make_worker, settings):
    webinar = await _webinar(client, key, capacity=10, price_amount=2500)
    vip = await _add(client, key, webinar["id"], name="VIP", price_amount=9000)
    [default] = [t for t in await _types(client, key, webinar["id"]) if t["default"]]
    order = await _start(sessionmaker, webinar["id"], {uuid.UUID(vip["id"]): 1, uuid.UUID(default["id"]): 1})
    row = await _webinar_row(sessionmaker, webinar["id"])
    evt = factories.event("checkout.session.completed", factories.checkout_session(
        row, quantity=2, amount_total=11500, session_id=order.stripe_session_id, order_id=order.id))
    assert (await (await factories.post_event(client, evt)).json())["outcome"] == "order_paid"
    tickets = (await (await client.get(f"/api/webinars/{webinar['id']}/tickets", headers=auth(key))).json())["tickets"]
    [vip_ticket] = [t for t in tickets if t["ticket_type"] == "VIP"]
    revoked = await client.post(f"/api/tickets/{vip_ticket['id']}/revoke", json={"refund": True}, headers=auth(key))
    assert revoked.status == 200 and (await revoked.json())["refund_queued"] is True
    await make_worker(settings).run_until_idle()
    async with sessionmaker() as session:
        refreshed = await session.get(Order, order.id)
    assert refreshed.amount_refunded == 9000
