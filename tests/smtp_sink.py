"""A real SMTP server on loopback (aiosmtpd) whose answers a test controls: accept, refuse
with 4xx or 5xx, or be down (nothing listening)."""

from __future__ import annotations

import asyncio
import socket
import threading
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.mode == "tempfail":
            return "451 4.3.0 try again later"
        if address in self.sink.refuse or self.sink.mode == "refuse":
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.delay:
            # A slow server, so a test can stop a worker while mails are in flight.
            await asyncio.sleep(self.sink.delay)
        with self.sink.lock:
            self.sink.raw.append(envelope.content)
        return "250 Message accepted"


class SmtpSink:
    """Start with `start()`; `url` is the TICKETING_SMTP_URL; `messages` what was accepted."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        # With credentials the server offers AUTH (over plain loopback) and accepts only these.
        self.credentials = credentials
        self.logins: list[str] = []
        self.mode = "accept"  # accept | tempfail | refuse
        self.refuse: set[str] = set()
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        auth = {} if self.credentials is None else {
            "authenticator": self._authenticate, "auth_require_tls": False, "auth_required": False}
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **auth)
        self._controller.start()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login = (auth_data.login.decode(), auth_data.password.decode()) if isinstance(auth_data, LoginPassword) else None
        if login is not None:
            self.logins.append(login[0])
        return AuthResult(success=login == self.credentials, handled=False)  # a refusal answers 535

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=default) for raw in list(self.raw)]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]
