"""Certificates of attendance: issued once per qualifying ticket after the webinar ends, mailed over
real SMTP as a PDF whose text is read back with pypdf, and verifiable at /c/{code}; the PDF and the
page speak the webinar's language."""

from __future__ import annotations

import datetime as dt
import io
import re

import aiohttp
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from tests import factories
from tests.access.conftest import add_ticket, move_webinar
from tests.attendance import prosody as p
from tests.attendance.test_events import _scenario
from tests.buyer.conftest import html_of, profiled_organizer, text_of
from ticketing import i18n
from ticketing.attendance import certificates
from ticketing.attendance.events import apply, parse
from ticketing.db import utcnow
from ticketing.db.models import Certificate, Job, TicketStatus, Webinar, WebinarStatus
from ticketing.jobs.registry import PERIODIC, JobContext
from ticketing.lifecycle.webinars import expire

MIN = dt.timedelta(minutes=1)


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return " ".join(reader.pages[0].extract_text().split())


async def test_certificates_go_once_to_those_present_long_enough(make_settings, smtp, start_client, sessionmaker,
                                                                  make_worker):
    settings = make_settings(smtp_url=smtp.url, base_url="https://tickets.example.com")
    client = await start_client(settings)
    owner, _ = await factories.organizer(sessionmaker, name="Olga Organizer", email="olga@example.com")
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets in Depth", certificate_min_percent=75)
    start = (utcnow() - dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    await move_webinar(sessionmaker, webinar, start, start + 60 * MIN, timezone="Europe/Berlin")
    ann, _ = await add_ticket(sessionmaker, webinar, name="Ann Attendee", email="ann@example.com")
    ben, _ = await add_ticket(sessionmaker, webinar, name="Ben", email="ben@example.com")
    cy, _ = await add_ticket(sessionmaker, webinar, name="", email="cy@example.com")
    events = _scenario(webinar.room, start, str(ann.id), str(ben.id), str(cy.id), host=str(owner.id))
    for event in events:
        assert (await p.post(client, settings.jitsi_events_secret, event)).status == 200

    http = aiohttp.ClientSession()
    try:
        context = JobContext(settings=settings, sessionmaker=sessionmaker, stripe=None, http=http)
        assert "attendance.certificates" in PERIODIC
        # Nothing before the webinar is over.
        assert await certificates.queue_certificates(context) == 0
        await expire(context)
        async with sessionmaker() as session:
            assert (await session.get(Webinar, webinar.id)).status == WebinarStatus.ENDED
        assert await certificates.queue_certificates(context) == 1
        assert await certificates.queue_certificates(context) == 0  # one issuing job per webinar
        await make_worker(settings).run_until_idle()
        # Running everything again sends nothing more.
        await make_worker(settings).run_periodic()
        await make_worker(settings).run_until_idle()
        async with sessionmaker.begin() as session:
            assert await certificates.issue_certificates(session, settings, webinar.id) == 0
    finally:
        await http.close()

    # Ann: exactly 75 %; Cy: 91 %; Ben: 58 %, none.
    assert smtp.to("ben@example.com") == []
    [ann_mail] = smtp.to("ann@example.com")
    [cy_mail] = smtp.to("cy@example.com")
    assert ann_mail["Subject"] == "Your certificate of attendance: Widgets in Depth"
    [attachment] = list(ann_mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf" and attachment.get_filename() == "certificate.pdf"
    text = _pdf_text(attachment.get_content())
    async with sessionmaker() as session:
        issued = {c.ticket_id: c for c in await session.scalars(select(Certificate))}
    assert set(issued) == {ann.id, cy.id}
    date = i18n.date_text(webinar.starts_at, "Europe/Berlin", "en")
    assert re.fullmatch(r"[A-Z][a-z]+day \d{1,2} [A-Z][a-z]+ \d{4}", date)
    assert "Certificate of attendance" in text and "Ann Attendee" in text and "Widgets in Depth" in text
    assert f"held on {date}, present for 45 minutes (75% of the scheduled time)" in text
    assert "Organized by Olga Organizer" in text
    url = f"https://tickets.example.com/c/{issued[ann.id].code}"
    assert url in text
    # The organizer answers the mail and signs it; this one gave no contact address but its own.
    assert ann_mail["Reply-To"].addresses[0].addr_spec == "olga@example.com"
    assert '<html lang="en">' in html_of(ann_mail)
    for body in (text_of(ann_mail), html_of(ann_mail)):
        assert url in body and "45 minutes, 75% of the scheduled time" in body
        assert "Organized by Olga Organizer." in body and "Questions? Reply to this mail" in body
    cy_text = _pdf_text(next(cy_mail.iter_attachments()).get_content())
    assert "cy" in cy_text.split("This certifies that")[1] and "65 minutes (91%" in cy_text
    title = PdfReader(io.BytesIO(attachment.get_content())).metadata.title
    assert title == "Certificate of attendance: Widgets in Depth"

    page = await client.get(f"/c/{issued[ann.id].code}")
    assert page.status == 200
    html = await page.text()
    assert '<html lang="en">' in html and "<h1 id=\"title\">Certificate of attendance</h1>" in html
    assert "This certificate is genuine" in html and "Ann Attendee" in html
    assert "45 minutes (75% of the scheduled time)" in html
    assert "Olga Organizer" in html and date in html
    # The footer every buyer page has: the organizer and how to reach them.
    assert "Contact:" in html and "mailto:olga@example.com" in html
    assert (await client.get("/c/not-a-real-code-1234")).status == 404
    assert (await client.get("/c/x")).status == 404
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == certificates.MAIL)) == 2


async def test_revoked_tickets_and_webinars_without_the_option_get_none(settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)  # no certificate_min_percent
    start = (utcnow() - dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    await move_webinar(sessionmaker, webinar, start, start + 60 * MIN, status=WebinarStatus.ENDED)
    ticket, _ = await add_ticket(sessionmaker, webinar)
    other = await factories.webinar(sessionmaker, certificate_min_percent=10)
    await move_webinar(sessionmaker, other, start, start + 60 * MIN, status=WebinarStatus.ENDED)
    revoked, _ = await add_ticket(sessionmaker, other, status=TicketStatus.REVOKED, revoked_reason="refunded")
    async with sessionmaker.begin() as session:
        for room, holder in ((webinar.room, ticket), (other.room, revoked)):
            who = p.occupant(f"{holder.id}@m/1", start, start + 50 * MIN, **p.user(str(holder.id)))
            await apply(session, parse(*p.left(room, who, 0)))
    async with sessionmaker.begin() as session:
        # Both were present 50 of 60 minutes: one webinar gives no certificates, the other ticket is revoked.
        assert await certificates.issue_certificates(session, settings, webinar.id) == 0
        assert await certificates.issue_certificates(session, settings, other.id) == 0
        assert await session.scalar(select(func.count()).select_from(Certificate)) == 0


async def test_a_german_webinars_certificate_its_pdf_and_page_are_german(make_settings, smtp, start_client,
                                                                          sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url, base_url="https://tickets.example.com")
    client = await start_client(settings)
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Größen „richtig“ schätzen", language="de",
                                      certificate_min_percent=75)
    start = dt.datetime(2026, 1, 15, 17, 0, tzinfo=dt.UTC)
    await move_webinar(sessionmaker, webinar, start, start + 60 * MIN, timezone="Europe/Berlin",
                       status=WebinarStatus.ENDED)
    ticket, _ = await add_ticket(sessionmaker, webinar, name="Jürgen Weiß", email="anna@example.com")
    async with sessionmaker.begin() as session:
        who = p.occupant(f"{ticket.id}@m/1", start, start + 48 * MIN, **p.user(str(ticket.id)))
        await apply(session, parse(*p.left(webinar.room, who, 0)))
    async with sessionmaker.begin() as session:
        assert await certificates.issue_certificates(session, settings, webinar.id) == 1
        code = await session.scalar(select(Certificate.code))
    await make_worker(settings).run_until_idle()

    [message] = smtp.to("anna@example.com")
    assert message["Subject"] == "Ihre Teilnahmebescheinigung: Größen „richtig“ schätzen"
    [answer] = message["Reply-To"].addresses
    assert (answer.display_name, answer.addr_spec) == ("Widget Academy", "help@widgets.example")
    assert '<html lang="de">' in html_of(message)
    for body in (text_of(message), html_of(message)):
        assert "Vielen Dank für Ihre Teilnahme an diesem Webinar am Donnerstag, 15. Januar 2026." in body
        assert "48 Minuten, 80 % der geplanten Zeit." in body
        assert "Die Echtheit lässt sich unter dieser Adresse prüfen:" in body
        assert f"https://tickets.example.com/c/{code}" in body
        assert "Veranstaltet von Widget Academy." in body and "Impressum" in body and "AGB" in body
        assert "https://widgets.example/imprint" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "certificate.pdf"
    assert _pdf_text(attachment.get_content()) == (
        "Teilnahmebescheinigung Hiermit wird bestätigt, dass Jürgen Weiß an dem Webinar Größen „richtig“ schätzen "
        "am Donnerstag, 15. Januar 2026 teilgenommen hat und 48 Minuten anwesend war (80 % der geplanten Zeit). "
        f"Veranstaltet von Widget Academy Die Echtheit dieser Bescheinigung lässt sich hier prüfen: "
        f"https://tickets.example.com/c/{code}")
    reader = PdfReader(io.BytesIO(attachment.get_content()))
    assert reader.metadata.title == "Teilnahmebescheinigung: Größen „richtig“ schätzen"
    assert reader.trailer["/Root"]["/Lang"] == "de"

    # The verification page speaks German too, whatever the browser asks for.
    page = await client.get(f"/c/{code}", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert page.status == 200
    html = await page.text()
    assert '<html lang="de">' in html
    assert "<title>Teilnahmebescheinigung: Größen „richtig“ schätzen · Webinars</title>" in html
    assert '<h1 id="title">Teilnahmebescheinigung</h1>' in html
    assert "Diese Bescheinigung ist echt: sie wurde von diesem Dienst ausgestellt." in html
    for label in ("Teilnehmende Person", "Webinar", "Datum", "Anwesend", "Veranstalter", "Ausgestellt"):
        assert f"<dt>{label}</dt>" in html
    assert '<dd id="date">Donnerstag, 15. Januar 2026</dd>' in html
    assert '<dd id="present">48 Minuten (80 % der geplanten Zeit)</dd>' in html
    assert "Veranstaltet von Widget Academy" in html and "Kontakt:" in html and "Impressum" in html
    assert "Certificate" not in html and "minutes" not in html


@pytest.mark.parametrize("name", ["Zoë Ångström", "Łukasz Żółć", "Анна Каренина"])
def test_the_pdf_names_anyone(name):
    view = certificates.CertificateView(code="abc123", name=name, title="Widgets", date="Friday 1 March 2030",
                                        minutes=50, percent=83, organizer="Olga", issued_at=utcnow(),
                                        url="https://tickets.example.com/c/abc123", lang="en")
    text = _pdf_text(certificates.certificate_pdf(view))
    if any(path.is_file() for path in certificates.UNICODE_FONTS):
        assert name in text
    else:  # Helvetica only: the Western part survives
        assert name.encode("cp1252", "replace").decode("cp1252").split("?")[0] in text
    assert "https://tickets.example.com/c/abc123" in text


@pytest.mark.parametrize("font", ["unicode", "helvetica"])
@pytest.mark.parametrize("minutes", [1, 50])
def test_a_german_pdf_prints_german_in_either_font(monkeypatch, font, minutes):
    if font == "unicode" and not any(path.is_file() for path in certificates.UNICODE_FONTS):
        pytest.skip("no Unicode font on this system (Debian: fonts-dejavu-core)")
    if font == "helvetica":  # as on a system without DejaVu
        monkeypatch.setattr(certificates, "UNICODE_FONTS", ())
    view = certificates.CertificateView(code="abc123", name="Jürgen Weiß", title="Größen „richtig“ schätzen",
                                        date="Freitag, 1. März 2030", minutes=minutes, percent=83,
                                        organizer="Ölwerke Süd", issued_at=utcnow(),
                                        url="https://tickets.example.com/c/abc123", lang="de")
    unit = "Minute" if minutes == 1 else "Minuten"
    assert _pdf_text(certificates.certificate_pdf(view)) == (
        "Teilnahmebescheinigung Hiermit wird bestätigt, dass Jürgen Weiß an dem Webinar Größen „richtig“ schätzen "
        f"am Freitag, 1. März 2030 teilgenommen hat und {minutes} {unit} anwesend war (83 % der geplanten Zeit). "
        "Veranstaltet von Ölwerke Süd Die Echtheit dieser Bescheinigung lässt sich hier prüfen: "
        "https://tickets.example.com/c/abc123")


def test_an_english_pdf_says_minute_for_one():
    view = certificates.CertificateView(code="abc123", name="Ann", title="Widgets", date="Friday 1 March 2030",
                                        minutes=1, percent=2, organizer="Olga", issued_at=utcnow(),
                                        url="https://tickets.example.com/c/abc123", lang="en")
    assert "held on Friday 1 March 2030, present for 1 minute (2% of the scheduled time)." in _pdf_text(
        certificates.certificate_pdf(view))


@pytest.mark.browser
@pytest.mark.parametrize(("language", "heading"),
                         [("en", "Certificate of attendance"), ("de", "Teilnahmebescheinigung")])
async def test_the_verification_page_in_a_browser(browser, client, sessionmaker, screenshot_dir, language, heading):
    from tests.pages import accessibility_problems, screenshots

    owner, _ = await factories.organizer(sessionmaker, name="Olga Organizer")
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets in Depth", language=language)
    ticket, _ = await add_ticket(sessionmaker, webinar, name="Ann Attendee")
    async with sessionmaker.begin() as session:
        session.add(Certificate(ticket_id=ticket.id, webinar_id=webinar.id, code="Xy3kQ9abcDEF0123", name="Ann Attendee",
                                minutes=48, percent=80, issued_at=utcnow()))
    page = await browser.new_page()
    response = await page.goto(str(client.make_url("/c/Xy3kQ9abcDEF0123")))
    assert response.status == 200
    assert await page.locator("html").get_attribute("lang") == language
    assert await page.locator("h1").inner_text() == heading
    assert await page.locator("#attendee").inner_text() == "Ann Attendee"
    assert await accessibility_problems(page) == []
    await screenshots(page, screenshot_dir, f"certificate-{language}")
    response = await page.goto(str(client.make_url("/c/Xy3kQ9abcDEF0124")))
    assert response.status == 404
