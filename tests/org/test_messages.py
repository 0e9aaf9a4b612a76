"""Messages to attendees, through the API and the console: one mail per current holder, sent
once through the job queue and read back from a real SMTP server, in the webinar's language,
with the organizer's Reply-To and footer; preview first; a limit per webinar and hour."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests import factories
from tests.mail.test_delivery import buy
from tests.org.conftest import csrf_of
from ticketing.db.models import Job, MessageRecipient, Ticket
from ticketing.lifecycle import tickets as ticket_lifecycle
from ticketing.organizers import update_profile

BODY = "The slides are [here](https://example.com/slides).\n\n- bring *questions*\n\n<script>alert(1)</script>"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def setup(make_settings, smtp, start_client, sessionmaker):
    """Ada (contact hello@ada.example) with a German webinar: Bea bought two seats, Carl one,
    and Carl's ticket is revoked, so two people hold a ticket."""
    settings = make_settings(smtp_url=smtp.url, messages_per_hour="2")
    client = await start_client(settings)
    ada, key = await factories.organizer(sessionmaker, name="Ada Events", email="ada@example.com")
    async with sessionmaker.begin() as session:
        await update_profile(session, ada.id, {"contact_email": "hello@ada.example",
                                               "imprint_url": "https://ada.example/imprint"})
    webinar = await factories.webinar(sessionmaker, ada, title="Widgets", language="de")
    await buy(client, webinar, email="bea@example.com", quantity=1)
    await buy(client, webinar, email="dora@example.com", quantity=1)
    await buy(client, webinar, email="carl@example.com", quantity=1)
    async with sessionmaker() as session:
        carl = await session.scalar(select(Ticket).where(Ticket.email == "carl@example.com"))
    async with sessionmaker.begin() as session:
        await ticket_lifecycle.revoke_ticket(session, ada, carl.id)
    return settings, client, ada, key, webinar


async def test_a_message_reaches_every_holder_once(setup, smtp, sessionmaker, make_worker):
    settings, client, ada, key, webinar = setup
    response = await client.post(f"/api/webinars/{webinar.id}/messages", headers=auth(key),
                                 json={"subject": "Slides are up", "body": BODY})
    assert response.status == 201, await response.text()
    sent = await response.json()
    assert (sent["subject"], sent["recipients"], sent["queued"], sent["sent"], sent["failed"]) == (
        "Slides are up", 2, 2, 0, 0)

    worker = make_worker(settings)
    await worker.run_until_idle()
    assert await worker.run_until_idle() == 0
    mails = [m for m in smtp.messages if m["Subject"] == "Slides are up"]
    assert sorted(m["To"].addresses[0].addr_spec for m in mails) == ["bea@example.com", "dora@example.com"]
    for mail in mails:
        assert mail["Reply-To"].addresses[0].addr_spec == "hello@ada.example"
        text = mail.get_body(preferencelist=("plain",)).get_content()
        html = mail.get_body(preferencelist=("html",)).get_content()
        # The webinar's language frames the organizer's words.
        assert "Ada Events schreibt allen mit einem Ticket für „Widgets“:" in text
        assert "The slides are [here](https://example.com/slides)." in text
        assert "Veranstaltet von Ada Events" in text and "https://ada.example/imprint" in text
        assert '<a href="https://example.com/slides" rel="nofollow noopener noreferrer">here</a>' in html
        assert "<em>questions</em>" in html and "<script>" not in html
        # Raw HTML is dropped as in descriptions: neither run nor shown as text, in either part.
        assert "&lt;script" not in html and "alert(1)" not in html
        assert "<script>" not in text and "alert(1)" not in text and "- bring *questions*" in text
        assert '<html lang="de">' in html
    assert all(m["Subject"] != "Slides are up" for m in smtp.to("carl@example.com"))  # revoked: not a holder

    listed = await (await client.get(f"/api/webinars/{webinar.id}/messages", headers=auth(key))).json()
    [message] = listed["messages"]
    assert (message["id"], message["recipients"], message["sent"], message["queued"], message["failed"]) == (
        sent["id"], 2, 2, 0, 0)
    async with sessionmaker() as session:
        jobs = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "mail.message"))
        rows = list(await session.scalars(select(MessageRecipient)))
    assert jobs == 2 and sorted(r.status.value for r in rows) == ["sent", "sent"]


async def test_a_refused_address_counts_as_failed(setup, smtp, make_worker):
    settings, client, ada, key, webinar = setup
    smtp.refuse.add("dora@example.com")
    response = await client.post(f"/api/webinars/{webinar.id}/messages", headers=auth(key),
                                 json={"subject": "We start ten minutes late", "body": "Sorry!"})
    assert response.status == 201
    await make_worker(settings).run_until_idle()
    [message] = (await (await client.get(f"/api/webinars/{webinar.id}/messages", headers=auth(key))).json())["messages"]
    assert (message["sent"], message["failed"], message["queued"]) == (1, 1, 0)


async def test_bad_input_and_the_hourly_limit_change_nothing(setup, sessionmaker):
    settings, client, ada, key, webinar = setup
    url = f"/api/webinars/{webinar.id}/messages"
    for body, status, field in (({"subject": "", "body": "x"}, 422, "subject"), ({"subject": "Hi"}, 422, "body"),
                                ({"subject": "a\x07b", "body": "x"}, 422, "subject"),
                                ({"subject": "x" * 201, "body": "x"}, 422, "subject")):
        response = await client.post(url, headers=auth(key), json=body)
        assert response.status == status and (await response.json())["error"]["field"] == field
    assert (await client.post(url, headers=auth(key), data="subject=x")).status == 415
    other, other_key = await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    assert (await client.post(url, headers=auth(other_key), json={"subject": "Hi", "body": "x"})).status == 403
    assert (await client.get(url, headers=auth(other_key))).status == 403
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(MessageRecipient)) == 0

    for n in range(2):
        assert (await client.post(url, headers=auth(key), json={"subject": f"Update {n}", "body": "x"})).status == 201
    third = await client.post(url, headers=auth(key), json={"subject": "Update 3", "body": "x"})
    assert third.status == 429 and 0 < int(third.headers["Retry-After"]) <= 3600
    assert "at most 2 messages" in (await third.json())["error"]["message"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "mail.message")) == 4

    empty = await factories.webinar(sessionmaker, ada, title="Nobody yet")
    nobody = await client.post(f"/api/webinars/{empty.id}/messages", headers=auth(key), json={"subject": "Hi", "body": "x"})
    assert nobody.status == 409


async def test_the_console_previews_then_sends(setup, smtp, sessionmaker, make_worker, signed_in):
    settings, client, ada, key, webinar = setup
    await signed_in(client, "ada@example.com")
    page = await (await client.get(f"/org/webinars/{webinar.id}/messages")).text()
    assert "No messages yet." in page
    csrf = csrf_of(page)
    empty = await client.post(f"/org/webinars/{webinar.id}/messages/preview",
                              data={"subject": " ", "body": "x", "csrf_token": csrf})
    assert empty.status == 422 and 'id="subject-error"' in await empty.text()
    preview = await client.post(f"/org/webinars/{webinar.id}/messages/preview",
                                data={"subject": "Slides", "body": BODY, "csrf_token": csrf})
    html = await preview.text()
    assert preview.status == 200 and "This goes to 2 ticket holders" in html
    assert '<a href="https://example.com/slides" rel="nofollow noopener noreferrer">here</a>' in html
    assert "<script>alert" not in html
    assert "&lt;script" not in html.split('id="preview-body"', 1)[1].split("</div>", 1)[0]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(MessageRecipient)) == 0  # nothing sent yet
    hidden = dict(re.findall(r'<input type="hidden" name="(subject|body)" value="([^"]*)"', html))
    sent = await client.post(f"/org/webinars/{webinar.id}/messages",
                             data={**hidden, "body": BODY, "csrf_token": csrf}, allow_redirects=False)
    assert sent.status == 303
    await make_worker(settings).run_until_idle()
    listing = await (await client.get(f"/org/webinars/{webinar.id}/messages")).text()
    assert "The message is on its way to 2 ticket holders." in listing
    row = re.search(r"<tbody>(.*?)</tbody>", listing, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[1:] == ["Slides", "2", "2", "0", "0"]
    assert len([m for m in smtp.messages if m["Subject"] == "Slides"]) == 2
    # The limit in the console: a page saying so, nothing queued.
    await client.post(f"/org/webinars/{webinar.id}/messages", data={"subject": "Two", "body": "x", "csrf_token": csrf})
    over = await client.post(f"/org/webinars/{webinar.id}/messages",
                             data={"subject": "Three", "body": "x", "csrf_token": csrf})
    assert over.status == 429 and "At most 2 messages" in await over.text()
    assert 'value="Three"' in await over.text()
