"""Certificates of attendance: who earned one, issuing each exactly once, the PDF, verification.

After a webinar with `certificate_min_percent` has ended (the worker's sweep marked it
ended), one job per webinar issues a certificate to every ticket present at least that share
of the scheduled time: a `certificates` row (unique per ticket) and its mail job, in one
transaction, so a certificate and its mail exist together or not at all and never twice.
The PDF names the attendee, the webinar, its date, the minutes attended and the organizer,
and prints the verification URL `{TICKETING_BASE_URL}/c/{code}`; it speaks the webinar's
language, like the mail that carries it and the page that URL opens.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import uuid
from pathlib import Path
from typing import Any

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing import i18n
from ticketing.access.tokens import display_name
from ticketing.attendance.figures import attendance_by_ticket
from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import Certificate, Organizer, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.jobs import NewJob, enqueue_many
from ticketing.jobs.registry import JobContext, PermanentError, job, periodic
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

ISSUE = "attendance.issue_certificates"
MAIL = "mail.certificate"
# Ended webinars are looked at for this long (a worker that was down catches up).
LOOK_BACK = dt.timedelta(days=7)
# A Unicode font when the system has one (Debian: fonts-dejavu-core); else PDF's built-in
# Helvetica in Windows-1252, which still covers German (ä, ß, „“) and the other Western languages.
UNICODE_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
                 Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"))
CORE_ENCODING = "cp1252"


def verification_url(base_url: str, code: str) -> str:
    return f"{base_url}/c/{code}"


@dataclasses.dataclass(frozen=True)
class CertificateView:
    """Everything a certificate states, for the PDF, the mail and the verification page."""

    code: str
    name: str
    title: str
    date: str
    minutes: int
    percent: int
    organizer: str
    issued_at: dt.datetime
    url: str
    lang: str


async def find(session: AsyncSession, code: str,
               base_url: str) -> tuple[CertificateView, Webinar, Organizer] | None:
    """The certificate with `code`, with its webinar and organizer (the page speaks the webinar's
    language and names the organizer's contact), or None (the page answers 404)."""
    if not 8 <= len(code) <= 64:
        return None
    row = (await session.execute(
        select(Certificate, Webinar, Organizer).join(Webinar, Webinar.id == Certificate.webinar_id)
        .join(Organizer, Organizer.id == Webinar.organizer_id).where(Certificate.code == code)
    )).first()
    if row is None:
        return None
    certificate, webinar, organizer = row
    return certificate_view(certificate, webinar, organizer, base_url), webinar, organizer


def certificate_view(certificate: Certificate, webinar: Webinar, organizer: Organizer, base_url: str) -> CertificateView:
    """What `certificate` of `webinar`, given by `organizer`, states, in the webinar's language."""
    lang = i18n.language(webinar.language)
    return CertificateView(code=certificate.code, name=certificate.name, title=webinar.title,
                           date=i18n.date_text(webinar.starts_at, webinar.timezone, lang),
                           minutes=certificate.minutes, percent=certificate.percent, organizer=organizer.name,
                           issued_at=certificate.issued_at, url=verification_url(base_url, certificate.code), lang=lang)


# --- issuing ---------------------------------------------------------------------------------


@periodic("attendance.certificates")
async def queue_certificates(ctx: JobContext, *, now: dt.datetime | None = None) -> int:
    """Every sweep: one issuing job for each recently ended webinar that gives certificates."""
    now = now or utcnow()
    async with ctx.sessionmaker.begin() as session:
        ids = list(await session.scalars(
            select(Webinar.id).where(Webinar.status == WebinarStatus.ENDED, Webinar.certificate_min_percent.is_not(None),
                                     Webinar.ends_at > now - LOOK_BACK)
        ))
        queued = await enqueue_many(session, [NewJob(ISSUE, {"webinar_id": str(i)}, dedupe_key=f"{ISSUE}:{i}")
                                              for i in ids])
    return queued


async def issue_certificates(session: AsyncSession, settings: Settings, webinar_id: uuid.UUID, *,
                             now: dt.datetime | None = None) -> int:
    """Issue the webinar's certificates not issued yet, each with its mail job; returns how many are new."""
    now = now or utcnow()
    webinar = await session.scalar(select(Webinar).where(Webinar.id == webinar_id).with_for_update())
    if webinar is None or webinar.certificate_min_percent is None or webinar.status == WebinarStatus.CANCELLED:
        return 0
    figures = await attendance_by_ticket(session, webinar, settings, now=now)
    tickets = {t.id: t for t in await session.scalars(
        select(Ticket).where(Ticket.webinar_id == webinar.id, Ticket.status != TicketStatus.REVOKED)
    )}
    new = 0
    jobs = []
    for ticket_id, attended in sorted(figures.items(), key=lambda item: str(item[0])):
        ticket = tickets.get(ticket_id)
        if ticket is None or not attended.reaches(webinar.certificate_min_percent):
            continue
        result = await session.execute(
            insert(session, Certificate).values(
                id=uuid.uuid4(), ticket_id=ticket.id, webinar_id=webinar.id, code=secrets.token_urlsafe(12),
                name=display_name(ticket), minutes=attended.minutes_present, percent=attended.percent_of_scheduled,
                issued_at=now,
            ).on_conflict_do_nothing(index_elements=["ticket_id"]).returning(Certificate.id)
        )
        certificate_id = result.scalar()
        if certificate_id is None:
            continue
        new += 1
        jobs.append(NewJob(MAIL, {"certificate_id": str(certificate_id)}, dedupe_key=f"{MAIL}:{ticket.id}"))
    await enqueue_many(session, jobs)
    return new


@job(ISSUE)
async def issue(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Issue one ended webinar's certificates (and queue their mails)."""
    try:
        webinar_id = uuid.UUID(str(payload.get("webinar_id")))
    except ValueError:
        raise PermanentError(f"payload webinar_id is not an id: {payload.get('webinar_id')!r}") from None
    async with ctx.sessionmaker.begin() as session:
        count = await issue_certificates(session, ctx.settings, webinar_id)
    logger.info("certificates issued", extra={"webinar_id": str(webinar_id), "count": count})


# --- the PDF ---------------------------------------------------------------------------------


def _font(pdf: FPDF) -> tuple[str, bool]:
    for path in UNICODE_FONTS:
        if path.is_file():
            pdf.add_font("certificate", fname=str(path))
            return "certificate", True
    pdf.core_fonts_encoding = CORE_ENCODING
    return "helvetica", False


def _western(text: str) -> str:
    """What Helvetica can print: a name in another script keeps its Western letters, the rest become `?`."""
    return text.encode(CORE_ENCODING, "replace").decode(CORE_ENCODING)


def certificate_pdf(view: CertificateView) -> bytes:
    """The certificate as a one-page A4 landscape PDF, in the view's language."""
    catalog = i18n.translations(view.lang)
    _, ngettext = catalog.gettext, catalog.ngettext
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_lang(view.lang)
    pdf.set_title(_("Certificate of attendance: %(title)s") % {"title": view.title})
    pdf.set_author(view.organizer)
    pdf.set_creator("ticketing")
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(25, 25, 25)
    pdf.add_page()
    family, unicode = _font(pdf)
    text = (lambda s: s) if unicode else _western
    width = pdf.w - 2 * pdf.l_margin
    pdf.set_draw_color(40, 70, 120)
    pdf.set_line_width(1.2)
    pdf.rect(10, 10, pdf.w - 20, pdf.h - 20)

    def line(value: str, size: float, *, gap: float = 4, color: tuple[int, int, int] = (26, 26, 26)) -> None:
        pdf.set_font(family, size=size)
        pdf.set_text_color(*color)
        pdf.multi_cell(width, size * 0.5, text(value), align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    pdf.set_y(45)
    line(_("Certificate of attendance"), 30, gap=10, color=(40, 70, 120))
    line(_("This certifies that"), 14)
    line(view.name, 26, gap=8)
    line(_("attended the webinar"), 14)
    line(view.title, 20, gap=8)
    line(ngettext("held on %(date)s, present for %(minutes)s minute (%(percent)s%% of the scheduled time).",
                  "held on %(date)s, present for %(minutes)s minutes (%(percent)s%% of the scheduled time).",
                  view.minutes) % {"date": view.date, "minutes": view.minutes, "percent": view.percent}, 13)
    line(_("Organized by %(name)s") % {"name": view.organizer}, 13, gap=14)
    line(_("Verify this certificate at %(url)s") % {"url": view.url}, 10, gap=0, color=(80, 80, 80))
    return bytes(pdf.output())
