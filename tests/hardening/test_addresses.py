"""One address check at every door (email-validator through `ticketing.inputs.email_address`):
what the mail composer would refuse is refused where it comes in, and what is stored is the
normalised address that is mailed. Seat numbers out of range are simply unknown."""

from __future__ import annotations

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from tests import factories
from tests.access.conftest import add_ticket
from tests.buyer.test_order_page import bought, tickets
from tests.hardening.conftest import TICKETING
from tests.org.conftest import csrf_of, sign_in
from ticketing.db.models import Order, Organizer, Registration

REFUSED = ["a,b@example.com", "g;h@example.com", '"@example.com', "<c@example.com>", "e(f)@example.com",
           "a,b@x", "Bea <bea@example.com>", "bea@localhost", "zoë@example.com"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _count(sessionmaker, model) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_seat_assignment_refuses_next_to_the_field_and_stores_the_normalised_address(
        make_settings, start_client, sessionmaker):
    _, client, _, code = await bought(make_settings, start_client, sessionmaker)
    before = [(t.name, t.email, t.code_hash) for t in await tickets(sessionmaker)]
    for value in REFUSED:
        response = await client.post(f"/o/{code}/seats/1", data={"name": "Carl", "email": value})
        assert response.status == 422, value
        assert "Enter a valid email address." in await response.text()
    assert [(t.name, t.email, t.code_hash) for t in await tickets(sessionmaker)] == before
    response = await client.post(f"/o/{code}/seats/1", data={"name": "Carl", "email": "Carl@Bücher.Example"},
                                 allow_redirects=False)
    assert response.status == 303
    assert (await tickets(sessionmaker))[0].email == "Carl@xn--bcher-kva.example"


@pytest.mark.parametrize("seat", ["99999999999999999999", "2147483648", "0", "-1", "²", "1.0", "%201"])
async def test_seat_numbers_out_of_range_are_404(make_settings, start_client, sessionmaker, seat):
    _, client, _, code = await bought(make_settings, start_client, sessionmaker)
    response = await client.post(f"/o/{code}/seats/{seat}", data={"name": "Carl", "email": "carl@example.com"})
    assert response.status == 404
    page = await client.get(f"/o/{code}?assigned={seat}")
    assert page.status == 200


HUGE = "99999999999999999999"


async def test_huge_ids_anywhere_are_404(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker)
    await sign_in(client, sessionmaker, "ada@example.com")
    for path in (f"/w/{HUGE}", f"/org/webinars/{HUGE}", f"/org/webinars/{HUGE}/edit", f"/c/{HUGE}", f"/j/{HUGE}",
                 f"/o/{HUGE}", f"/r/{HUGE}", f"/w/{HUGE}/calendar.ics"):
        assert (await client.get(path, allow_redirects=False)).status == 404, path
    for path in (f"/api/webinars/{HUGE}", f"/api/webinars/{HUGE}/tickets", f"/api/webinars/{HUGE}/attendance"):
        response = await client.get(path, headers=auth(key))
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found", path
    for path in (f"/api/tickets/{HUGE}/resend", f"/w/{HUGE}/checkout"):
        assert (await client.post(path, headers=auth(key), json={})).status == 404, path


async def test_checkout_and_free_registration_refuse_and_store_normalised(client, sessionmaker):
    paid = await factories.webinar(sessionmaker)
    free = await factories.webinar(sessionmaker, price_amount=0)
    for value in REFUSED:
        for webinar in (paid, free):
            response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1", "email": value},
                                         allow_redirects=False)
            assert response.status == 422, (value, await response.text())
            page = await response.text()
            assert 'id="email-error"' in page and 'aria-invalid="true"' in page and "Enter a valid email address." in page
            assert f'value="{escape(value)}"' in page  # what was typed stays in the field
            answer = await client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1, "email": value},
                                       allow_redirects=False)
            assert answer.status == 422
    assert await _count(sessionmaker, Order) == 0 and await _count(sessionmaker, Registration) == 0
    response = await client.post(f"/w/{free.id}/checkout", data={"email": "Reg@Example.COM"}, allow_redirects=False)
    assert response.status == 303
    async with sessionmaker() as session:
        [registration] = await session.scalars(select(Registration))
    assert registration.email == "Reg@example.com"


async def test_ticket_patch_and_organizer_profile_refuse_with_422(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    ticket, _ = await add_ticket(sessionmaker, webinar)
    for value in REFUSED:
        response = await client.patch(f"/api/tickets/{ticket.id}", json={"email": value}, headers=auth(key))
        assert response.status == 422 and (await response.json())["error"]["field"] == "email", value
        for field in ("contact_email", "email"):
            response = await client.patch("/api/organizer", json={field: value}, headers=auth(key))
            assert response.status == 422 and (await response.json())["error"]["field"] == field, value
    response = await client.patch(f"/api/tickets/{ticket.id}", json={"email": "Bea@Bücher.example"}, headers=auth(key))
    assert response.status == 200 and (await response.json())["email"] == "Bea@xn--bcher-kva.example"
    async with sessionmaker() as session:
        stored = await session.get(Organizer, owner.id)
    assert (stored.email, stored.contact_email) == ("ada@example.com", None)


async def test_console_settings_and_sign_in_refuse_next_to_the_field(client, sessionmaker):
    await factories.organizer(sessionmaker)
    await sign_in(client, sessionmaker, "ada@example.com")
    form = await client.get("/org/settings")
    for value in REFUSED:
        response = await client.post("/org/settings", data={"name": "Ada", "contact_email": value,
                                                             "csrf_token": csrf_of(await form.text())})
        assert response.status == 422
        assert 'id="contact_email-error"' in await response.text()
    other = await client.get("/org/login")
    response = await client.post("/org/login", data={"email": "a,b@example.com", "csrf_token": csrf_of(await other.text())})
    assert response.status == 422


@pytest.mark.parametrize("value", ["a,b@example.com", "e(f)@example.com", "<c@example.com>"])
async def test_cli_organizer_create_and_update_refuse_in_one_line(cli, sessionmaker, value):
    assert TICKETING.is_file()
    created = await cli("organizer", "create", "--name", "Ada", "--email", value)
    assert created.returncode != 0 and len(created.stderr.splitlines()) == 1 and created.stdout == ""
    await factories.organizer(sessionmaker)
    updated = await cli("organizer", "update", "--email", "ada@example.com", "--new-email", value)
    assert updated.returncode != 0 and len(updated.stderr.splitlines()) == 1
    assert await _count(sessionmaker, Organizer) == 1
