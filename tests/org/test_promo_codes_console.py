"""The console's promo codes over HTTP: the list with uses, held uses and net revenue, and the
forms that add, change and delete codes through the same service as /api/promo-codes."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from tests import factories
from tests.org.conftest import csrf_of
from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, PromoCode
from ticketing.orders import promo_codes


@pytest.fixture
async def ada(client, sessionmaker, signed_in):
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    return organizer, key


async def _codes(sessionmaker) -> list[PromoCode]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(PromoCode).order_by(PromoCode.created_at)))


def _form(**overrides) -> dict[str, str]:
    return {"code": "PARTNER", "discount_kind": "percent_off", "discount": "20", "webinar_id": "", "max_uses": "",
            "valid_from": "", "valid_until": ""} | overrides


async def test_a_code_is_added_listed_edited_and_deleted(client, sessionmaker, ada):
    organizer, _ = ada
    webinar = await factories.webinar(sessionmaker, organizer, title="Widgets", timezone="Europe/Berlin",
                                      price_amount=2500)
    page = await client.get("/org/promo-codes")
    assert page.status == 200 and "No promo codes yet" in await page.text()
    csrf = csrf_of(await (await client.get("/org/promo-codes/new")).text())

    response = await client.post("/org/promo-codes", allow_redirects=False, data=_form(
        csrf_token=csrf, discount_kind="amount_off", discount="5.50", webinar_id=str(webinar.id), max_uses="10",
        valid_until="2030-01-31T18:00"))
    assert response.status == 303, await response.text()
    [code] = await _codes(sessionmaker)
    assert (code.code, code.amount_off, code.percent_off, code.max_uses, code.webinar_id) == (
        "PARTNER", 550, None, 10, webinar.id)
    assert code.valid_until.isoformat() == "2030-01-31T17:00:00+00:00"  # 18:00 in Berlin

    listing = await (await client.get("/org/promo-codes")).text()
    assert "“PARTNER” added" in listing and "€5.50 off" in listing and "Widgets" in listing and "0 / 10" in listing

    edit = await client.get(f"/org/promo-codes/{code.id}/edit")
    text = await edit.text()
    assert 'value="5.50"' in text and 'value="2030-01-31T18:00"' in text
    response = await client.post(f"/org/promo-codes/{code.id}/edit", allow_redirects=False, data=_form(
        csrf_token=csrf, code="partner-2", discount_kind="fixed_price", discount="0", webinar_id=""))
    assert response.status == 303, await response.text()
    [code] = await _codes(sessionmaker)
    assert (code.code, code.fixed_price, code.amount_off, code.webinar_id, code.max_uses, code.valid_until) == (
        "partner-2", 0, None, None, None, None)

    confirm = await client.get(f"/org/promo-codes/{code.id}/delete")
    assert confirm.status == 200 and "partner-2" in await confirm.text()
    response = await client.post(f"/org/promo-codes/{code.id}/delete", data={"csrf_token": csrf},
                                 allow_redirects=False)
    assert response.status == 303
    assert await _codes(sessionmaker) == []


async def test_every_problem_stands_next_to_its_field_at_once_and_nothing_is_saved(client, sessionmaker, ada):
    csrf = csrf_of(await (await client.get("/org/promo-codes/new")).text())
    response = await client.post("/org/promo-codes", data=_form(
        csrf_token=csrf, code="!", discount="150", max_uses="many", valid_from="2030-02-01T10:00",
        valid_until="2030-01-01T10:00"))
    assert response.status == 422
    text = await response.text()
    for field, words in (("code", "2 to 64 letters"), ("discount", "from 1 to 100"), ("max_uses", "whole number"),
                         ("valid_until", "after the start of validity")):
        assert f'id="{field}-error"' in text, field
        assert words in text.split(f'id="{field}-error">')[1].split("</p>")[0], field
    assert 'value="many"' in text and "Please correct the marked fields" in text
    assert await _codes(sessionmaker) == []

    # A code the organizer has already: refused beside the code, in any case.
    await client.post("/org/promo-codes", data=_form(csrf_token=csrf), allow_redirects=False)
    again = await client.post("/org/promo-codes", data=_form(csrf_token=csrf, code="partner"))
    assert again.status == 409
    assert "already have the code" in (await again.text()).split('id="code-error">')[1]
    assert len(await _codes(sessionmaker)) == 1


async def test_another_organizers_code_is_not_found(client, sessionmaker, ada):
    other, _ = await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    async with sessionmaker.begin() as session:
        theirs = await promo_codes.create_code(session, other, {"code": "BOB", "percent_off": 10})
    csrf = csrf_of(await (await client.get("/org/promo-codes/new")).text())
    for path in (f"/org/promo-codes/{theirs.id}/edit", f"/org/promo-codes/{theirs.id}/delete"):
        assert (await client.get(path)).status == 404
        assert (await client.post(path, data=_form(csrf_token=csrf))).status == 404
    assert "BOB" not in await (await client.get("/org/promo-codes")).text()
    assert len(await _codes(sessionmaker)) == 1


async def test_the_list_counts_uses_held_uses_and_revenue_net_of_refunds(client, sessionmaker, ada):
    organizer, key = ada
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=2000, capacity=10)
    async with sessionmaker.begin() as session:
        await promo_codes.create_code(session, organizer, {"code": "HALF", "percent_off": 50})
    # Two paid checkouts with the code and one still open.
    paid = []
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        response = await client.post(f"/w/{webinar.id}/checkout", data={"email": email, "code": "half"},
                                     allow_redirects=False)
        assert response.status == 303, await response.text()
        async with sessionmaker() as session:
            paid.append(await session.scalar(select(Order).where(Order.email == email)))
    for order in paid[:2]:
        session_obj = factories.checkout_session(webinar, amount_total=1000, session_id=order.stripe_session_id,
                                                 order_id=order.id, email=order.email)
        response = await factories.post_event(client, factories.event("checkout.session.completed", session_obj))
        assert response.status == 200
        if order is paid[0]:
            refund = factories.charge(session_obj["payment_intent"], amount=1000, amount_refunded=400)
            assert (await factories.post_event(client, factories.event("charge.refunded", refund))).status == 200
    async with sessionmaker() as session:
        assert (await session.get(Order, paid[1].id)).status == OrderStatus.PAID

    text = await (await client.get("/org/promo-codes")).text()
    row = text.split('id="code-half"')[1].split("</tr>")[0]
    assert '<td data-label="Uses" class="num uses">2</td>' in row
    assert '<td data-label="Reserved" class="num reserved">1</td>' in row
    assert "€16.00" in row  # 10.00 + 10.00 - 4.00 refunded

    # The second order's chargeback is lost: its money is gone too.
    async with sessionmaker.begin() as session:
        await session.execute(update(Order).where(Order.id == paid[1].id).values(dispute_lost_at=utcnow()))
    text = await (await client.get("/org/promo-codes")).text()
    assert "€6.00" in text.split('id="code-half"')[1].split("</tr>")[0]


@pytest.mark.parametrize("amount", ["1e999999", "9" * 5000, "1e-999999"])
async def test_an_amount_no_price_can_have_is_refused_beside_its_field(client, sessionmaker, ada, amount):
    organizer, _ = ada
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=2500)
    csrf = csrf_of(await (await client.get("/org/promo-codes/new")).text())
    response = await client.post("/org/promo-codes", data=_form(
        csrf_token=csrf, discount_kind="amount_off", discount=amount, webinar_id=str(webinar.id)))
    assert response.status == 422 and "Enter an amount like 5.00" in await response.text()
    assert await _codes(sessionmaker) == []
