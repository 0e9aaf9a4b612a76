"""The kept-open SMTP sessions, against a real SMTP server on loopback: one session carries many
mails, it greets with this host's name, it ends after the per-session limit, and a session the
server dropped is replaced without losing the mail."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from email.headerregistry import Address

import pytest
from aiosmtpd.controller import Controller

from tests.smtp_sink import free_port
from ticketing.mail.message import Mail, mail
from ticketing.mail.smtp_pool import LOCAL_HOSTNAME, SmtpPool


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


def _mail(n: int) -> Mail:
    return mail(sender="no-reply@example.com", from_header="no-reply@example.com",
                to=Address(addr_spec=f"buyer{n}@example.com"), subject=f"mail {n}", date=dt.datetime.now(dt.UTC),
                message_id=f"<mail.{n}@example.com>", text="hello", html="<p>hello</p>")


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
