"""The console does what the API does about money and mail: the sales end in the form, the
status its rule gives, late orders among those to look at, free registrations awaiting their
confirmation, and a ticket's stored delivery state with the address correction before a resend."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update

from tests import factories
from tests.org.conftest import csrf_of
from tests.org.test_pages import _csrf, _form, ada, free_ticket  # noqa: F401  (fixtures)
from ticketing.db import utcnow
from ticketing.db.models import Job, Order, OrderStatus, Ticket, TicketDelivery, TicketStatus, Webinar
from ticketing.orders import registrations


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_sales_end_is_a_local_time_in_the_webinars_zone(client, sessionmaker, ada):
    csrf = await _csrf(client, "/org/webinars/new")
    response = await client.post("/org/webinars", data={**_form(sales_end="2030-01-30T12:00"), "csrf_token": csrf},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    async with sessionmaker() as session:
        webinar = await session.scalar(select(Webinar))
    assert webinar.sales_end == dt.datetime(2030, 1, 30, 11, 0, tzinfo=dt.UTC)  # noon in Berlin
    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    assert 'name="sales_end" type="datetime-local" value="2030-01-30T12:00"' in edit
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    # Said once: when buying actually stops, and why that is before the sales end.
    sales_end = re.sub(r"\s+", " ", re.search(r'<p id="sales-end">(.*?)</p>', page, re.S).group(1))
    assert sales_end == ('Buying stops: Wednesday 30 January 2030, 11:30 <span class="muted">(30 minutes before the'
                         ' sales end, Wednesday 30 January 2030, 12:00: the shortest time Stripe gives a buyer to pay;'
                         ' buyers see this time on the public page)</span>')

    # Emptied, sales close when the webinar ends again (as `"sales_end": null` does through the API).
    saved = await client.post(f"/org/webinars/{webinar.id}/edit",
                              data={**_form(sales_end=""), "csrf_token": csrf_of(edit)}, allow_redirects=False)
    assert saved.status == 303, await saved.text()
    async with sessionmaker() as session:
        assert (await session.get(Webinar, webinar.id)).sales_end is None
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    sales_end = re.sub(r"\s+", " ", re.search(r'<p id="sales-end">(.*?)</p>', page, re.S).group(1))
    assert sales_end.startswith("Buying stops: Thursday 31 January 2030, 19:00 ")
    assert "(30 minutes before the webinar ends, as no sales end is set:" in sales_end


async def test_sales_end_errors_stand_next_to_the_field(client, sessionmaker, ada):
    csrf = await _csrf(client, "/org/webinars/new")
    for value, message in (("2030-01-31T20:00", "The end of sales must not be after the end."),
                           ("soon", "Enter a date and time like 2030-01-31 18:00.")):
        response = await client.post("/org/webinars", data={**_form(sales_end=value), "csrf_token": csrf})
        assert response.status == 422
        html = await response.text()
        assert f'<p class="field-error" id="sales_end-error">{message}</p>' in html
        assert 'aria-describedby="sales-end-hint zone-hint sales_end-error" aria-invalid="true"' in html
        assert f'value="{value}"' in html
    async with sessionmaker() as session:
        assert await session.scalar(select(Webinar)) is None


async def test_the_status_follows_the_sales_rule(client, sessionmaker, ada):
    organizer, _ = ada
    closing = await factories.webinar(sessionmaker, organizer, title="Closing", capacity=2)
    full = await factories.webinar(sessionmaker, organizer, title="Full", capacity=1)
    async with sessionmaker.begin() as session:
        # Sales end in 20 minutes: a paid checkout needs 30, so the buyer's page says closed.
        await session.execute(update(Webinar).where(Webinar.id == closing.id)
                              .values(sales_end=utcnow() + dt.timedelta(minutes=20)))
        await session.execute(update(Webinar).where(Webinar.id == full.id).values(seats_taken=1))
    listing = await (await client.get("/org")).text()
    rows = dict(re.findall(r'>(Closing|Full)</a>.*?class="status status-[a-z-]+">([a-z ]+)<', listing, re.S))
    assert rows == {"Closing": "sales closed", "Full": "sold out"}
    buyer_page = await client.get(f"/w/{closing.id}")
    assert "Sales have closed for this webinar" in await buyer_page.text()


async def test_a_late_order_is_among_those_to_look_at_as_in_the_api(client, sessionmaker, ada):
    organizer, key = ada
    webinar = await factories.webinar(sessionmaker, organizer)
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id)
                              .values(sales_end=utcnow() - dt.timedelta(minutes=5)))
    checkout = factories.checkout_session(webinar, email="tardy@example.com")
    assert (await factories.post_event(client, factories.event("checkout.session.completed", checkout))).status == 200
    async with sessionmaker() as session:
        [order] = list(await session.scalars(select(Order)))
    assert order.status == OrderStatus.LATE

    listed = await client.get(f"/api/webinars/{webinar.id}/orders?status=problem", headers=auth(key))
    assert [o["id"] for o in (await listed.json())["orders"]] == [str(order.id)]
    late = await client.get(f"/api/webinars/{webinar.id}/orders?status=late", headers=auth(key))
    assert [o["id"] for o in (await late.json())["orders"]] == [str(order.id)]
    unknown = await client.get(f"/api/webinars/{webinar.id}/orders?status=odd", headers=auth(key))
    assert unknown.status == 422 and "problem" in (await unknown.json())["error"]["message"]

    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    section = page[page.index('id="problems-heading"'):page.index('id="attendees-heading"')]
    assert "tardy@example.com" in section and "late" in section and order.problem in section
    german = await (await client.get(f"/org/webinars/{webinar.id}", headers={"Accept-Language": "de"})).text()
    section = german[german.index('id="problems-heading"'):german.index('id="attendees-heading"')]
    assert "nach Verkaufsende bezahlt; automatisch erstattet" in section and order.problem not in section


async def test_free_registrations_awaiting_confirmation_are_counted(client, sessionmaker, ada):
    organizer, _ = ada
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=0)
    async with sessionmaker.begin() as session:
        for email in ("one@example.com", "two@example.com"):
            await registrations.register(session, webinar.id, email, now=utcnow())
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert '<dt>Awaiting confirmation</dt><dd data-live="pending_registrations">2</dd>' in page
    assert "<dt>Revenue</dt>" not in page
    figures = await (await client.get(f"/org/webinars/{webinar.id}/sales.json")).json()
    assert (figures["pending_registrations"], figures["tickets_sold"]) == (2, 0)

    # One confirms through the mailed link: a seat taken, one still waiting, still no money shown.
    async with sessionmaker() as session:
        [job] = list(await session.scalars(select(Job).where(Job.kind == registrations.CONFIRM_MAIL).limit(1)))
    assert (await client.get(f"/r/{job.payload['code']}")).status == 200
    page = await (await client.get(f"/org/webinars/{webinar.id}")).text()
    assert '<dt>Awaiting confirmation</dt><dd data-live="pending_registrations">1</dd>' in page
    assert '<span data-live="tickets_sold">1</span>' in page and "<dt>Revenue</dt>" not in page


async def test_the_attendee_list_shows_the_tickets_stored_delivery_state(client, sessionmaker, ada, free_ticket):
    organizer, _ = ada
    ticket_id = await free_ticket(organizer)
    async with sessionmaker.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            delivery_status=TicketDelivery.QUEUED, delivery_error="recipient refused for now: 451 4.3.0 try again later"))
    async with sessionmaker() as session:
        webinar_id = await session.scalar(select(Ticket.webinar_id).where(Ticket.id == ticket_id))
    page = await (await client.get(f"/org/webinars/{webinar_id}")).text()
    assert '<span class="mail-retrying">retrying</span><br><span class="mail-error">recipient refused for now: 451' in page
    async with sessionmaker.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            delivery_status=TicketDelivery.FAILED, delivery_error="recipient refused: 550 5.1.1 mailbox unavailable"))
    page = await (await client.get(f"/org/webinars/{webinar_id}")).text()
    assert '<span class="mail-failed">failed</span><br><span class="mail-error">recipient refused: 550' in page


async def test_correcting_an_address_calls_the_apis_service_then_offers_the_resend(client, sessionmaker, ada,
                                                                                    free_ticket):
    organizer, _ = ada
    ticket_id = await free_ticket(organizer)
    path = f"/org/tickets/{ticket_id}/address"
    form = await (await client.get(path)).text()
    assert 'value="carl@example.com"' in form and '<label for="email">New address</label>' in form
    csrf = csrf_of(form)

    for typed, message in (("not an address", "Not an email address: &#39;not an address&#39; (an email address must have an @-sign)."),
                           ("", "Email is required: the address the ticket&#39;s mails go to.")):
        response = await client.post(path, data={"email": typed, "csrf_token": csrf})
        assert response.status == 422
        html = await response.text()
        assert f'<p class="field-error" id="email-error">{message}</p>' in html
        assert 'aria-invalid="true" aria-describedby="email-error"' in html
    assert (await client.post(path, data={"email": "x@example.com"})).status == 403  # no CSRF token
    async with sessionmaker() as session:
        assert (await session.get(Ticket, ticket_id)).email == "carl@example.com"

    response = await client.post(path, data={"email": " carla@example.com ", "csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/org/tickets/{ticket_id}/resend"
    confirm = await (await client.get(response.headers["Location"])).text()
    assert "The ticket&#39;s address is now carla@example.com." in confirm
    assert "carla@example.com gets a mail with a new link" in confirm
    async with sessionmaker() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket.email == "carla@example.com"
        # Saving the address sends nothing; the resend does.
        assert not list(await session.scalars(select(Job).where(Job.kind == "mail.resend")))


async def test_another_organizers_or_a_revoked_ticket_keeps_its_address(client, sessionmaker, ada, free_ticket):
    organizer, key = ada
    other, _ = await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    theirs = await free_ticket(other)
    csrf = await _csrf(client)
    assert (await client.get(f"/org/tickets/{theirs}/address")).status == 404
    assert (await client.post(f"/org/tickets/{theirs}/address",
                              data={"email": "me@example.com", "csrf_token": csrf})).status == 404
    mine = await free_ticket(organizer)
    assert (await client.post(f"/api/tickets/{mine}/revoke", headers=auth(key))).status == 200
    response = await client.post(f"/org/tickets/{mine}/address", data={"email": "me@example.com", "csrf_token": csrf})
    assert response.status == 409
    async with sessionmaker() as session:
        emails = {t.id: (t.email, t.status) for t in await session.scalars(select(Ticket))}
    assert emails == {theirs: ("carl@example.com", TicketStatus.VALID), mine: ("carl@example.com", TicketStatus.REVOKED)}
