"""Mails written straight to wire bytes: what a receiving mail program parses back is what was
composed (non-ASCII names and subjects, long lines, attachments), and addresses travel in the
ASCII form SMTP carries."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email.headerregistry import Address
from email.policy import default

import pytest
from aiosmtpd.controller import Controller

from tests.smtp_sink import free_port
from ticketing.mail.compose import BadAddress, recipient
from ticketing.mail.message import Attachment, mail, sender_header
from ticketing.mail.sending import SmtpMailer, SmtpServer

NOW = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)


def _mail(**overrides):
    values = dict(sender="hello@widgets.example", from_header=sender_header("Widget Webinare <hello@widgets.example>"),
                  to=Address(display_name="Bea Büyer", addr_spec="bea@example.com"),
                  subject="Ihre Bestellung für Widgets 101", date=NOW, message_id="<order.1@widgets.example>",
                  text="Grüße!\nZweite Zeile.\n", html="<p>Grüße!</p>\n")
    values.update(overrides)
    return mail(**values)


def _parsed(message):
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert all(not part.defects for part in parsed.walk()), [part.defects for part in parsed.walk()]
    return parsed


def _text(parsed, kind: str) -> str:
    # The parser keeps the wire's CRLFs in what it decodes.
    return parsed.get_body(preferencelist=(kind,)).get_content().replace("\r\n", "\n")


def test_non_ascii_names_subjects_and_text_come_back_as_written():
    parsed = _parsed(_mail(extra_headers=(("Reply-To", "=?utf-8?q?Widget_Akademie?= <help@widgets.example>"),)))
    assert parsed["Subject"] == "Ihre Bestellung für Widgets 101"
    assert parsed["To"].addresses[0].display_name == "Bea Büyer"
    assert parsed["To"].addresses[0].addr_spec == "bea@example.com"
    assert parsed["From"].addresses[0].display_name == "Widget Webinare"
    assert parsed["Reply-To"].addresses[0].display_name == "Widget Akademie"
    assert parsed["Message-ID"] == "<order.1@widgets.example>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert _text(parsed, "plain") == "Grüße!\nZweite Zeile.\n"
    assert _text(parsed, "html") == "<p>Grüße!</p>\n"


def test_the_wire_is_ascii_with_short_lines_whatever_the_content():
    long_line = "word " * 400  # 2,000 characters on one line
    subject = ("A very long subject line " * 9).strip()
    message = _mail(subject=subject, text=f"{long_line}\nÄ {long_line}\n", html=long_line)
    wire = message.as_bytes()
    assert wire.isascii()
    assert max(len(line) for line in wire.split(b"\r\n")) <= 78
    parsed = _parsed(message)
    assert parsed["Subject"] == subject
    assert _text(parsed, "plain") == f"{long_line}\nÄ {long_line}\n"


def test_a_plain_ascii_text_stays_readable_on_the_wire():
    wire = _mail(subject="Your order", to=Address(addr_spec="bea@example.com"), text="Hello,\nsee you.\n",
                 html="<p>Hello</p>\n").as_bytes()
    assert b"Subject: Your order\r\n" in wire
    assert b"Content-Transfer-Encoding: 7bit\r\n\r\nHello,\r\nsee you.\r\n" in wire


def test_an_attachment_comes_back_byte_for_byte_beside_the_alternatives():
    content = bytes(range(256)) * 10
    parsed = _parsed(_mail(attachment=Attachment(content, 'text/calendar; method="REQUEST"; charset="utf-8"',
                                                 "invite.ics")))
    assert parsed.get_content_type() == "multipart/mixed"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_payload(decode=True) == content
    assert _text(parsed, "plain") == "Grüße!\nZweite Zeile.\n"


def test_two_mails_do_not_share_a_boundary():
    first, second = _mail().as_bytes(), _mail().as_bytes()
    boundary = first.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    assert boundary not in second


class _Received:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


async def test_an_internationalised_domain_travels_in_its_ascii_form():
    handler, port = _Received(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        to = recipient("bea@bücher.example", "Bea")
        await SmtpMailer(SmtpServer.from_url(f"smtp://127.0.0.1:{port}"), timeout=10).send(_mail(to=to))
    finally:
        controller.stop()
    [(sender, recipients, content)] = handler.envelopes
    assert (sender, recipients) == ("hello@widgets.example", ["bea@xn--bcher-kva.example"])
    assert message_from_bytes(content, policy=default)["To"].addresses[0].addr_spec == "bea@xn--bcher-kva.example"


@pytest.mark.parametrize("email", ["bü@example.com", "bea@" + "x" * 70 + "ü.example"])
def test_an_address_the_wire_cannot_carry_is_refused_when_composing(email):
    with pytest.raises(BadAddress):
        recipient(email, "Bea")
