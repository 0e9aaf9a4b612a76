"""The attendance mails: the one-time "move here" link and the certificate with its PDF.

Like the other mail jobs, each reads what it needs in a short session and only then talks to
the SMTP server; Message-IDs are fixed per move or certificate, so a resend after a crash is
one a receiving server can drop.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import jinja2
from sqlalchemy import select

from ticketing.attendance import certificates, devices
from ticketing.db import utcnow
from ticketing.db.models import Certificate, DeviceMove, Ticket, Webinar
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.mail.compose import recipient, templated_mail
from ticketing.mail.jobs import MAIL_ATTEMPTS, _send, _uuid
from ticketing.mail.message import Attachment, Mail
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("ticketing.attendance", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def move_link(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/move/{token}"


def move_mail(settings: Settings, ticket: Ticket, webinar: Webinar, move: DeviceMove, token: str, *,
              now: dt.datetime | None = None) -> Mail:
    """The one-time link that moves a ticket to the device that opens it."""
    context = {"webinar": webinar, "link": move_link(settings, token),
               "lifetime_minutes": int(devices.MOVE_LIFETIME.total_seconds() // 60)}
    return templated_mail(settings, to=recipient(ticket.email, ticket.name),
                          subject=f"Use your ticket on a new device: {webinar.title}", message_key=f"move.{move.id}",
                          template="device_move", context=context, now=now or utcnow(), templates=_ENV)


def certificate_mail(settings: Settings, ticket: Ticket, view: certificates.CertificateView, pdf: bytes, *,
                     now: dt.datetime | None = None) -> Mail:
    """The certificate of attendance, as a PDF attachment, with its verification URL."""
    return templated_mail(settings, to=recipient(ticket.email, ticket.name),
                          subject=f"Your certificate of attendance: {view.title}", message_key=f"certificate.{ticket.id}",
                          template="certificate", context={"view": view}, now=now or utcnow(), templates=_ENV,
                          attachment=Attachment(pdf, "application/pdf", "certificate.pdf"))


@job(devices.MOVE_MAIL, max_attempts=MAIL_ATTEMPTS)
async def send_move(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail the "move here" link, unless it was used or has expired meanwhile."""
    move_id, token = _uuid(payload, "move_id"), payload.get("code")
    if not isinstance(token, str) or not token:
        raise PermanentError("malformed payload: the link token is missing")
    async with ctx.sessionmaker() as session:
        row = (await session.execute(
            select(DeviceMove, Ticket, Webinar).join(Ticket, Ticket.id == DeviceMove.ticket_id)
            .join(Webinar, Webinar.id == Ticket.webinar_id).where(DeviceMove.id == move_id)
        )).first()
    if row is None:
        logger.info("move mail skipped: the request no longer exists", extra={"move_id": str(move_id)})
        return
    move, ticket, webinar = row
    if move.used_at is not None or utcnow() >= move.expires_at:
        logger.info("move mail skipped: the link is used or expired", extra={"move_id": str(move_id)})
        return
    await _send(ctx, lambda: move_mail(ctx.settings, ticket, webinar, move, token))
    logger.info("mail sent", extra={"kind": "device_move", "ticket_id": str(ticket.id)})


@job(certificates.MAIL, max_attempts=MAIL_ATTEMPTS)
async def send_certificate(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail a certificate of attendance with its PDF."""
    certificate_id = _uuid(payload, "certificate_id")
    async with ctx.sessionmaker() as session:
        row = (await session.execute(
            select(Certificate, Ticket).join(Ticket, Ticket.id == Certificate.ticket_id)
            .where(Certificate.id == certificate_id)
        )).first()
        if row is None:
            logger.info("certificate mail skipped: no such certificate", extra={"certificate_id": str(certificate_id)})
            return
        certificate, ticket = row
        view = await certificates.find(session, certificate.code, ctx.settings.base_url)
    if view is None:
        return
    pdf = certificates.certificate_pdf(view)
    await _send(ctx, lambda: certificate_mail(ctx.settings, ticket, view, pdf))
    logger.info("mail sent", extra={"kind": "certificate", "ticket_id": str(ticket.id)})

