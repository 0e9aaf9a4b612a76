"""Buyer-facing error pages speak the webinar's language, name it, lead back to its page and
carry the organizer's footer; the API keeps its JSON errors."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from tests import factories
from tests.buyer.conftest import profiled_organizer
from ticketing.db import utcnow
from ticketing.db.models import Webinar
from ticketing.errors import SoldOut
from ticketing.orders.service import check_on_sale


async def _german_webinar(sessionmaker, **overrides):
    owner, _ = await profiled_organizer(sessionmaker, name="Widget-Akademie")
    return await factories.webinar(sessionmaker, owner, title="Widgets für Fortgeschrittene", language="de", **overrides)


def _framed(page: str, webinar) -> None:
    """The webinar's frame: its title, a link back to its page, the organizer's footer."""
    assert "Widgets für Fortgeschrittene" in page
    assert f'<a href="/w/{webinar.id}">Zurück zu Widgets für Fortgeschrittene</a>' in page
    assert "Veranstaltet von Widget-Akademie" in page and "help@widgets.example" in page
    assert '<html lang="de">' in page


async def test_too_many_seats_is_a_german_409_with_one_seat_in_the_singular(client, sessionmaker):
    webinar = await _german_webinar(sessionmaker, capacity=3)
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(seats_taken=2))
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"}, allow_redirects=False)
    assert response.status == 409
    page = await response.text()
    _framed(page, webinar)
    assert "Nur noch 1 Platz ist frei." in page and "seats" not in page
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(capacity=5))
    page = await (await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "4"})).text()
    assert "Nur noch 3 Plätze sind frei." in page


async def test_english_says_one_seat_not_one_seats(client, sessionmaker):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets 101", capacity=1)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"})
    page = await response.text()
    assert response.status == 409 and "Only 1 seat is left." in page and "1 seats" not in page
    assert f'<a href="/w/{webinar.id}">Back to Widgets 101</a>' in page and "Organized by Widget Academy" in page
    with pytest.raises(SoldOut, match="^only 1 seat is left$") as refused:
        check_on_sale(webinar, 2, now=utcnow())
    assert refused.value.left == 1


async def test_bad_input_and_closed_sales_are_german_and_change_nothing(client, sessionmaker):
    webinar = await _german_webinar(sessionmaker)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "zwei"})
    assert response.status == 422
    page = await response.text()
    _framed(page, webinar)
    assert "Geben Sie die Zahl der Plätze als ganze Zahl ein." in page
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1", "email": "nicht-gültig"})
    assert response.status == 422 and "Geben Sie eine gültige E-Mail-Adresse ein." in await response.text()

    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(
            sales_end=utcnow() - dt.timedelta(minutes=1)))
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"})
    assert response.status == 409
    page = await response.text()
    _framed(page, webinar)
    assert "Der Verkauf für dieses Webinar ist beendet." in page
    async with sessionmaker() as session:
        assert (await session.get(Webinar, webinar.id)).seats_taken == 0


async def test_too_many_free_registrations_are_a_german_429(client, sessionmaker, make_settings, start_client):
    limited = await start_client(make_settings(register_rate_per_address="1"))
    webinar = await _german_webinar(sessionmaker, price_amount=0)
    first = await limited.post(f"/w/{webinar.id}/checkout", data={"email": "a@example.com"}, allow_redirects=False)
    assert first.status == 303
    response = await limited.post(f"/w/{webinar.id}/checkout", data={"email": "b@example.com"})
    assert response.status == 429 and "Retry-After" in response.headers
    page = await response.text()
    _framed(page, webinar)
    assert "Zu viele Versuche" in page
