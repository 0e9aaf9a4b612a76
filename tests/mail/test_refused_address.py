"""A buyer's address the mail server refuses for good: the ticket shows the failed delivery on
the attendee list (JSON and CSV), and the organizer corrects the address and resends."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

from sqlalchemy import select

from tests import factories
from tests.mail.test_delivery import buy, links
from ticketing.db import utcnow
from ticketing.db.models import Job, JobStatus, Ticket
from ticketing.mail.jobs import MAIL_ATTEMPTS


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _attendees(client, webinar, key) -> tuple[dict[str, dict], dict[str, dict]]:
    """The attendee list by email, as JSON and as CSV."""
    response = await client.get(f"/api/webinars/{webinar.id}/tickets", headers=auth(key))
    as_json = {t["email"]: t for t in (await response.json())["tickets"]}
    response = await client.get(f"/api/webinars/{webinar.id}/tickets", headers={**auth(key), "Accept": "text/csv"})
    as_csv = {row["email"]: row for row in csv.DictReader(io.StringIO(await response.text()))}
    return as_json, as_csv


async def test_a_refused_address_is_shown_corrected_and_resent(make_settings, smtp, start_client, sessionmaker,
                                                               make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    smtp.refuse.add("typo@exmaple.com")
    await buy(client, webinar, email="typo@exmaple.com")
    await buy(client, webinar, email="fine@example.com")

    as_json, as_csv = await _attendees(client, webinar, key)
    assert {e: t["delivery_status"] for e, t in as_json.items()} == {"typo@exmaple.com": "queued",
                                                                      "fine@example.com": "queued"}
    await make_worker(settings).run_until_idle()

    as_json, as_csv = await _attendees(client, webinar, key)
    bad, good = as_json["typo@exmaple.com"], as_json["fine@example.com"]
    assert (good["delivery_status"], good["delivery_error"]) == ("sent", None)
    assert bad["delivery_status"] == "failed"
    assert bad["delivery_error"].startswith("recipient refused: 550") and "mailbox unavailable" in bad["delivery_error"]
    assert as_csv["typo@exmaple.com"]["delivery_status"] == "failed"
    assert as_csv["typo@exmaple.com"]["delivery_error"] == bad["delivery_error"]
    assert (as_csv["fine@example.com"]["delivery_status"], as_csv["fine@example.com"]["delivery_error"]) == ("sent", "")
    async with sessionmaker() as db:
        dead = list(await db.scalars(select(Job).where(Job.status == JobStatus.DEAD)))
    assert [j.kind for j in dead] == ["mail.order"]  # the buyer's one mail, with the seat's link

    ticket_url = f"/api/tickets/{bad['id']}"
    # Bad input and other people's tickets change nothing.
    for body in ({"email": "not an address"}, {"email": ""}, {}, {"email": 5}):
        response = await client.patch(ticket_url, json=body, headers=auth(key))
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == "email"
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    assert (await client.patch(ticket_url, json={"email": "x@example.com"}, headers=auth(other_key))).status == 403
    assert (await client.patch(f"/api/tickets/{uuid.uuid4()}", json={"email": "x@example.com"},
                               headers=auth(key))).status == 404
    assert (await client.patch("/api/tickets/nope", json={"email": "x@example.com"}, headers=auth(key))).status == 404
    assert (await client.patch(ticket_url, json={"email": "x@example.com"})).status == 401
    async with sessionmaker() as db:
        assert (await db.get(Ticket, uuid.UUID(bad["id"]))).email == "typo@exmaple.com"

    response = await client.patch(ticket_url, json={"email": " bea@example.com "}, headers=auth(key))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["email"], body["delivery_status"]) == ("bea@example.com", "failed")
    response = await client.post(f"{ticket_url}/resend", headers=auth(key))
    assert response.status == 200
    assert (await response.json())["delivery_status"] == "queued"
    await make_worker(settings).run_until_idle()

    [mail] = smtp.to("bea@example.com")
    assert len(links(mail)) == 1
    as_json, _ = await _attendees(client, webinar, key)
    assert (as_json["bea@example.com"]["delivery_status"], as_json["bea@example.com"]["delivery_error"]) == ("sent", None)
    assert smtp.to("typo@exmaple.com") == []


async def test_a_revoked_ticket_cannot_be_readdressed(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    await buy(client, webinar)
    async with sessionmaker() as db:
        ticket = await db.scalar(select(Ticket))
    assert (await client.post(f"/api/tickets/{ticket.id}/revoke", headers=auth(key))).status == 200
    response = await client.patch(f"/api/tickets/{ticket.id}", json={"email": "new@example.com"}, headers=auth(key))
    assert response.status == 409


async def test_a_mail_refused_for_now_until_its_tries_run_out_has_failed(make_settings, smtp, start_client,
                                                                          sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    smtp.mode = "tempfail"
    await buy(client, webinar, email="slow@example.com")
    worker = make_worker(settings)

    # While it retries the ticket is still queued, with the server's answer of the last try.
    now = utcnow()
    assert await worker.run_until_idle(now=now) == 1
    as_json, as_csv = await _attendees(client, webinar, key)
    ticket = as_json["slow@example.com"]
    assert ticket["delivery_status"] == "queued"
    assert ticket["delivery_error"] == "recipient refused for now: 451 4.3.0 try again later"
    assert as_csv["slow@example.com"]["delivery_error"] == ticket["delivery_error"]

    tries = 1
    while True:
        async with sessionmaker() as db:
            job = await db.scalar(select(Job).where(Job.kind == "mail.order"))  # the buyer's mail, with the link
        if job.status != JobStatus.QUEUED:
            break
        now = max(now, job.due_at) + dt.timedelta(seconds=1)
        assert await worker.run_until_idle(now=now) == 1
        tries += 1
        if job.status == JobStatus.QUEUED and tries < MAIL_ATTEMPTS:
            as_json, _ = await _attendees(client, webinar, key)
            assert as_json["slow@example.com"]["delivery_status"] == "queued"
    assert (job.status, job.attempts, tries) == (JobStatus.DEAD, MAIL_ATTEMPTS, MAIL_ATTEMPTS)
    as_json, as_csv = await _attendees(client, webinar, key)
    ticket = as_json["slow@example.com"]
    assert ticket["delivery_status"] == "failed"
    assert ticket["delivery_error"] == "recipient refused for now: 451 4.3.0 try again later"
    assert as_csv["slow@example.com"]["delivery_status"] == "failed"
    assert smtp.messages == []

    # The organizer resends once the server takes mail again: queued, then sent, error gone.
    smtp.mode = "accept"
    response = await client.post(f"/api/tickets/{ticket['id']}/resend", headers=auth(key))
    assert (await response.json())["delivery_status"] == "queued"
    await worker.run_until_idle()
    as_json, _ = await _attendees(client, webinar, key)
    assert (as_json["slow@example.com"]["delivery_status"], as_json["slow@example.com"]["delivery_error"]) == ("sent", None)
    assert len(smtp.to("slow@example.com")) == 1


async def test_a_mail_that_goes_through_on_a_later_try_is_sent_without_an_error(make_settings, smtp, start_client,
                                                                                sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    smtp.mode = "tempfail"
    await buy(client, webinar, email="later@example.com")
    worker = make_worker(settings)
    await worker.run_until_idle()
    as_json, _ = await _attendees(client, webinar, key)
    assert as_json["later@example.com"]["delivery_status"] == "queued"
    assert "451" in as_json["later@example.com"]["delivery_error"]
    smtp.mode = "accept"
    await worker.run_until_idle(now=utcnow() + dt.timedelta(minutes=1))
    as_json, _ = await _attendees(client, webinar, key)
    assert (as_json["later@example.com"]["delivery_status"], as_json["later@example.com"]["delivery_error"]) == ("sent", None)
