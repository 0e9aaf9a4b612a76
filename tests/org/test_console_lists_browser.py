"""The console as an organizer uses it in Chromium, in English and German, at desktop and phone
width, checked by axe-core: the sign-in page, a webinar made in German from the form, the
webinar list (upcoming apart from past, copy link), the attendee list (search, filter, the
row menu by keyboard), a message previewed, sent and read back from the mail sink, and the
figures of a cancelled webinar."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from tests import factories
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to, until
from tests.pages import PHONE
from ticketing.db.models import Order, Webinar
from ticketing.lifecycle import webinars as webinar_lifecycle
from ticketing.orders.references import order_reference

pytestmark = pytest.mark.browser


async def _buy(url: str, settings, webinar: Webinar, buyer: str, quantity: int) -> None:
    """A paid checkout as Stripe reports it: a signed webhook to the running service."""
    body, headers = factories.signed(factories.event(
        "checkout.session.completed", factories.checkout_session(webinar, quantity=quantity, email=buyer)),
        settings.stripe_webhook_secrets[0])
    async with aiohttp.ClientSession() as http, http.post(f"{url}/webhooks/stripe", data=body, headers=headers) as r:
        assert r.status == 200


async def _when_refunded(read, amount: str, german: bool):
    figures = await read()
    return figures if figures.get("Erstattet" if german else "Refunded") == amount else None


def _mails(settings, subject: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(Path(settings.var_dir, "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["Subject"] == subject:
            found.append(message)
    return found


@pytest.mark.parametrize("language", ["en", "de"])
async def test_an_organizer_finds_attendees_and_writes_to_them(browser, console, sessionmaker, screenshot_dir,
                                                               language):
    url, settings = console
    ada, _ = await factories.organizer(sessionmaker, name="Ada Events", email="ada@example.com")
    context = await browser.new_context(locale="de-DE" if language == "de" else "en-GB", timezone_id="Europe/Berlin")
    page = await context.new_page()
    german = language == "de"

    await page.goto(f"{url}/org/login")
    service = await page.inner_text("#service")
    assert "127.0.0.1" in service
    assert ("Veranstalterkonsole des Webinar-Ticketdienstes" if german else "organizer console of the webinar ticket"
            " service") in service
    await sign_in_from_mail(page, url, "ada@example.com")

    # A new webinar in German, every error of the first try at once, then by keyboard.
    await page.goto(f"{url}/org/webinars/new")
    assert await page.input_value("#language") == language  # the console's language to start with
    await page.fill("#title", " ")
    await page.fill("#starts_at", "2030-01-31T18:00")
    await page.fill("#ends_at", "2030-01-31T17:00")
    await page.fill("#price", "lots")
    await page.click("form.org-form button[type=submit]")
    await page.wait_for_selector("#title-error")
    assert {await e.get_attribute("id") for e in await page.query_selector_all(".field-error")} == {
        "title-error", "ends_at-error", "price-error"}
    await check(page, screenshot_dir, f"console-new-errors-{language}")
    await page.fill("#title", "Widgets auf Deutsch")
    await page.fill("#ends_at", "2030-01-31T19:30")
    await page.fill("#price", "25.00")
    await page.fill("#capacity", "100")
    await tab_to(page, "#language")
    await page.keyboard.type("D")  # a closed list picks the option its name starts with
    assert await page.input_value("#language") == "de"
    await page.click("form.org-form button[type=submit]")
    await page.wait_for_selector("#webinar-language")
    assert await page.inner_text("#webinar-language [lang=de]") == "Deutsch"
    async with sessionmaker() as session:
        webinar = await session.scalar(select(Webinar).where(Webinar.title == "Widgets auf Deutsch"))
    assert webinar.language == "de"
    # Buying stops is said once, with why.
    sales_end = await page.inner_text("#sales-end")
    assert ("Kaufen möglich bis" if german else "Buying stops") in sales_end and "30" in sales_end

    # Buyers: Bea three seats, Erin one, Carl one; a past webinar that was cancelled.
    for buyer, quantity in (("bea@example.com", 3), ("erin@example.com", 1), ("carl@example.com", 1)):
        await _buy(url, settings, webinar, buyer, quantity)
    past = await factories.webinar(sessionmaker, ada, title="Last year's widgets")
    await _buy(url, settings, past, "old@example.com", 2)
    await webinar_lifecycle.cancel_webinar(sessionmaker, ada, past.id, grace_minutes=settings.join_grace_minutes,
                                           settings=settings)

    # The list: upcoming apart from past and cancelled; the public link copies with one click.
    await page.goto(f"{url}/org")
    upcoming = await page.inner_text("#upcoming")
    assert "Widgets auf Deutsch" in upcoming and "Last year" not in upcoming
    past_rows = await page.inner_text("#past")
    assert "Last year's widgets" in past_rows and "2" in past_rows
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    await page.click("#upcoming button.copy")
    assert await page.evaluate("navigator.clipboard.readText()") == f"{url}/w/{webinar.id}"
    await check(page, screenshot_dir, f"console-list-{language}")

    # The cancelled one reads as what happened.
    await page.click(f"#past a[href='/org/webinars/{past.id}']")
    fifty = "50,00\xa0€" if german else "€50.00"

    async def refunded():
        await page.reload()
        lines = (await page.inner_text("#sales-cancelled")).splitlines()
        return dict(zip(lines[::2], lines[1::2]))

    figures = await until(lambda: _when_refunded(refunded, fifty, german))
    sold, paid = ("Verkaufte Plätze", "Bezahlt") if german else ("Seats sold", "Paid")
    assert (figures[sold], figures[paid]) == ("2", fifty)

    # The attendee list: search by a reference read aloud, filter, the row menu by keyboard.
    await page.goto(f"{url}/org/webinars/{webinar.id}")

    async def five_rows():
        await page.reload()
        return len(await page.locator("#attendees tbody tr").all()) == 5

    await until(five_rows)
    async with sessionmaker() as session:
        carl = await session.scalar(select(Order).where(Order.email == "carl@example.com"))
    await page.fill("#attendee-q", order_reference(carl.id).lower().replace("-", " "))
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#attendee-count")
    rows = await page.locator("#attendees tbody tr").all_inner_texts()
    assert len(rows) == 1 and "carl@example.com" in rows[0] and order_reference(carl.id) in rows[0]
    await page.goto(f"{url}/org/webinars/{webinar.id}?q=bea%40")
    assert len(await page.locator("#attendees tbody tr").all()) == 3
    await tab_to(page, "#attendees details.row-menu summary")
    await page.keyboard.press("Enter")
    await tab_to(page, "#attendees details[open] a[href$='/revoke']")
    await page.keyboard.press("Enter")
    await page.click("button.danger")
    await page.wait_for_selector(".flash")
    await page.goto(f"{url}/org/webinars/{webinar.id}?state=revoked")
    rows = await page.locator("#attendees tbody tr").all_inner_texts()
    assert len(rows) == 1 and "bea@example.com" in rows[0]
    await page.goto(f"{url}/org/webinars/{webinar.id}")
    await page.locator("#attendees details.row-menu summary").first.click()
    await check(page, screenshot_dir, f"console-webinar-{language}")

    # A message: previewed, then sent to the four who still hold a seat, and read back.
    await page.click("a[href$='/messages']")
    await page.fill("#subject", "Slides sind online")
    await page.fill("#body", "Die Folien: [hier](https://example.com/folien).\n\n<script>alert(1)</script>")
    await page.click("form.org-form button[type=submit]")
    await page.wait_for_selector("#preview-count")
    assert "4" in await page.inner_text("#preview-count")
    assert await page.get_attribute("#preview-body a", "href") == "https://example.com/folien"
    await check(page, screenshot_dir, f"console-messages-preview-{language}")
    await page.click(".message-preview button[type=submit]")
    await page.wait_for_selector(".flash")

    async def delivered():
        await page.reload()
        cells = await page.locator("tbody tr td").all_inner_texts()
        return cells[2:4] == ["4", "4"] and cells

    await until(delivered)
    mails = _mails(settings, "Slides sind online")
    assert sorted(m["To"].addresses[0].addr_spec for m in mails) == [
        "bea@example.com", "bea@example.com", "carl@example.com", "erin@example.com"]
    text = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert "Ada Events schreibt allen mit einem Ticket für „Widgets auf Deutsch“:" in text
    assert "<script>" not in mails[0].get_body(preferencelist=("html",)).get_content()
    await check(page, screenshot_dir, f"console-messages-{language}")

    # At phone width the list and the menus still work.
    await page.set_viewport_size(PHONE)
    await page.goto(f"{url}/org/webinars/{webinar.id}")
    await page.locator("#attendees details.row-menu summary").first.click()
    assert await page.locator("#attendees details[open] a").first.is_visible()
    await check(page, screenshot_dir)
    await context.close()
