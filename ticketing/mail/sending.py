"""Sending mail: SMTP through aiosmtplib, or the dev sink that writes .eml files.

SMTP errors are sorted here: a permanent refusal (5xx) becomes PermanentError with the
server's reason, so the job is parked instead of retried; everything else (4xx, refused
connections, timeouts, lost connections) propagates and the job retries with backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import secrets
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from ticketing.db import utcnow
from ticketing.jobs.registry import PermanentError
from ticketing.mail.message import Mail
from ticketing.mail.smtp_pool import pool_for
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30.0
# Codes a server gives for its own configuration or our credentials, not for this mail:
# retrying after the operator fixes them must still deliver.
_NOT_ABOUT_THE_MAIL = {530, 534, 535, 538}


class Mailer(Protocol):
    async def send(self, message: Mail) -> None:
        """Hand `message` over for delivery; PermanentError when it can never be delivered."""


@dataclasses.dataclass(frozen=True)
class SmtpServer:
    """Where and how to connect, from TICKETING_SMTP_URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # implicit TLS from the first byte (smtps://, port 465)
    start_tls: bool | None  # True: required (port 587); None: when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        implicit = parts.scheme == "smtps"
        port = parts.port or (465 if implicit else 25)
        return cls(
            host=parts.hostname or "localhost",
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=False if implicit else (True if port == 587 else None),
        )


class SmtpMailer:
    """Delivers through one SMTP server over a few kept-open sessions (mail/smtp_pool.py)."""

    def __init__(self, server: SmtpServer, *, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self.server = server
        self.timeout = timeout

    async def send(self, message: Mail) -> None:
        try:
            await pool_for(
                hostname=self.server.host,
                port=self.server.port,
                username=self.server.username,
                password=self.server.password,
                use_tls=self.server.use_tls,
                start_tls=self.server.start_tls,
                timeout=self.timeout,
            ).send(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            refusals = error.recipients
            if refusals and all(_permanent(r.code) for r in refusals):
                first = refusals[0]
                raise PermanentError(f"recipient refused: {first.code} {_reason(first.message)}") from None
            raise
        except aiosmtplib.SMTPRecipientRefused as error:
            if _permanent(error.code):
                raise PermanentError(f"recipient refused: {error.code} {_reason(error.message)}") from None
            raise
        except aiosmtplib.SMTPResponseException as error:
            if _permanent(error.code) and not isinstance(error, aiosmtplib.SMTPConnectResponseError):
                raise PermanentError(f"SMTP server refused the mail: {error.code} {_reason(error.message)}") from None
            raise


def temporary_reason(error: BaseException) -> str:
    """A delivery failure that may pass (a 4xx answer, a server down or slow) in a reader's words."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        first = error.recipients[0]
        return f"recipient refused for now: {first.code} {_reason(first.message)}"
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"SMTP server answered {error.code} {_reason(error.message)}"
    if isinstance(error, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "the SMTP server did not answer in time"
    return _reason(f"{type(error).__name__}: {error}") or type(error).__name__


def _permanent(code: int) -> bool:
    return 500 <= code < 600 and code not in _NOT_ABOUT_THE_MAIL


def _reason(message: str) -> str:
    return " ".join(message.split())[:500]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DevMailSink:
    """Dev mode: every mail becomes a file in `directory`, written whole or not at all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: Mail) -> None:
        await asyncio.to_thread(self.write, message)

    def write(self, message: Mail, *, now: dt.datetime | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = _UNSAFE.sub("-", str(message.get("Message-ID", "")).strip("<>").partition("@")[0])[:80] or "mail"
        name = f"{(now or utcnow()):%Y%m%dT%H%M%S%f}-{key}-{secrets.token_hex(2)}.eml"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(message.as_bytes())
        # The page listing mails only ever sees whole files.
        os.replace(temporary, final)
        return final


@dataclasses.dataclass(frozen=True)
class SinkedMail:
    """One mail in the dev sink, as the /dev/mail page shows it."""

    name: str
    to: str
    subject: str
    date: str
    text: str = ""
    links: tuple[str, ...] = ()
    attachments: tuple[str, ...] = ()
    html: str = ""


_SINK_NAME = re.compile(r"[0-9]{8}T[0-9]{12}-[A-Za-z0-9._-]{1,80}-[0-9a-f]{4}\.eml")
# Join links, order pages, free registrations' confirmation links, console sign-in links and
# one-device "move here" links.
_LINK = re.compile(r"https?://[^\s<>\"']+/(?:j|o|r|org/login|move)/[A-Za-z0-9_-]+")


def _read_sinked(path: Path, *, full: bool) -> SinkedMail:
    message = BytesParser(policy=default_policy).parsebytes(path.read_bytes(), headersonly=not full)
    mail = SinkedMail(name=path.name, to=str(message.get("To", "")), subject=str(message.get("Subject", "")),
                      date=str(message.get("Date", "")))
    if not full:
        return mail
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    html_part = message.get_body(preferencelist=("html",))
    html = html_part.get_content() if html_part is not None else ""
    attachments = tuple(part.get_filename() or part.get_content_type() for part in message.iter_attachments())
    return dataclasses.replace(mail, text=text, links=tuple(dict.fromkeys(_LINK.findall(text))),
                               attachments=attachments, html=html)


def list_sinked(directory: Path, *, limit: int = 200) -> list[SinkedMail]:
    """The newest mails in the dev sink, newest first."""
    if not directory.is_dir():
        return []
    names = sorted((p for p in directory.iterdir() if _SINK_NAME.fullmatch(p.name)), reverse=True)[:limit]
    return [_read_sinked(path, full=False) for path in names]


def read_sinked(directory: Path, name: str) -> SinkedMail | None:
    """One mail of the dev sink by file name; None for anything that is not one (no paths)."""
    if not _SINK_NAME.fullmatch(name):
        return None
    path = directory / name
    return _read_sinked(path, full=True) if path.is_file() else None


def create_mailer(settings: Settings) -> Mailer:
    """SMTP when TICKETING_SMTP_URL is set, else the dev sink under the var directory."""
    if settings.mail_sink:
        return DevMailSink(settings.mail_dir)
    return SmtpMailer(SmtpServer.from_url(settings.smtp_url))
