"""Prices a promo code brings to the edges: a ticket type made free goes the free path (tickets
at once, no Checkout Session, the use counted), and a price below what a card can be charged,
but above nothing, is refused with a message on the page and in JSON, changing nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests import factories
from ticketing.db.models import Order, OrderLine, OrderStatus, PromoCode, Ticket
from ticketing.orders import promo_codes, ticket_types


async def _typed_webinar(sessionmaker):
    """A webinar selling a standard type at 25.00 and a student type at 15.00."""
    organizer, _ = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=2500, currency="eur", capacity=20)
    async with sessionmaker.begin() as session:
        student, _ = await ticket_types.create_type(session, organizer, webinar.id,
                                                    {"name": "Student", "price_amount": 1500})
    return organizer, webinar, student


async def _count(sessionmaker, model) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("discount", [{"percent_off": 100}, {"fixed_price": 0}])
async def test_a_type_made_free_by_a_code_is_issued_without_a_payment(start_client, stripe_settings, stripe_standin,
                                                                     sessionmaker, discount):
    client = await start_client(stripe_settings)
    organizer, webinar, student = await _typed_webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        await promo_codes.create_code(session, organizer, {"code": "CAMPUS", "webinar_id": str(webinar.id),
                                                           "ticket_type_ids": [str(student.id)], "max_uses": 5,
                                                           **discount})
    response = await client.post(f"/w/{webinar.id}/checkout", allow_redirects=False, data={
        f"quantity.{student.id}": "2", "email": "sam@example.com", "code": "campus"})
    assert response.status == 303, await response.text()
    assert "/checkout/success?order=" in response.headers["Location"]
    # Nothing to pay: Stripe is not asked for a session.
    assert stripe_standin.calls_to("POST", "/v1/checkout/sessions") == []
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
        line = await session.scalar(select(OrderLine))
        tickets = list(await session.scalars(select(Ticket)))
        code = await session.scalar(select(PromoCode))
    assert order.status == OrderStatus.PAID and order.expected_amount == 0 and order.stripe_session_id is None
    assert (line.ticket_type_id, line.quantity, line.unit_amount) == (student.id, 2, 0)
    assert len(tickets) == 2 and {t.ticket_type_id for t in tickets} == {student.id}
    assert (code.uses_paid, code.uses_reserved, code.revenue) == (1, 0, 0)

    # The code is for students only: a standard seat with it still costs its price, through Stripe.
    default = await _default(sessionmaker, webinar)
    response = await client.post(f"/w/{webinar.id}/checkout", allow_redirects=False, data={
        f"quantity.{default.id}": "1", "email": "sam@example.com", "code": "campus"})
    assert response.status == 303
    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    assert call.params["line_items"][0]["price_data"]["unit_amount"] == "2500"


async def _default(sessionmaker, webinar):
    async with sessionmaker() as session:
        return await ticket_types.default_type(session, webinar.id)


async def test_a_code_that_leaves_less_than_a_card_can_be_charged_is_refused(start_client, stripe_settings,
                                                                           stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    organizer, webinar, student = await _typed_webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        # 15.00 - 14.70 = 0.30, below the 0.50 a euro card payment must at least be.
        await promo_codes.create_code(session, organizer, {"code": "ALMOST", "amount_off": 1470})
    data = {f"quantity.{student.id}": "1", "email": "sam@example.com", "code": "almost"}

    page = await client.post(f"/w/{webinar.id}/checkout", allow_redirects=False, data=data)
    assert page.status == 422
    text = await page.text()
    assert 'id="code-error"' in text and "less than a card can be charged" in text
    assert 'value="almost"' in text  # what was typed stays in the field

    answer = await client.post(f"/w/{webinar.id}/checkout", allow_redirects=False,
                               json={"types": {str(student.id): 1}, "code": "almost"})
    # The buyer's routes answer with a page, JSON request or not.
    assert answer.status == 422
    assert 'id="error-message"' in await answer.text()

    assert stripe_standin.calls_to("POST", "/v1/checkout/sessions") == []
    assert await _count(sessionmaker, Order) == 0
    async with sessionmaker() as session:
        code = await session.scalar(select(PromoCode))
    assert (code.uses_reserved, code.uses_paid) == (0, 0)

    # Two seats come to 0.60, which a card can be charged: then the code is taken.
    response = await client.post(f"/w/{webinar.id}/checkout", allow_redirects=False,
                                 data={**data, f"quantity.{student.id}": "2"})
    assert response.status == 303, await response.text()
    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    assert call.params["line_items"][0]["price_data"]["unit_amount"] == "30"
