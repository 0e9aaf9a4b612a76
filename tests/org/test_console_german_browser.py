"""The console in German, walked in Chromium at desktop and phone width: its forms, confirmation
pages, flash lines and every other page show none of the English the catalog translates, the
service's refusals included, and axe-core finds nothing serious."""

from __future__ import annotations

import functools
import re
import uuid
from io import BytesIO

import pytest
from babel.messages.pofile import read_po

from tests import factories
from tests.access.conftest import add_ticket
from tests.buyer.test_language import LOCALE
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to
from tests.pages import DESKTOP, PHONE
from ticketing import i18n
from ticketing.accounts import apikeys
from ticketing.db.models import Order, OrderStatus, TicketStatus

pytestmark = pytest.mark.browser

# What these pages said in English before they spoke the organizer's language.
OLD_ENGLISH = ["New webinar", "Title", "Description", "Starts", "Ends", "Sales end", "Time zone", "Price per seat",
               "Currency", "Jitsi room", "One device per ticket", "Certificate of attendance", "Create webinar",
               "Cancel", "Save", "(optional)", "New ticket type", "Seats of this type", "On sale from", "Hidden",
               "Add ticket type", "Please correct", "Revoke this ticket?", "Revoke the ticket", "No money is refunded",
               "Keep it", "Back", "Revoke the key", "Programs using", "Sales stop", "will be refunded",
               "Cancel the webinar", "Send the join link again?", "Send a new link", "is revoked", "is on sale"]


def english_left(text: str) -> list[str]:
    return [words for words in OLD_ENGLISH if re.search(rf"(?<!\w){re.escape(words)}(?!\w)", text)]


async def test_the_console_in_german_has_none_of_its_old_english(browser, console, sessionmaker, screenshot_dir):
    url, _ = console
    ada, _ = await factories.organizer(sessionmaker, name="Ada Events", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, ada, title="Widgets")
    ticket, _ = await add_ticket(sessionmaker, webinar)
    async with sessionmaker.begin() as session:
        key, _ = await apikeys.create_key(session, ada, "Zapier")
    context = await browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")
    page = await context.new_page()
    try:
        await sign_in_from_mail(page, url, "ada@example.com")
        pages = ["/org/webinars/new", f"/org/webinars/{webinar.id}/edit", f"/org/webinars/{webinar.id}/ticket-types/new",
                 f"/org/webinars/{webinar.id}/cancel", f"/org/tickets/{ticket.id}/revoke",
                 f"/org/tickets/{ticket.id}/resend", f"/org/keys/{key.id}/revoke"]
        for viewport in (DESKTOP, PHONE):
            await page.set_viewport_size(viewport)
            for path in pages:
                response = await page.goto(url + path)
                assert response.status == 200, path
                assert await page.get_attribute("html", "lang") == "de"
                assert english_left(await page.inner_text("main")) == [], path
                assert catalog_english_in(await page.inner_text("body")) == [], path
                await check(page, screenshot_dir)
        # Every error of a first try at once, in German, then a flash line after saving.
        await page.goto(f"{url}/org/webinars/new")
        await page.fill("#title", " ")
        await page.fill("#price", "viel")
        await tab_to(page, "form.org-form button[type=submit]")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#title-error")
        alert = await page.inner_text("main p.error[role=alert]")
        labels = " ".join([await label.inner_text() for label in await page.query_selector_all("main label")])
        assert alert == "Bitte korrigieren Sie die markierten Felder." and english_left(labels) == []
        await check(page, screenshot_dir, "console-new-errors-de-form")
        await page.goto(f"{url}/org/keys/{key.id}/revoke")
        await tab_to(page, "form[aria-label] button[type=submit]")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{url}/org/keys")
        main = await page.inner_text("main")
        assert "Der Schlüssel „Zapier“ ist widerrufen." in main and english_left(main) == []
    finally:
        await context.close()


# Texts German shares with English, or names that stay as they are in every language.
SAME_IN_GERMAN = {"Webinar", "Webinars", "Name", "Status", "Link", "Links", "Jitsi", "Stripe", "API", "CSV", "UTC", "Start",
                  "Ticket"}


@functools.cache
def english_phrases() -> tuple[str, ...]:
    """The English of every message the German catalog translates differently, cut at its
    placeholders and markup: what a German page must not show."""
    template = read_po(BytesIO((LOCALE / "messages.pot").read_bytes()))
    german = i18n.translations("de")
    phrases = set()
    for message in template:
        if not message.id:
            continue
        texts = message.id if isinstance(message.id, tuple) else (message.id,)
        if isinstance(message.id, str) and german.gettext(message.id) == message.id:
            continue
        for text in texts:
            for piece in re.split(r"%\(\w+\)[sdr]|<[^>]*>|%%", text):
                piece = piece.strip(" .,:;!?()“”‘’'\"·–—-×/")
                if len(piece) >= 4 and re.search(r"[A-Za-z]{3}", piece) and piece not in SAME_IN_GERMAN:
                    phrases.add(piece)
    return tuple(sorted(phrases, key=len, reverse=True))


def catalog_english_in(text: str) -> list[str]:
    return [phrase for phrase in english_phrases() if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text)]


def test_the_phrase_check_finds_the_console_english_it_is_meant_to_find():
    assert catalog_english_in("Angezeigter Name · Passed on by the buyer 2×, last Montag") == [
        "Passed on by the buyer", "last"]
    assert catalog_english_in("Tickets: gültig, gesendet, widerrufen (von Ihnen); E-Mail") == []
    assert {"valid", "sent", "revoked", "Orders to look at"} <= set(english_phrases())


async def _console_data(sessionmaker):
    """An organizer with a key and a paid webinar whose page shows every part: ticket types,
    a valid and a revoked ticket, an order to look at and the order list."""
    ada, _ = await factories.organizer(sessionmaker, name="Ada Events", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, ada, title="Widgets")
    ticket, _ = await add_ticket(sessionmaker, webinar, name="Bea Berger")
    await add_ticket(sessionmaker, webinar, name="Cy Gone", email="cy@example.com", status=TicketStatus.REVOKED,
                     revoked_reason="organizer")
    async with sessionmaker.begin() as session:
        await apikeys.create_key(session, ada, "Zapier")
        session.add(Order(id=uuid.uuid4(), webinar_id=webinar.id, quantity=2, email="dee@example.com",
                          expected_amount=2 * webinar.price_amount, amount_total=webinar.price_amount,
                          currency=webinar.currency, amount_refunded=0, status=OrderStatus.FLAGGED,
                          problem="amount_total does not match"))
    return webinar, ticket


async def test_a_german_organizer_meets_no_english_of_the_catalog_on_any_console_page(
        browser, console, sessionmaker, screenshot_dir):
    url, _ = console
    webinar, ticket = await _console_data(sessionmaker)
    context = await browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")
    page = await context.new_page()
    seen = []

    async def look(expected_status: int = 200, name: str | None = None) -> None:
        assert await page.get_attribute("html", "lang") == "de", page.url
        text = await page.inner_text("body")
        assert catalog_english_in(text) == [], page.url
        seen.append(page.url)
        await check(page, screenshot_dir, name)

    try:
        # Signed out: the sign-in pages follow the browser's language.
        for path, status in (("/org/login", 200), ("/org/login/" + "x" * 43, 404)):
            response = await page.goto(url + path)
            assert response.status == status
            await look()
        await sign_in_from_mail(page, url, "ada@example.com")
        paths = ["/org", f"/org/webinars/{webinar.id}", "/org/keys", "/org/settings",
                 f"/org/webinars/{webinar.id}/messages", f"/org/tickets/{ticket.id}/address",
                 f"/org/orders/{ticket.order_id}/seats"]
        for viewport in (DESKTOP, PHONE):
            await page.set_viewport_size(viewport)
            for path in paths:
                response = await page.goto(url + path)
                assert response.status == 200, path
                await look()
        await page.set_viewport_size(DESKTOP)
        # The webinar page speaks German in its states, its ticket types and its orders.
        await page.goto(f"{url}/org/webinars/{webinar.id}")
        main = await page.inner_text("main")
        for german in ("Ticketarten", "gültig", "widerrufen (von Ihnen)", "Bestellungen, die Sie ansehen sollten",
                       "markiert"):
            assert german in main, german
        # A new time asks first, in German.
        await page.goto(f"{url}/org/webinars/{webinar.id}/edit")
        await page.fill("#starts_at", "2031-03-01T10:00")
        await page.fill("#ends_at", "2031-03-01T11:00")
        await tab_to(page, "form.org-form button[type=submit]")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("form[aria-label] input[name=confirm]", state="attached")
        await look()
        assert "Verschieben und 1 Teilnehmer/in benachrichtigen" in await page.inner_text("main")
        # The service's refusals come back in German too, every field at once.
        await page.goto(f"{url}/org/webinars/new")
        await page.fill("#title", "Gizmos")
        await page.fill("#starts_at", "2031-03-01T10:00")
        await page.fill("#ends_at", "2031-03-01T09:00")
        await page.fill("#price", "-5")
        await page.fill("#currency", "XYZ")
        await tab_to(page, "form.org-form button[type=submit]")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#ends_at-error")
        assert await page.inner_text("#ends_at-error") == "Das Ende muss nach dem Beginn liegen."
        assert await page.inner_text("#price-error") == "Der Preis darf nicht negativ sein."
        assert (await page.inner_text("#currency-error")).startswith("Unbekannte Währung")
        await look(name="console-new-errors-de-service")
        await page.goto(f"{url}/org/keys")
        await page.fill("#name", " ")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#name-error")
        assert await page.inner_text("#name-error") == "Der Name muss 1 bis 100 einfache Zeichen lang sein."
        await look()
        assert len(seen) == 2 + 2 * len(paths) + 3
    finally:
        await context.close()
