"""The console's actions on tickets made without a Stripe payment (by hand, as
tests/access' add_ticket makes them), on their orders and webinars: each works, or is refused
on a console page that says why, in the console's language, with nothing changed; never a 500."""

from __future__ import annotations

from sqlalchemy import select

from tests import factories
from tests.access.conftest import add_ticket
from tests.org.conftest import csrf_of
from ticketing.db.models import Job, Ticket, TicketStatus, Webinar, WebinarStatus


async def _act(client, ticket_id, action: str, **fields: str):
    """Open the action's page, confirm it, and follow the redirect to the attendee list."""
    page = await client.get(f"/org/tickets/{ticket_id}/{action}")
    assert page.status == 200, action
    response = await client.post(f"/org/tickets/{ticket_id}/{action}",
                                 data={"csrf_token": csrf_of(await page.text()), **fields}, allow_redirects=False)
    assert response.status == 303, (action, response.status)
    listed = await client.get(response.headers["Location"])
    assert listed.status == 200
    return response.headers["Location"], await listed.text()


async def _refused(client, ticket_id, action: str) -> tuple[int, str]:
    """Open the action's page and confirm it; the status and page of the refusal."""
    page = await client.get(f"/org/tickets/{ticket_id}/{action}")
    assert page.status == 200, action
    response = await client.post(f"/org/tickets/{ticket_id}/{action}", data={"csrf_token": csrf_of(await page.text())})
    return response.status, await response.text()


async def _state(sessionmaker, ticket_id, webinar_id):
    async with sessionmaker() as session:
        ticket = await session.get(Ticket, ticket_id)
        webinar = await session.get(Webinar, webinar_id)
        jobs = (await session.scalars(select(Job.kind).order_by(Job.id))).all()
        return ticket.status, ticket.email, webinar.seats_taken, jobs


async def test_actions_on_a_ticket_made_by_hand_work_or_are_refused_with_nothing_changed(
        client, sessionmaker, signed_in):
    ada, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    webinar = await factories.webinar(sessionmaker, ada)
    kept, _ = await add_ticket(sessionmaker, webinar, email="kept@example.com")
    ticket, _ = await add_ticket(sessionmaker, webinar, email="bea@example.com")
    assert (await _state(sessionmaker, ticket.id, webinar.id))[2] == 2

    # Its order was never paid through Stripe: "revoke and refund" is refused, nothing changes.
    before = await _state(sessionmaker, ticket.id, webinar.id)
    status, text = await _refused(client, ticket.id, "refund")
    assert status == 409 and "Nothing was changed" in text and "revoke the ticket without a refund" in text
    assert f'href="/org/webinars/{webinar.id}#attendees"' in text
    assert await _state(sessionmaker, ticket.id, webinar.id) == before

    # Its address is corrected and its link sent again, each mail queued once.
    _, listed = await _act(client, ticket.id, "address", email="bea@example.org")
    _, listed = await _act(client, ticket.id, "resend")
    assert "A new link is on its way to bea@example.org." in listed
    status, email, seats, jobs = await _state(sessionmaker, ticket.id, webinar.id)
    assert (status, email, seats) == (TicketStatus.VALID, "bea@example.org", 2)
    assert before[3] == [] and jobs.count("mail.resend") == 1  # its reminders are queued anew with the new link

    # Revoking it works and gives its seat back; the holder's notice is queued.
    _, listed = await _act(client, ticket.id, "revoke")
    assert "The ticket of bea@example.org is revoked." in listed
    status, _, seats, after = await _state(sessionmaker, ticket.id, webinar.id)
    # One notice to its holder, one to the buyer, whose address it no longer has.
    assert (status, seats, after) == (TicketStatus.REVOKED, 1, [*jobs, "mail.revoked", "mail.revoked"])

    # Once revoked, every action on it is refused with a 409 that says why, and changes nothing.
    for action, why in (("revoke", "already revoked"), ("refund", "already revoked"), ("resend", "cannot be sent again"),
                        ("address", "cannot be changed")):
        response = await client.post(f"/org/tickets/{ticket.id}/{action}",
                                     data={"csrf_token": csrf_of(await (await client.get("/org")).text()),
                                           "email": "x@example.com"}, allow_redirects=False)
        assert response.status == 409 and why in await response.text(), action
        assert await _state(sessionmaker, ticket.id, webinar.id) == (TicketStatus.REVOKED, "bea@example.org", 1, after)
    assert (await _state(sessionmaker, kept.id, webinar.id))[0] == TicketStatus.VALID


async def test_a_refused_action_is_said_in_the_consoles_language(client, sessionmaker, signed_in):
    ada, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    webinar = await factories.webinar(sessionmaker, ada)
    ticket, _ = await add_ticket(sessionmaker, webinar)
    client.session.headers["Accept-Language"] = "de-DE,de;q=0.9"
    status, text = await _refused(client, ticket.id, "refund")
    assert status == 409 and "Nichts wurde geändert" in text and "ohne Erstattung" in text


async def test_refused_webinar_and_order_actions_come_back_as_a_line_in_the_consoles_language(
        client, sessionmaker, signed_in):
    ada, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    webinar = await factories.webinar(sessionmaker, ada)
    ticket, _ = await add_ticket(sessionmaker, webinar)
    client.session.headers["Accept-Language"] = "de-DE,de;q=0.9"
    csrf = csrf_of(await (await client.get("/org")).text())

    # The order had no dispute: restoring it is refused, its ticket stays as it was.
    response = await client.post(f"/org/orders/{ticket.order_id}/restore", data={"csrf_token": csrf})
    text = await response.text()
    assert response.status == 409 and "Nichts wurde geändert" in text
    assert "Nur eine Bestellung, deren Zahlungsstreit gewonnen wurde" in text and f'href="/org/webinars/{webinar.id}"' in text

    # Cancelling twice: the second time says it is cancelled already, in German.
    first = await client.post(f"/org/webinars/{webinar.id}/cancel", data={"csrf_token": csrf}, allow_redirects=False)
    assert first.status == 303
    second = await client.post(f"/org/webinars/{webinar.id}/cancel", data={"csrf_token": csrf})
    assert second.status == 409 and "Dieses Webinar ist schon abgesagt." in await second.text()
    async with sessionmaker() as session:
        assert (await session.get(Webinar, webinar.id)).status == WebinarStatus.CANCELLED
