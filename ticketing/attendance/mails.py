"""The attendance mails: the one-time "move here" link and the certificate with its PDF.

Like the other mail jobs, each reads what it needs in one statement and only then talks to
the SMTP server; Message-IDs are fixed per move or certificate, so a resend after a crash is
one a receiving server can drop. Both speak the webinar's language and carry its organizer's
Reply-To and footer, like every other mail to a buyer or attendee.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import bindparam, select

from ticketing import i18n
from ticketing.attendance import certificates, devices
from ticketing.db import utcnow
from ticketing.db.engine import autocommit_session
from ticketing.db.models import Certificate, DeviceMove, Organizer, Ticket, Webinar
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.mail.compose import N_, _, recipient, templated_mail
from ticketing.mail.jobs import MAIL_ATTEMPTS, _send, _uuid
from ticketing.mail.message import Attachment, Mail
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

# Built once, like the statements of the other mail jobs.
_MOVE = (
    select(DeviceMove, Ticket, Webinar, Organizer)
    .join(Ticket, Ticket.id == DeviceMove.ticket_id)
    .join(Webinar, Webinar.id == Ticket.webinar_id)
    .join(Organizer, Organizer.id == Webinar.organizer_id)
    .where(DeviceMove.id == bindparam("move_id"))
)
_CERTIFICATE = (
    select(Certificate, Ticket, Webinar, Organizer)
    .join(Ticket, Ticket.id == Certificate.ticket_id)
    .join(Webinar, Webinar.id == Certificate.webinar_id)
    .join(Organizer, Organizer.id == Webinar.organizer_id)
    .where(Certificate.id == bindparam("certificate_id"))
)


def move_link(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/move/{token}"


def move_mail(settings: Settings, ticket: Ticket, webinar: Webinar, move: DeviceMove, token: str, *,
              now: dt.datetime | None = None, organizer: Organizer | None = None) -> Mail:
    """The one-time link that moves a ticket to the device that opens it."""
    lang = i18n.language(webinar.language)
    context = {"webinar": webinar, "link": move_link(settings, token),
               "lifetime_minutes": int(devices.MOVE_LIFETIME.total_seconds() // 60)}
    return templated_mail(settings, to=recipient(ticket.email, ticket.name),
                          subject=_(lang, N_("Use your ticket on a new device: %(title)s"), title=webinar.title),
                          message_key=f"move.{move.id}", template="device_move", context=context,
                          now=now or utcnow(), lang=lang, organizer=organizer)


def certificate_mail(settings: Settings, ticket: Ticket, webinar: Webinar, view: certificates.CertificateView,
                     pdf: bytes, *, now: dt.datetime | None = None, organizer: Organizer | None = None) -> Mail:
    """The certificate of attendance, as a PDF attachment, with its verification URL."""
    lang = i18n.language(webinar.language)
    return templated_mail(settings, to=recipient(ticket.email, ticket.name),
                          subject=_(lang, N_("Your certificate of attendance: %(title)s"), title=webinar.title),
                          message_key=f"certificate.{ticket.id}", template="certificate",
                          context={"webinar": webinar, "view": view}, now=now or utcnow(), lang=lang,
                          organizer=organizer, attachment=Attachment(pdf, "application/pdf", "certificate.pdf"))


@job(devices.MOVE_MAIL, max_attempts=MAIL_ATTEMPTS)
async def send_move(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail the "move here" link, unless it was used or has expired meanwhile."""
    move_id, token = _uuid(payload, "move_id"), payload.get("code")
    if not isinstance(token, str) or not token:
        raise PermanentError("malformed payload: the link token is missing")
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_MOVE, {"move_id": move_id})).first()
    if row is None:
        logger.info("move mail skipped: the request no longer exists", extra={"move_id": str(move_id)})
        return
    move, ticket, webinar, organizer = row
    if move.used_at is not None or utcnow() >= move.expires_at:
        logger.info("move mail skipped: the link is used or expired", extra={"move_id": str(move_id)})
        return
    await _send(ctx, lambda: move_mail(ctx.settings, ticket, webinar, move, token, organizer=organizer))
    logger.info("mail sent", extra={"kind": "device_move", "ticket_id": str(ticket.id)})


@job(certificates.MAIL, max_attempts=MAIL_ATTEMPTS)
async def send_certificate(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail a certificate of attendance with its PDF."""
    certificate_id = _uuid(payload, "certificate_id")
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_CERTIFICATE, {"certificate_id": certificate_id})).first()
    if row is None:
        logger.info("certificate mail skipped: no such certificate", extra={"certificate_id": str(certificate_id)})
        return
    certificate, ticket, webinar, organizer = row
    view = certificates.certificate_view(certificate, webinar, organizer, ctx.settings.base_url)
    pdf = certificates.certificate_pdf(view)
    await _send(ctx, lambda: certificate_mail(ctx.settings, ticket, webinar, view, pdf, organizer=organizer))
    logger.info("mail sent", extra={"kind": "certificate", "ticket_id": str(ticket.id)})
