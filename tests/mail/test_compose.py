"""Composing mails: parts, times, the .ics invitation, stable ids and header safety."""

from __future__ import annotations

import datetime as dt
import uuid
from email import message_from_bytes
from email.policy import default

import icalendar
import pytest

from ticketing.db.models import Order, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.mail.compose import BadAddress, order_mail, order_refunded_mail, revoked_mail, ticket_mail
from ticketing.settings import Settings

STARTS = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path), "TICKETING_BASE_URL": "https://tickets.example.com",
                              "TICKETING_MAIL_FROM": "Widget Webinars <hello@widgets.example>"}, dotenv=None)


def make(title="Widgets 101", name="Bea Buyer", email="bea@example.com", sequence=0, timezone="Europe/Berlin"):
    webinar = Webinar(id=uuid.uuid4(), title=title, description="All about widgets.", starts_at=STARTS,
                      ends_at=STARTS + dt.timedelta(hours=1), timezone=timezone, price_amount=2500, currency="eur",
                      room="widgets", status=WebinarStatus.SCHEDULED, sequence=sequence)
    ticket = Ticket(id=uuid.uuid4(), order_id=uuid.uuid4(), webinar_id=webinar.id, seq=0, email=email, name=name,
                    code_hash="0" * 64, status=TicketStatus.VALID)
    return ticket, webinar


def reparse(message):
    """What the receiving side sees: the bytes on the wire, parsed again."""
    return message_from_bytes(message.as_bytes(), policy=default)


def invite(message) -> icalendar.Calendar:
    [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    return icalendar.Calendar.from_ical(part.get_payload(decode=True))


def test_join_mail_has_text_html_times_link_and_invitation(settings):
    ticket, webinar = make()
    message = reparse(ticket_mail(settings, "join", ticket, webinar, "CODE123", message_key=f"join.{ticket.id}"))
    assert message["Subject"] == "Your link for Widgets 101"
    assert message["To"].addresses[0].addr_spec == "bea@example.com"
    assert message["From"].addresses[0].addr_spec == "hello@widgets.example"
    assert message["Message-ID"] == f"<join.{ticket.id}@widgets.example>"
    assert "List-Unsubscribe" not in message
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = "https://tickets.example.com/j/CODE123"
    for body in (text, html):
        assert "Widgets 101" in body and link in body
        assert "Thursday 31 January 2030, 18:00 (Europe/Berlin)" in body  # the webinar's zone
        assert "Thursday 31 January 2030, 17:00 UTC" in body

    [event] = invite(message).walk("VEVENT")
    assert invite(message)["METHOD"] == "REQUEST"
    assert event.decoded("DTSTART") == STARTS
    assert event.decoded("DTEND") == STARTS + dt.timedelta(hours=1)
    assert event.decoded("DTSTART").tzinfo.utcoffset(None) == dt.timedelta(0)
    assert str(event["LOCATION"]) == link
    assert link in str(event["DESCRIPTION"])
    assert str(event["UID"]) == f"ticket-{ticket.id}@widgets.example"
    assert int(event["SEQUENCE"]) == 0


def test_a_utc_webinar_states_its_time_once(settings):
    ticket, webinar = make(timezone="UTC")
    message = reparse(ticket_mail(settings, "join", ticket, webinar, "A", message_key="a"))
    for part in ("plain", "html"):
        body = message.get_body(preferencelist=(part,)).get_content()
        assert body.count("Thursday 31 January 2030, 17:00") == 1, part


def test_update_keeps_the_uid_and_raises_the_sequence(settings):
    ticket, webinar = make()
    first = invite(reparse(ticket_mail(settings, "join", ticket, webinar, "A", message_key="a")))
    webinar.sequence, webinar.starts_at = 1, STARTS + dt.timedelta(days=1)
    webinar.ends_at = webinar.starts_at + dt.timedelta(hours=1)
    second = invite(reparse(ticket_mail(settings, "updated", ticket, webinar, "B", message_key="b")))
    [one], [two] = first.walk("VEVENT"), second.walk("VEVENT")
    assert one["UID"] == two["UID"]
    assert int(two["SEQUENCE"]) == 1 > int(one["SEQUENCE"])
    assert two.decoded("DTSTART") == STARTS + dt.timedelta(days=1)


def test_message_id_is_stable_per_ticket_and_kind(settings):
    ticket, webinar = make()
    one = ticket_mail(settings, "join", ticket, webinar, "A", message_key=f"join.{ticket.id}")
    two = ticket_mail(settings, "join", ticket, webinar, "A", message_key=f"join.{ticket.id}")
    assert one["Message-ID"] == two["Message-ID"]


def test_a_title_with_markup_stays_text_in_html(settings):
    ticket, webinar = make(title='<script>alert("x")</script> & more')
    message = reparse(ticket_mail(settings, "join", ticket, webinar, "A", message_key="a"))
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    # the text part is not HTML: it shows the title as typed
    assert '<script>alert("x")</script>' in message.get_body(preferencelist=("plain",)).get_content()


@pytest.mark.parametrize("title", ["Hi\r\nBcc: victim@example.com", "Hi\nBcc: victim@example.com",
                                   "Hi\rBcc: victim@example.com", "Hi\u2028Bcc: victim@example.com"])
def test_newlines_in_a_title_cannot_add_headers(settings, title):
    ticket, webinar = make(title=title, name="Bea\r\nBcc: other@example.com")
    for message in (ticket_mail(settings, "join", ticket, webinar, "A", message_key="a"),
                    revoked_mail(settings, ticket, webinar, "refunded", message_key="r")):
        wire = message.as_bytes()
        parsed = message_from_bytes(wire, policy=default)
        headers = wire.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nBcc:" not in headers
        assert all("Bcc" not in part for part in parsed.walk())
        assert parsed["Subject"].endswith("Hi Bcc: victim@example.com")
        assert [a.addr_spec for a in parsed["To"].addresses] == ["bea@example.com"]


@pytest.mark.parametrize("email", ["bea@example.com\r\nBcc: victim@example.com", "bea@example.com, eve@example.com",
                                   "not-an-address", "bea@example.com\n"[:-1] + "\x00"])
def test_a_bad_recipient_address_is_refused(settings, email):
    ticket, webinar = make(email=email)
    with pytest.raises(BadAddress):
        ticket_mail(settings, "join", ticket, webinar, "A", message_key="a")


def test_revocation_says_why_has_no_link_and_cancels_the_invitation(settings):
    ticket, webinar = make()
    message = reparse(revoked_mail(settings, ticket, webinar, "disputed", message_key="r"))
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "disputed" in text and "/j/" not in text
    calendar = invite(message)
    [event] = calendar.walk("VEVENT")
    assert calendar["METHOD"] == "CANCEL" and event["STATUS"] == "CANCELLED"
    assert "LOCATION" not in event


def test_order_refunded_mail_names_the_amount_and_reason(settings):
    _, webinar = make()
    order = Order(id=uuid.uuid4(), webinar_id=webinar.id, email="late@example.com", buyer_name="Late",
                  quantity=2, amount_total=5000, currency="eur", expected_amount=5000)
    message = reparse(order_refunded_mail(settings, order, webinar, "oversold", message_key=f"refunded.{order.id}"))
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "€50.00" in text and "sold out" in text and "/j/" not in text


@pytest.mark.parametrize("language, word", [("en", "Invoice"), ("de", "Rechnung")])
def test_order_mail_links_the_invoice_once_it_is_known(settings, language, word):
    _, webinar = make()
    webinar.language = language
    order = Order(id=uuid.uuid4(), webinar_id=webinar.id, email="bea@example.com", buyer_name="Bea", quantity=2,
                  amount_total=5000, currency="eur", expected_amount=5000)
    without = reparse(order_mail(settings, order, webinar, [], "c0de", None, message_key=f"order.{order.id}"))
    assert word not in without.get_body(preferencelist=("plain",)).get_content()

    order.invoice_number, order.invoice_url = "ABCD-0001", "https://invoice.stripe.com/i/acct_1/in_1"
    order.invoice_pdf = "https://pay.stripe.com/invoice/acct_1/in_1/pdf"
    message = reparse(order_mail(settings, order, webinar, [], "c0de", None, message_key=f"order.{order.id}"))
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"{word} ABCD-0001: {order.invoice_url}" in text
    assert order.invoice_pdf in text
    assert f'href="{order.invoice_url}"' in html and f'href="{order.invoice_pdf}"' in html
