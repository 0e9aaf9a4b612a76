"""The order page: assigning seats, and what it refuses."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from tests import factories
from tests.buyer.conftest import SECRET
from tests.mail.test_delivery import buy
from tests.seats import join_codes, order_codes
from ticketing.access import join
from ticketing.access.tokens import Tokens
from ticketing.db import utcnow
from ticketing.db.models import Job, ReplacedCode, Ticket, Webinar


async def bought(make_settings, start_client, sessionmaker, *, quantity=3):
    settings = make_settings(jitsi_app_secret=SECRET)
    client = await start_client(settings)
    starts = utcnow() + dt.timedelta(minutes=5)  # doors already open, seats still assignable
    webinar = await factories.webinar(sessionmaker, starts_at=starts.isoformat(),
                                      ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    await buy(client, webinar, email="bea@example.com", quantity=quantity)
    [code] = (await order_codes(sessionmaker)).values()
    return settings, client, webinar, code


async def tickets(sessionmaker) -> list[Ticket]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Ticket).order_by(Ticket.seq)))


async def test_assigning_gives_the_attendee_their_own_link_and_token(make_settings, start_client, sessionmaker):
    settings, client, webinar, code = await bought(make_settings, start_client, sessionmaker)
    before = await join_codes(sessionmaker)
    response = await client.post(f"/o/{code}/seats/2", data={"name": " Carl  Attendee ", "email": "carl@example.com"},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith(f"/o/{code}?assigned=2")
    seat = (await tickets(sessionmaker))[1]
    assert (seat.name, seat.email, seat.code_sealed) == ("Carl Attendee", "carl@example.com", None)
    async with sessionmaker() as session:
        [mail] = await session.scalars(select(Job).where(Job.kind == "mail.assigned"))
        [replaced] = await session.scalars(select(ReplacedCode))
    assert mail.payload["ticket_id"] == str(seat.id)
    assert replaced.reason == "reassigned" and replaced.ticket_id == seat.id

    tokens = Tokens.from_settings(settings)
    admitted = await join.open_link(sessionmaker, tokens, mail.payload["code"], now=utcnow())
    user = tokens.verify(admitted.url.split("jwt=")[1])["context"]["user"]
    assert (user["id"], user["name"], user["email"]) == (str(seat.id), "Carl Attendee", "carl@example.com")
    gone = await join.open_link(sessionmaker, tokens, before[seat.id], now=utcnow())
    assert isinstance(gone, join.Gone) and gone.reason == join.REASSIGNED and gone.replaced_at is not None

    # The buyer's other seats keep their links.
    after = await join_codes(sessionmaker)
    assert seat.id not in after and all(after[t] == before[t] for t in after)


async def test_the_same_person_twice_is_one_mail(make_settings, start_client, sessionmaker):
    _, client, _, code = await bought(make_settings, start_client, sessionmaker)
    for _ in range(2):
        response = await client.post(f"/o/{code}/seats/1", data={"name": "Carl", "email": "carl@example.com"},
                                     allow_redirects=False)
        assert response.status == 303
    async with sessionmaker() as session:
        assert len(list(await session.scalars(select(Job).where(Job.kind == "mail.assigned")))) == 1


async def test_keeping_a_seat_mails_the_buyer_its_link(make_settings, start_client, sessionmaker):
    _, client, _, code = await bought(make_settings, start_client, sessionmaker)
    response = await client.post(f"/o/{code}/seats/3", data={"keep": "1"}, allow_redirects=False)
    assert response.status == 303
    seat = (await tickets(sessionmaker))[2]
    assert seat.email == "bea@example.com" and seat.assigned_at is not None
    async with sessionmaker() as session:
        [mail] = await session.scalars(select(Job).where(Job.kind == "mail.join"))
        reminders = list(await session.scalars(select(Job).where(Job.kind == "mail.reminder")))
    assert mail.payload["ticket_id"] == str(seat.id)
    assert reminders == []  # five minutes before the start: both reminder times have passed
    page = await (await client.get(f"/o/{code}")).text()
    assert "Kept by you (bea@example.com)" in page and f"/j/{mail.payload['code']}" in page


async def test_bad_input_changes_nothing(make_settings, start_client, sessionmaker):
    _, client, _, code = await bought(make_settings, start_client, sessionmaker)
    before = [(t.name, t.email, t.code_hash) for t in await tickets(sessionmaker)]
    cases = [
        (f"/o/{code}/seats/1", {"name": "Carl", "email": "not-an-address"}, 422),
        (f"/o/{code}/seats/1", {"name": "", "email": "carl@example.com"}, 422),
        (f"/o/{code}/seats/1", {"name": "Carl\x00", "email": "carl@example.com"}, 422),
        (f"/o/{code}/seats/9", {"name": "Carl", "email": "carl@example.com"}, 404),
        (f"/o/{code}/seats/x", {"name": "Carl", "email": "carl@example.com"}, 404),
        (f"/o/{'A' * 43}/seats/1", {"name": "Carl", "email": "carl@example.com"}, 404),
    ]
    for path, data, status in cases:
        response = await client.post(path, data=data, allow_redirects=False)
        assert response.status == status, (path, data, await response.text())
    assert "Enter a valid email address." in await (await client.post(
        f"/o/{code}/seats/1", data={"name": "Carl", "email": "nope"})).text()
    assert [(t.name, t.email, t.code_hash) for t in await tickets(sessionmaker)] == before
    assert (await client.get(f"/o/{'A' * 43}")).status == 404
    assert (await client.get("/o/short")).status == 404


async def test_no_reassigning_once_the_webinar_has_started(make_settings, start_client, sessionmaker):
    _, client, webinar, code = await bought(make_settings, start_client, sessionmaker)
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id)
                              .values(starts_at=utcnow() - dt.timedelta(minutes=1)))
    response = await client.post(f"/o/{code}/seats/1", data={"name": "Carl", "email": "carl@example.com"})
    assert response.status == 409 and "started" in await response.text()
    page = await (await client.get(f"/o/{code}")).text()
    assert "Seats can no longer be reassigned." in page and "<form" not in page
