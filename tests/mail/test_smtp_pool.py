"""The kept-open SMTP sessions, against a real SMTP server on loopback: one session carries many
mails, it greets with this host's name, it ends after the per-session limit, and a session the
server dropped is replaced without losing the mail."""

from __future__ import annotations

import asyncio
import threading
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from ticketing.mail.smtp_pool import LOCAL_HOSTNAME, SmtpPool
from tests.smtp_sink import free_port


class _Server:
    """Counts sessions (one EHLO each) and mails."""

    def __init__(self) -> None:
        self.port = free_port()
        self.greetings: list[str] = []
        self.mails: list[bytes] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.greetings.append(hostname)
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.mails.append(envelope.content)
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def server():
    smtp = _Server()
    smtp.start()
    yield smtp
    smtp.stop()


def _mail(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "no-reply@example.com"
    message["To"] = f"buyer{n}@example.com"
    message["Subject"] = f"mail {n}"
    message.set_content("hello")
    return message


def _pool(server: _Server, **options) -> SmtpPool:
    return SmtpPool(hostname="127.0.0.1", port=server.port, username=None, password=None, use_tls=False,
                    start_tls=None, timeout=10, **options)


async def test_many_mails_share_a_few_sessions_greeting_with_our_name(server):
    pool = _pool(server, size=2)
    await asyncio.gather(*(pool.send(_mail(n)) for n in range(20)))
    await pool.close()
    assert len(server.mails) == 20
    assert 1 <= len(server.greetings) <= 2 and set(server.greetings) == {LOCAL_HOSTNAME}


async def test_a_session_ends_after_the_per_session_limit(server):
    pool = _pool(server, size=1, max_messages=3)
    for n in range(7):
        await pool.send(_mail(n))
    await pool.close()
    assert len(server.mails) == 7 and len(server.greetings) == 3  # 3 + 3 + 1


async def test_a_dropped_session_is_replaced_and_the_mail_still_goes(server):
    pool = _pool(server, size=1)
    await pool.send(_mail(0))
    server.stop()  # the server goes away and comes back: the kept session is dead
    server.start()
    await pool.send(_mail(1))
    await pool.close()
    assert len(server.mails) == 2 and len(server.greetings) == 2


async def test_a_ticket_mail_goes_out_as_the_bytes_it_was_built_as(server, tmp_path):
    import datetime as dt
    import uuid
    from email import message_from_bytes
    from email.policy import default

    from ticketing.db.models import Ticket, Webinar
    from ticketing.mail.compose import ticket_mail
    from ticketing.settings import Settings

    settings = Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path), "TICKETING_MAIL_FROM": "Wébinars <hi@example.com>"},
                                 dotenv=None)
    starts = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)
    webinar = Webinar(id=uuid.uuid4(), title="Café ünd Widgets", description="", starts_at=starts,
                      ends_at=starts + dt.timedelta(hours=1), timezone="Europe/Berlin", price_amount=100,
                      currency="eur", room="widgets", sequence=0)
    ticket = Ticket(id=uuid.uuid4(), email="zoe@example.com", name="Zoë", code_hash="0" * 64)
    message = ticket_mail(settings, "join", ticket, webinar, "c" * 43, message_key="join.1")
    data, sender, recipients = message.unread_wire()
    assert (sender, recipients) == ("hi@example.com", ["zoe@example.com"])
    pool = _pool(server)
    await pool.send(message)
    await pool.close()
    assert message.unread_wire() is not None  # sent without being opened
    [received] = server.mails
    assert received.replace(b"\r\n", b"\n").rstrip() == data.replace(b"\r\n", b"\n").rstrip()
    parsed = message_from_bytes(received, policy=default)
    assert str(parsed["Subject"]) == "Your link for Café ünd Widgets" and str(parsed["From"]) == "Wébinars <hi@example.com>"
    assert f"{settings.base_url}/j/{'c' * 43}" in parsed.get_body(("plain",)).get_content()
    [invite] = parsed.iter_attachments()
    assert invite.get_filename() == "invite.ics" and b"BEGIN:VCALENDAR" in invite.get_content().encode()
    # Opened, it is an ordinary EmailMessage with the same content.
    assert str(message["To"]) == "Zoë <zoe@example.com>" and message.unread_wire() is None
