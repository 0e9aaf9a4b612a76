"""The buyer's and attendees' mails, parsed from a real SMTP server on loopback: what each
says, that its HTML and text parts agree, who answers it, and in which language."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update

from tests import factories
from tests.buyer.conftest import html_of, profiled_organizer, text_of
from tests.mail.test_delivery import buy
from tests.seats import join_codes, order_codes
from ticketing.db import utcnow
from ticketing.db.models import Order, Ticket
from ticketing.tickets.service import ticket_for_code

JOIN = re.compile(r"https?://[^\s<>\"]+/j/[A-Za-z0-9_-]{43}")
ORDER = re.compile(r"https?://[^\s<>\"]+/o/[A-Za-z0-9_-]{43}")
STARTS = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def setup(make_settings, smtp, start_client, sessionmaker, **webinar):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    owner, key = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets 101", timezone="Europe/Berlin",
                                      starts_at=STARTS.isoformat(), ends_at=(STARTS + dt.timedelta(hours=1)).isoformat(),
                                      **webinar)
    return settings, client, key, webinar


def both(message) -> tuple[str, str]:
    return text_of(message), html_of(message)


async def test_one_seat_order_mail_has_the_order_the_link_the_organizer_and_one_zone(
        make_settings, smtp, start_client, sessionmaker, make_worker):
    settings, client, _, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com")
    await make_worker(settings).run_until_idle()
    [message] = smtp.to("bea@example.com")
    assert message["Subject"] == "Your order for Widgets 101"
    assert message["Reply-To"].addresses[0].addr_spec == "help@widgets.example"
    assert message["Reply-To"].addresses[0].display_name == "Widget Academy"
    text, html = both(message)
    [join] = set(JOIN.findall(text))
    [order] = set(ORDER.findall(text))
    for body in (text, html):
        assert join in body and order in body
        assert "1 × €25.00" in body and "€25.00 (EUR)" in body
        assert "Widget Academy" in body and "help@widgets.example" in body
        assert "https://widgets.example/imprint" in body and "https://widgets.example/terms" in body
        # The webinar's zone is named once; UTC follows on its own line.
        assert body.count("Europe/Berlin") == 1
        assert "Thursday 31 January 2030, 18:00 (Europe/Berlin)" in body
        assert "Thursday 31 January 2030, 17:00 UTC" in body
    assert [p.get_filename() for p in message.iter_attachments()] == ["invite.ics"]
    # The link in the mail opens the page of the webinar it was bought for.
    response = await client.get("/j/" + join.rsplit("/", 1)[1], allow_redirects=False)
    assert response.status == 200 and "Widgets 101" in await response.text()


async def test_multi_seat_order_mail_links_the_order_page_and_no_seat(make_settings, smtp, start_client, sessionmaker,
                                                                       make_worker):
    settings, client, _, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com", quantity=3)
    await make_worker(settings).run_until_idle()
    [message] = smtp.messages
    text, html = both(message)
    assert JOIN.findall(text) == [] and JOIN.findall(html) == []
    [order] = set(ORDER.findall(text))
    for body in (text, html):
        assert order in body and "3 × €25.00" in body and "€75.00 (EUR)" in body and "Your 3 seats" in body
    assert list(message.iter_attachments()) == []
    page = await client.get("/o/" + order.rsplit("/", 1)[1])
    assert page.status == 200
    assert len(set(JOIN.findall(await page.text()))) == 3  # each seat's link, shown to the buyer only there


async def test_revoke_with_refund_says_how_much_comes_back_and_when(make_settings, smtp, start_client, sessionmaker,
                                                                     make_worker):
    settings, client, key, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com", quantity=2)
    async with sessionmaker() as session:
        first, second = await session.scalars(select(Ticket).order_by(Ticket.seq))
    assert (await client.post(f"/api/tickets/{first.id}/revoke", json={"refund": True}, headers=auth(key))).status == 200
    assert (await client.post(f"/api/tickets/{second.id}/revoke", headers=auth(key))).status == 200
    await make_worker(settings).run_until_idle()
    notices = {m["Message-ID"].split(".")[1]: m for m in smtp.to("bea@example.com")
               if m["Subject"].startswith("Ticket withdrawn")}
    refunded, plain = notices[str(first.id)], notices[str(second.id)]
    for body in both(refunded):
        assert "The organizer has withdrawn your ticket" in body
        assert "Refund: €25.00" in body and "5–10 business days" in body
    for body in both(plain):
        assert "withdrawn" in body and "Refund" not in body


async def test_cancelled_webinar_mails_say_it_was_cancelled_and_the_refund(make_settings, smtp, start_client,
                                                                            sessionmaker, make_worker):
    settings, client, key, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com")
    assert (await client.post(f"/api/webinars/{webinar.id}/cancel", headers=auth(key))).status == 200
    worker = make_worker(settings)
    await worker.run_until_idle()
    [cancelled] = [m for m in smtp.to("bea@example.com") if m["Subject"] == "Cancelled: Widgets 101"]
    for body in both(cancelled):
        assert "The organizer has cancelled this webinar" in body
        assert "Refund: €25.00" in body and "5–10 business days" in body
        assert "/j/" not in body


async def test_an_attendee_is_not_promised_the_buyers_refund(make_settings, smtp, start_client, sessionmaker,
                                                              make_worker):
    settings, client, key, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com", quantity=2)
    async with sessionmaker.begin() as session:
        await session.execute(update(Ticket).where(Ticket.seq == 0).values(
            name="Carl", email="carl@example.com", assigned_at=utcnow()))
    assert (await client.post(f"/api/webinars/{webinar.id}/cancel", headers=auth(key))).status == 200
    await make_worker(settings).run_until_idle()
    [attendee] = [m for m in smtp.to("carl@example.com") if m["Subject"].startswith("Cancelled")]
    [buyer] = [m for m in smtp.to("bea@example.com") if m["Subject"].startswith("Cancelled")]
    for body in both(attendee):
        assert "Refund:" not in body and "goes to the person who bought" in body
    for body in both(buyer):
        assert "Refund: €50.00" in body


async def test_a_german_webinar_mails_in_german(make_settings, smtp, start_client, sessionmaker, make_worker):
    settings, client, _, webinar = await setup(make_settings, smtp, start_client, sessionmaker, language="de")
    await buy(client, webinar, email="bea@example.com")
    await make_worker(settings).run_until_idle()
    [message] = smtp.messages
    assert message["Subject"] == "Ihre Bestellung für Widgets 101"
    for body in both(message):
        assert "Vielen Dank: Ihre Zahlung ist eingegangen." in body
        assert "Donnerstag, 31. Januar 2030, 18:00 (Europe/Berlin)" in body
        assert "1 × 25,00\xa0€" in body and "Ihr persönlicher Teilnahmelink" in body
        assert "Veranstaltet von Widget Academy." in body and "Impressum" in body
    assert '<html lang="de">' in html_of(message)


async def test_rescheduled_link_answers_replaced_not_unknown(make_settings, smtp, start_client, sessionmaker,
                                                              make_worker):
    settings, client, key, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com")
    worker = make_worker(settings)
    await worker.run_until_idle()
    [old] = set(JOIN.findall(text_of(smtp.messages[0])))
    new_start = STARTS + dt.timedelta(days=1)
    response = await client.patch(f"/api/webinars/{webinar.id}", headers=auth(key), json={
        "starts_at": new_start.isoformat(), "ends_at": (new_start + dt.timedelta(hours=1)).isoformat()})
    assert response.status == 200
    await worker.run_until_idle()
    update_mail = smtp.messages[-1]
    assert update_mail["Subject"] == "New time: Widgets 101"
    assert "Friday 1 February 2030, 18:00 (Europe/Berlin)" in text_of(update_mail)
    page = await client.get("/j/" + old.rsplit("/", 1)[1])
    assert page.status == 410
    body = await page.text()
    assert "replaced by a newer one sent on" in body and "(Europe/Berlin)" in body
    assert "belongs to someone else" not in body and "not known" not in body
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
    assert order.status.value == "paid"


async def test_a_time_change_tells_the_buyer_once_and_their_seats_keep_their_links(
        make_settings, smtp, start_client, sessionmaker, make_worker):
    settings, client, key, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com", quantity=3)
    before = await join_codes(sessionmaker)
    worker = make_worker(settings)
    await worker.run_until_idle()
    new_start = STARTS + dt.timedelta(days=1)
    response = await client.patch(f"/api/webinars/{webinar.id}", headers=auth(key), json={
        "starts_at": new_start.isoformat(), "ends_at": (new_start + dt.timedelta(hours=1)).isoformat()})
    assert response.status == 200
    await worker.run_until_idle()
    [order_mail, moved] = smtp.to("bea@example.com")
    assert moved["Subject"] == "New time: Widgets 101"
    for body in both(moved):
        assert "Friday 1 February 2030, 18:00 (Europe/Berlin)" in body
        assert "keep their join links" in body and "/j/" not in body
    async with sessionmaker() as session:  # the order page's links still open the webinar
        for ticket_id, code in before.items():
            assert (await ticket_for_code(session, code)).id == ticket_id


async def test_the_buyer_is_reminded_of_seats_still_on_the_order_page(make_settings, smtp, start_client,
                                                                       sessionmaker, make_worker):
    settings, client, _, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com", quantity=2)
    [order_code] = (await order_codes(sessionmaker)).values()
    worker = make_worker(settings)
    await worker.run_until_idle()
    day_before = STARTS - dt.timedelta(hours=24)
    assert await worker.run_until_idle(now=day_before) == 1
    tomorrow = smtp.messages[-1]
    assert tomorrow["Subject"] == "Tomorrow: Widgets 101"
    for body in both(tomorrow):
        assert "2 of your seats are not given to anyone yet" in body and "/j/" not in body

    # Every seat given out: the attendees get their own reminders, the buyer none.
    for n, name in ((1, "carl"), (2, "dana")):
        response = await client.post(f"/o/{order_code}/seats/{n}", data={"name": name, "email": f"{name}@example.com"},
                                     allow_redirects=False, headers={"X-Now": "ignored"})
        assert response.status == 303
    await worker.run_until_idle(now=day_before)
    quarter = STARTS - dt.timedelta(minutes=15)
    await worker.run_until_idle(now=quarter)
    last = {m["To"].addresses[0].addr_spec: m["Subject"] for m in smtp.messages[-2:]}
    assert last == {"carl@example.com": "Starting in 15 minutes: Widgets 101",
                    "dana@example.com": "Starting in 15 minutes: Widgets 101"}
    assert [m["Subject"] for m in smtp.to("bea@example.com")] == ["Your order for Widgets 101", "Tomorrow: Widgets 101"]


async def _give_away(sessionmaker, seq: int, name: str, email: str) -> Ticket:
    async with sessionmaker.begin() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.seq == seq))
        ticket.name, ticket.email, ticket.assigned_at = name, email, utcnow()
    return ticket


async def test_the_buyer_hears_once_when_a_seat_they_gave_away_is_withdrawn_and_refunded(
        make_settings, smtp, start_client, sessionmaker, make_worker):
    settings, client, key, webinar = await setup(make_settings, smtp, start_client, sessionmaker)
    await buy(client, webinar, email="bea@example.com", quantity=2)
    carl = await _give_away(sessionmaker, 0, "Carl Attendee", "carl@example.com")
    assert (await client.post(f"/api/tickets/{carl.id}/revoke", json={"refund": True}, headers=auth(key))).status == 200
    again = await client.post(f"/api/tickets/{carl.id}/revoke", json={"refund": True}, headers=auth(key))
    assert again.status == 409
    worker = make_worker(settings)
    await worker.run_until_idle()
    await worker.run_until_idle()

    [holder] = smtp.to("carl@example.com")
    for body in both(holder):
        assert "withdrawn your ticket" in body and "Refund" not in body
    [buyer] = [m for m in smtp.to("bea@example.com") if m["Subject"] == "Ticket withdrawn: Widgets 101"]
    for body in both(buyer):
        assert "withdrawn a seat you bought" in body and "Its link no longer works" not in body
        assert "Carl Attendee" in body and "carl@example.com" in body and "Seat 1" in body
        assert "Refund: €25.00" in body and "5–10 business days" in body
    assert buyer["Reply-To"].addresses[0].addr_spec == "help@widgets.example"
    assert list(buyer.iter_attachments()) == []  # the buyer never had that seat's invitation


async def test_a_german_buyer_whose_given_seats_are_refunded_hears_in_german(
        make_settings, smtp, start_client, sessionmaker, make_worker):
    settings, client, _, webinar = await setup(make_settings, smtp, start_client, sessionmaker, language="de")
    evt = await buy(client, webinar, email="bea@example.com", quantity=2)
    await _give_away(sessionmaker, 0, "Carl", "carl@example.com")
    await _give_away(sessionmaker, 1, "Dora", "dora@example.com")
    payment_intent = evt["data"]["object"]["payment_intent"]
    refund = factories.event("charge.refunded", factories.charge(payment_intent, amount=5000, amount_refunded=5000))
    assert (await factories.post_event(client, refund)).status == 200
    assert (await factories.post_event(client, refund)).status == 200
    await make_worker(settings).run_until_idle()

    assert len(smtp.to("carl@example.com")) == 1 and len(smtp.to("dora@example.com")) == 1
    [buyer] = [m for m in smtp.to("bea@example.com") if m["Subject"] == "Erstattet: Widgets 101"]
    for body in both(buyer):
        assert "Die Zahlung für Plätze, die Sie für dieses Webinar" in body and "erstattet" in body
        assert "Die Plätze, die Sie vergeben haben, gelten nicht mehr" in body
        assert "Carl" in body and "Dora" in body and "Platz 1" in body and "Platz 2" in body
        assert "Erstattung: 50,00\xa0€" in body
    assert '<html lang="de">' in html_of(buyer)
