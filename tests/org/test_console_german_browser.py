"""The console's forms, confirmation pages and flash lines in German, walked in Chromium at
desktop and phone width: none of their former English texts is left, and axe-core finds nothing
serious."""

from __future__ import annotations

import re

import pytest

from tests import factories
from tests.access.conftest import add_ticket
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to
from tests.pages import DESKTOP, PHONE
from ticketing.accounts import apikeys

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
