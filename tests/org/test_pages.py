"""Console pages over HTTP: what is not yours is not there, the webinar form, a time change,
settings and API keys, each through the same service as the API."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from tests import factories
from tests.org.conftest import csrf_of
from ticketing.db.models import ApiKey, Job, Organizer, Webinar


@pytest.fixture
async def ada(client, sessionmaker, signed_in):
    """Ada, signed in on `client`, and her API key."""
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    return organizer, key


async def _csrf(client, path: str = "/org") -> str:
    return csrf_of(await (await client.get(path)).text())


def _form(**overrides: str) -> dict[str, str]:
    data = {"title": "Widgets", "description": "", "starts_at": "2030-01-31T18:00", "ends_at": "2030-01-31T19:30",
            "time_zone": "Europe/Berlin", "price": "25.00", "currency": "EUR", "capacity": "", "room": ""}
    data.update(overrides)
    return data


async def test_another_organizers_pages_are_not_found(client, sessionmaker, ada):
    other, _ = await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    theirs = await factories.webinar(sessionmaker, other, title="Bob's")
    csrf = await _csrf(client)
    for path in [f"/org/webinars/{theirs.id}", f"/org/webinars/{theirs.id}/edit", f"/org/webinars/{theirs.id}/cancel",
                 f"/org/webinars/{theirs.id}/attendees.csv", f"/org/webinars/{theirs.id}/sales.json"]:
        response = await client.get(path)
        assert response.status == 404, path
        assert "Bob's" not in await response.text()
    for path in [f"/org/webinars/{theirs.id}/edit", f"/org/webinars/{theirs.id}/cancel",
                 f"/org/webinars/{theirs.id}/host-link"]:
        response = await client.post(path, data={**_form(title="Mine now"), "csrf_token": csrf})
        assert response.status == 404, path
    async with sessionmaker() as session:
        webinar = await session.get(Webinar, theirs.id)
    assert (webinar.title, webinar.status.value) == ("Bob's", "scheduled")
    listing = await (await client.get("/org")).text()
    assert "Bob&#39;s" not in listing and "Bob's" not in listing


async def test_another_organizers_tickets_are_not_found(client, sessionmaker, ada, free_ticket):
    other, _ = await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    ticket_id = await free_ticket(other)
    csrf = await _csrf(client)
    for action in ("resend", "revoke", "refund"):
        assert (await client.get(f"/org/tickets/{ticket_id}/{action}")).status == 404
        assert (await client.post(f"/org/tickets/{ticket_id}/{action}", data={"csrf_token": csrf})).status == 404
    async with sessionmaker() as session:
        assert not list(await session.scalars(select(Job).where(Job.kind.in_(["mail.resend", "mail.revoked"]))))


@pytest.fixture
def free_ticket(sessionmaker):
    """A free webinar of `owner` with one registered ticket; returns the ticket's id."""
    from ticketing.orders import service as orders

    async def make(owner: Organizer):
        webinar = await factories.webinar(sessionmaker, owner, price_amount=0)
        async with sessionmaker.begin() as session:
            order, webinar = await orders.start_order(session, webinar.id, 1, "carl@example.com")
            await orders.register_free(session, order, webinar)
        from ticketing.db.models import Ticket

        async with sessionmaker() as session:
            return await session.scalar(select(Ticket.id).where(Ticket.webinar_id == webinar.id))

    return make


async def test_a_webinar_from_the_form_in_its_own_zone(client, sessionmaker, ada):
    csrf = await _csrf(client, "/org/webinars/new")
    response = await client.post("/org/webinars", data={**_form(capacity="40", price="19,5"), "csrf_token": csrf},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    async with sessionmaker() as session:
        webinar = await session.scalar(select(Webinar))
    assert response.headers["Location"] == f"/org/webinars/{webinar.id}"
    assert webinar.starts_at == dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)  # 18:00 in Berlin, winter time
    assert webinar.ends_at == dt.datetime(2030, 1, 31, 18, 30, tzinfo=dt.UTC)
    assert (webinar.timezone, webinar.price_amount, webinar.currency, webinar.capacity) == ("Europe/Berlin", 1950, "eur", 40)
    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    assert 'value="2030-01-31T18:00"' in edit and 'value="19.50"' in edit and "<option selected>Europe/Berlin</option>" in edit


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"title": "  "}, "title", "Title must not be empty."),
    ({"starts_at": "tomorrow"}, "starts_at", "Enter a date and time like 2030-01-31 18:00."),
    ({"starts_at": "2030-03-31T02:30", "ends_at": "2030-03-31T04:00"}, "starts_at",
     "2030-03-31 02:30 does not exist in Europe/Berlin (the clocks change then)."),
    ({"ends_at": "2030-01-31T17:00"}, "ends_at", "The end must be after the start."),
    ({"price": "12.345"}, "price", "EUR has 2 decimal places at most."),
    ({"price": "5.5", "currency": "JPY"}, "price", "JPY has 0 decimal places at most."),
    ({"price": "free"}, "price", "Enter a price like 25.00 (0 for free)."),
    ({"currency": "ABC"}, "currency", "Unknown currency 'abc'; use an ISO 4217 code like EUR."),
    ({"time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone 'Mars/Olympus'; use an IANA name like Europe/Berlin."),
    ({"capacity": "lots"}, "capacity", "Enter a whole number of seats, or leave it empty for no limit."),
    ({"room": "Bad Room!"}, "room", None),
])
async def test_form_errors_stand_next_to_their_field_with_what_was_typed(client, sessionmaker, ada, fields, field, message):
    csrf = await _csrf(client, "/org/webinars/new")
    response = await client.post("/org/webinars", data={**_form(**fields), "csrf_token": csrf})
    assert response.status == 422
    html = await response.text()
    assert f'id="{field}-error"' in html and f'aria-describedby="{field}-error"' in html or \
        f'aria-describedby="zone-hint {field}-error"' in html
    if message:
        assert message.replace("'", "&#39;") in html
    for name, value in fields.items():
        if name not in ("time_zone",):
            assert f'value="{value.strip()}"' in html or value.strip() == ""
    async with sessionmaker() as session:
        assert await session.scalar(select(Webinar)) is None


async def test_every_error_of_the_form_is_reported_at_once(client, sessionmaker, ada):
    """What the form cannot read (the price) and what the service refuses (an empty title, an
    end before the start, an unknown currency, a bad room) come back together."""
    csrf = await _csrf(client, "/org/webinars/new")
    fields = {"title": " ", "ends_at": "2030-01-31T17:00", "price": "lots", "currency": "ABC", "room": "Bad Room!",
              "capacity": "0"}
    response = await client.post("/org/webinars", data={**_form(**fields), "csrf_token": csrf})
    assert response.status == 422
    html = await response.text()
    shown = dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html))
    assert shown == {"title": "Title must not be empty.", "ends_at": "The end must be after the start.",
                     "price": "Enter a price like 25.00 (0 for free).",
                     "currency": "Unknown currency &#39;abc&#39;; use an ISO 4217 code like EUR.",
                     "capacity": "The number of seats must be between 1 and 1000000, or empty for no limit.",
                     "room": "Room must be 2 to 63 of a-z, 0-9, &#39;_&#39; and &#39;-&#39;, starting with a letter or digit."}
    assert "Please correct the marked fields." in html
    async with sessionmaker() as session:
        assert await session.scalar(select(Webinar)) is None

    # Editing reports them all at once too, and changes nothing.
    webinar = await factories.webinar(sessionmaker, ada[0], title="Kept")
    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    response = await client.post(f"/org/webinars/{webinar.id}/edit",
                                 data={**_form(title="", price="1.234", capacity="-1"), "csrf_token": csrf_of(edit)})
    assert response.status == 422
    shown = dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', await response.text()))
    assert set(shown) == {"title", "price", "capacity"}
    async with sessionmaker() as session:
        assert (await session.get(Webinar, webinar.id)).title == "Kept"


async def test_a_time_change_is_confirmed_first(client, sessionmaker, ada, free_ticket):
    organizer, _ = ada
    await free_ticket(organizer)
    async with sessionmaker() as session:
        webinar = await session.scalar(select(Webinar))
    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    values = {name: value for name, value in
              re.findall(r'<(?:input|textarea)[^>]*name="(\w+)"[^>]*value="([^"]*)"', edit)}
    values["time_zone"] = webinar.timezone
    values["description"] = webinar.description
    moved = (webinar.starts_at + dt.timedelta(days=1)).astimezone(dt.UTC)
    values["starts_at"] = moved.strftime("%Y-%m-%dT%H:%M")
    values["ends_at"] = (moved + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    values["time_zone"] = "UTC"
    asked = await client.post(f"/org/webinars/{webinar.id}/edit", data=values)
    assert asked.status == 200
    text = await asked.text()
    assert "The attendee gets a new mail" in text and 'name="confirm" value="time"' in text
    async with sessionmaker() as session:
        unchanged = await session.get(Webinar, webinar.id)
        assert (unchanged.starts_at, unchanged.sequence) == (webinar.starts_at, 0)
    confirmed = await client.post(f"/org/webinars/{webinar.id}/edit", data={**values, "confirm": "time"},
                                  allow_redirects=False)
    assert confirmed.status == 303
    async with sessionmaker() as session:
        changed = await session.get(Webinar, webinar.id)
        jobs = list(await session.scalars(select(Job.kind).where(Job.kind == "webinar.time_changed")))
    assert changed.starts_at == moved.replace(second=0, microsecond=0) and changed.sequence == 1
    assert jobs == ["webinar.time_changed"]

    # A change of title alone asks nothing.
    values.update(title="Renamed")
    saved = await client.post(f"/org/webinars/{webinar.id}/edit", data=values, allow_redirects=False)
    assert saved.status == 303


async def test_settings_through_the_profile_service(client, sessionmaker, ada):
    csrf = await _csrf(client, "/org/settings")
    bad = await client.post("/org/settings", data={"name": "Ada Events", "contact_email": "not mail",
                                                   "imprint_url": "", "terms_url": "", "csrf_token": csrf})
    assert bad.status == 422
    html = await bad.text()
    assert 'id="contact_email-error"' in html and 'value="not mail"' in html
    good = await client.post("/org/settings", data={"name": "Ada Events", "contact_email": "hello@ada.example",
                                                    "imprint_url": "https://ada.example/imprint", "terms_url": "",
                                                    "csrf_token": csrf}, allow_redirects=False)
    assert good.status == 303
    async with sessionmaker() as session:
        organizer = await session.scalar(select(Organizer))
    assert (organizer.name, organizer.contact_email, organizer.imprint_url, organizer.terms_url) == \
        ("Ada Events", "hello@ada.example", "https://ada.example/imprint", None)


async def test_the_console_speaks_the_chosen_language_else_the_browsers(client, sessionmaker, ada):
    english_browser = {"Accept-Language": "en-GB,en;q=0.9"}
    page = await (await client.get("/org/settings", headers=english_browser)).text()
    assert '<html lang="en">' in page and '<option value="" selected>As my browser prefers</option>' in page
    assert '<html lang="de">' in await (await client.get("/org/settings", headers={"Accept-Language": "de"})).text()
    profile = {"name": "Ada", "contact_email": "", "imprint_url": "", "terms_url": "", "csrf_token": csrf_of(page)}
    bad = await client.post("/org/settings", data={**profile, "console_language": "fr"})
    assert bad.status == 422 and 'id="console_language-error"' in await bad.text()
    saved = await client.post("/org/settings", data={**profile, "console_language": "de"}, allow_redirects=False)
    assert saved.status == 303
    # Chosen: German whatever the browser asks for, new webinars default to it too.
    page = await (await client.get("/org/settings", headers=english_browser)).text()
    assert '<html lang="de">' in page and "Sprache dieser Konsole" in page
    assert '<option value="de" lang="de" selected>Deutsch</option>' in page
    new = await (await client.get("/org/webinars/new", headers=english_browser)).text()
    assert '<option value="de" lang="de" selected>Deutsch</option>' in new
    back = await client.post("/org/settings", data={**profile, "console_language": ""}, allow_redirects=False)
    assert back.status == 303
    async with sessionmaker() as session:
        assert (await session.scalar(select(Organizer))).console_language is None
    assert '<html lang="en">' in await (await client.get("/org/settings", headers=english_browser)).text()


async def test_the_language_is_set_on_the_form_and_shown(client, sessionmaker, ada):
    csrf = await _csrf(client, "/org/webinars/new")
    response = await client.post("/org/webinars", data={**_form(language="de"), "csrf_token": csrf},
                                 allow_redirects=False)
    assert response.status == 303
    async with sessionmaker() as session:
        webinar = await session.scalar(select(Webinar))
    assert webinar.language == "de"
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert '<span id="webinar-language">Language: <span lang="de">Deutsch</span></span>' in page
    listing = await (await client.get("/org")).text()
    assert '<td data-label="Language" lang="de">Deutsch</td>' in listing
    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    assert '<option value="de" lang="de" selected>Deutsch</option>' in edit
    bad = await client.post("/org/webinars", data={**_form(language="fr"), "csrf_token": csrf})
    assert bad.status == 422 and 'id="language-error"' in await bad.text()


async def test_api_keys_made_in_the_console_work_until_revoked(client, sessionmaker, ada):
    _, first_key = ada
    csrf = await _csrf(client, "/org/keys")
    created = await client.post("/org/keys", data={"name": "export job", "csrf_token": csrf})
    html = await created.text()
    key = re.search(r'id="new-key" type="text" readonly value="(tk_[^"]+)"', html).group(1)
    assert "shown this once" in html
    assert key not in await (await client.get("/org/keys")).text()  # never again

    bearer = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/webinars", headers=bearer)).status == 200
    assert (await client.get("/api/webinars", headers={"Authorization": f"Bearer {first_key}"})).status == 200
    async with sessionmaker() as session:
        row = await session.scalar(select(ApiKey))
    assert row.prefix == key[:10] and row.last_used_at is not None and row.key_hash != key
    listing = await (await client.get("/org/keys")).text()
    assert "export job" in listing and f"{key[:10]}…" in listing

    revoke = await client.post(f"/org/keys/{row.id}/revoke", data={"csrf_token": csrf}, allow_redirects=False)
    assert revoke.status == 303
    assert (await client.get("/api/webinars", headers=bearer)).status == 401
    assert (await client.get("/api/webinars", headers={"Authorization": f"Bearer {first_key}"})).status == 200


async def test_api_keys_through_the_api(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker, email="ada@example.com")
    _, bobs = await factories.organizer(sessionmaker, email="bob@example.com")
    auth = {"Authorization": f"Bearer {key}"}
    made = await client.post("/api/keys", json={"name": "ci"}, headers=auth)
    assert made.status == 201
    body = await made.json()
    assert body["name"] == "ci" and body["key"].startswith(body["prefix"])
    listed = await (await client.get("/api/keys", headers=auth)).json()
    assert [k["id"] for k in listed["keys"]] == [body["id"]] and "key" not in listed["keys"][0]
    assert (await client.post("/api/keys", json={"name": ""}, headers=auth)).status == 422
    assert (await client.delete(f"/api/keys/{body['id']}", headers={"Authorization": f"Bearer {bobs}"})).status == 404
    assert (await client.delete(f"/api/keys/{body['id']}", headers=auth)).status == 204
    assert (await client.delete(f"/api/keys/{body['id']}", headers=auth)).status == 404
    assert (await client.get("/api/keys", headers={"Authorization": f"Bearer {body['key']}"})).status == 401


async def test_the_host_button_goes_into_the_room_as_moderator(client, sessionmaker, ada, settings):
    import jwt

    organizer, _ = ada
    webinar = await factories.webinar(sessionmaker, organizer, room="ada-live")
    csrf = await _csrf(client, f"/org/webinars/{webinar.id}")
    response = await client.post(f"/org/webinars/{webinar.id}/host-link", data={"csrf_token": csrf},
                                 allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(f"{settings.jitsi_url}/ada-live?jwt=")
    claims = jwt.decode(location.split("jwt=")[1], settings.jitsi_app_secret, algorithms=["HS256"],
                        audience=settings.jitsi_audience, options={"verify_nbf": False})
    assert claims["context"]["user"]["moderator"] is True and claims["room"] == "ada-live"
    assert (await client.post(f"/org/webinars/{webinar.id}/host-link", data={})).status == 403


async def test_a_ticket_a_won_dispute_gave_back_is_restored_from_the_console(client, sessionmaker, ada):
    from ticketing.db.models import Ticket, TicketStatus

    organizer, _ = ada
    webinar = await factories.webinar(sessionmaker, organizer)
    checkout = factories.checkout_session(webinar, email="dora@example.com")
    assert (await factories.post_event(client, factories.event("checkout.session.completed", checkout))).status == 200
    opened = factories.dispute(checkout["payment_intent"], amount=2500)
    assert (await factories.post_event(client, factories.event("charge.dispute.created", opened))).status == 200
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert "/restore" not in page  # not while the dispute is open
    won = dict(opened, status="won")
    assert (await factories.post_event(client, factories.event("charge.dispute.closed", won))).status == 200
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    [path] = re.findall(r'href="(/org/tickets/[0-9a-f-]+/restore)"', page)
    confirm = await (await client.get(path)).text()
    assert "dora@example.com gets the seat back" in confirm
    done = await client.post(path, data={"csrf_token": csrf_of(confirm)}, allow_redirects=False)
    assert done.status == 303
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.webinar_id == webinar.id))
    assert ticket.status == TicketStatus.VALID
