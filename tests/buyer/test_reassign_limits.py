"""Giving seats away is bounded: per seat and per order, in any hour and any day; beyond it a
429 page in the webinar's language and nothing changes. Every reassignment is shown to the
buyer on the order page and to the organizer in the console. A free registration's seat is
not passed on at all."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from tests import factories
from tests.buyer.conftest import SECRET
from tests.mail.test_delivery import buy
from tests.org.conftest import sign_in
from tests.seats import order_codes
from ticketing.db import utcnow
from ticketing.db.models import Job, Organizer, ReplacedCode, Ticket
from ticketing.orders import registrations


async def _bought(make_settings, start_client, sessionmaker, *, quantity=3, language="en", **values):
    settings = make_settings(jitsi_app_secret=SECRET, **values)
    client = await start_client(settings)
    starts = utcnow() + dt.timedelta(days=2)
    webinar = await factories.webinar(sessionmaker, starts_at=starts.isoformat(), language=language,
                                      ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    await buy(client, webinar, email="bea@example.com", quantity=quantity)
    [code] = (await order_codes(sessionmaker)).values()
    return client, webinar, code


async def _assign(client, code, seat, n):
    return await client.post(f"/o/{code}/seats/{seat}", data={"name": f"Person {n}", "email": f"p{n}@example.com"},
                             allow_redirects=False)


async def _state(sessionmaker):
    async with sessionmaker() as session:
        tickets = [(t.email, t.code_hash) for t in await session.scalars(select(Ticket).order_by(Ticket.seq))]
        mails = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "mail.assigned"))
    return tickets, mails


async def test_a_seat_passed_on_too_often_is_429_in_the_webinars_language(make_settings, start_client, sessionmaker):
    client, _, code = await _bought(make_settings, start_client, sessionmaker, language="de",
                                    reassign_per_seat_hour="2")
    assert [(await _assign(client, code, 1, n)).status for n in range(2)] == [303, 303]
    before = await _state(sessionmaker)
    refused = await _assign(client, code, 1, 2)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 60
    text = await refused.text()
    assert '<html lang="de">' in text and "zu oft an andere vergeben" in text
    assert await _state(sessionmaker) == before  # nothing changed, nothing mailed
    assert (await _assign(client, code, 2, 3)).status == 303  # another seat has its own allowance


async def test_an_order_has_its_seats_plus_a_bounded_number_more(make_settings, start_client, sessionmaker):
    client, _, code = await _bought(make_settings, start_client, sessionmaker, quantity=2,
                                    reassign_per_seat_hour="0", reassign_per_order_hour="1")
    statuses = [(await _assign(client, code, seat, n)).status for n, seat in enumerate((1, 2, 1, 2))]
    assert statuses == [303, 303, 303, 429]


async def test_the_daily_limit_holds_beyond_the_hour(make_settings, start_client, sessionmaker):
    client, _, code = await _bought(make_settings, start_client, sessionmaker,
                                    reassign_per_seat_hour="0", reassign_per_seat_day="1")
    assert (await _assign(client, code, 1, 0)).status == 303
    refused = await _assign(client, code, 1, 1)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 3600


async def test_the_limit_holds_across_app_instances(make_settings, start_client, sessionmaker):
    client, _, code = await _bought(make_settings, start_client, sessionmaker, reassign_per_seat_hour="2")
    other = await start_client(make_settings(jitsi_app_secret=SECRET, reassign_per_seat_hour="2"))
    statuses = [(await _assign(c, code, 1, n)).status for n, c in enumerate((client, other, other))]
    assert statuses == [303, 303, 429]


async def test_every_reassignment_is_shown_to_buyer_and_organizer(make_settings, start_client, sessionmaker):
    client, webinar, code = await _bought(make_settings, start_client, sessionmaker)
    for n in range(2):
        assert (await _assign(client, code, 1, n)).status == 303
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ReplacedCode)) == 2
    page = await (await client.get(f"/o/{code}")).text()
    seat = page.split('id="seat-1"')[1].split('id="seat-2"')[0]
    assert "Given to someone on:" in seat and seat.count("<time datetime=") == 2
    async with sessionmaker() as session:
        owner = await session.get(Organizer, webinar.organizer_id)
    await sign_in(client, sessionmaker, owner.email)
    console = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert "Passed on by the buyer 2×" in console


async def test_a_free_registrations_seat_is_not_passed_on(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, price_amount=0)
    async with sessionmaker.begin() as session:
        await registrations.register(session, webinar.id, "reg@example.com", now=utcnow())
    async with sessionmaker() as session:
        [job] = await session.scalars(select(Job).where(Job.kind == registrations.CONFIRM_MAIL))
    assert (await client.get(f"/r/{job.payload['code']}")).status == 200
    [code] = (await order_codes(sessionmaker)).values()  # the registrant's order mail carries it
    page = await (await client.get(f"/o/{code}")).text()
    assert "free registration" in page and 'class="assign"' not in page
    before = await _state(sessionmaker)
    refused = await client.post(f"/o/{code}/seats/1", data={"name": "Stranger", "email": "stranger@example.com"})
    assert refused.status == 409
    assert await _state(sessionmaker) == before
