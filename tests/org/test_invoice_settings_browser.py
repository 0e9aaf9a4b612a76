"""Invoices and tax from the console in headless Chromium, by keyboard, with axe-core: the
organizer turns invoices on, a buyer pays in dev mode and opens the stand-in invoice from the
order page, and the organizer finds its number among the webinar's orders."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import factories
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to
from tests.pages import PHONE
from ticketing.db.models import Order, Organizer

pytestmark = pytest.mark.browser


async def test_an_organizer_turns_invoices_on_and_a_buyer_gets_one(browser, console, sessionmaker, screenshot_dir):
    url, _ = console
    owner, _ = await factories.organizer(sessionmaker, name="Widget Academy", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, owner, title="Taxed Widgets", price_amount=2500)
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()
    await sign_in_from_mail(page, url, "ada@example.com")

    await page.goto(f"{url}/org/settings")
    assert await page.inner_text("legend") == "Invoices and tax"
    for name in ("invoices", "collect_tax_id", "automatic_tax", "prices_include_tax"):
        assert not await page.is_checked(f"#{name}")
    for viewport in (PHONE, {"width": 1280, "height": 900}):
        await page.set_viewport_size(viewport)
        await check(page, screenshot_dir, "console-invoice-settings")
    for name in ("invoices", "collect_tax_id"):
        await tab_to(page, f"#{name}")
        await page.keyboard.press("Space")
    await tab_to(page, "#invoice_footer")
    await page.keyboard.type("Widget Academy GmbH, Berlin")
    await tab_to(page, "button[type=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert "Settings saved" in await page.inner_text(".flash")
    assert await page.is_checked("#invoices") and await page.is_checked("#collect_tax_id")
    assert not await page.is_checked("#automatic_tax")
    async with sessionmaker() as session:
        stored = await session.get(Organizer, owner.id)
    assert (stored.invoices, stored.collect_tax_id, stored.automatic_tax, stored.prices_include_tax) == (
        True, True, False, False)
    assert stored.invoice_footer == "Widget Academy GmbH, Berlin"

    # Unticking by keyboard turns a switch off again (an unticked box is not sent at all).
    await tab_to(page, "#collect_tax_id")
    await page.keyboard.press("Space")
    await tab_to(page, "button[type=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    async with sessionmaker() as session:
        assert (await session.get(Organizer, owner.id)).collect_tax_id is False

    # A buyer pays in dev mode and opens the invoice from the order page.
    buyer = await (await browser.new_context(locale="en-US", timezone_id="UTC")).new_page()
    await buyer.goto(f"{url}/w/{webinar.id}")
    await buyer.click("button:has-text('Buy')")
    await buyer.wait_for_url(f"{url}/dev/checkout/**")
    await buyer.fill("#email", "bea@example.com")
    await buyer.click("button:has-text('Pay')")
    await buyer.wait_for_url(f"{url}/checkout/success**")
    await buyer.goto(await buyer.locator("#summary-order-page a").get_attribute("href"))
    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.webinar_id == webinar.id))
    invoice_link = buyer.locator("#order-invoice a")
    assert await invoice_link.inner_text() == order.invoice_number
    for viewport in (PHONE, {"width": 1280, "height": 900}):
        await buyer.set_viewport_size(viewport)
        await check(buyer, screenshot_dir)
    await tab_to(buyer, "#order-invoice a")
    await buyer.keyboard.press("Enter")
    await buyer.wait_for_url(f"{url}/dev/invoices/{order.invoice_id}")
    assert order.invoice_number in await buyer.inner_text("h1")
    assert "Widget Academy GmbH, Berlin" in await buyer.inner_text("body")
    await check(buyer, screenshot_dir, "dev-invoice")

    # The organizer sees the invoice number among the webinar's orders.
    await page.goto(f"{url}/org/webinars/{webinar.id}")
    await page.click("#orders-heading + details summary")
    assert order.invoice_number in await page.inner_text("td.invoice")
    await check(page, screenshot_dir)


async def test_the_settings_speak_german(browser, console, sessionmaker, screenshot_dir):
    url, _ = console
    owner, _ = await factories.organizer(sessionmaker, email="ada@example.com")
    async with sessionmaker.begin() as session:
        (await session.get(Organizer, owner.id)).console_language = "de"
    page = await (await browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")).new_page()
    await sign_in_from_mail(page, url, "ada@example.com")
    await page.goto(f"{url}/org/settings")
    assert await page.inner_text("legend") == "Rechnungen und Steuern"
    assert await page.inner_text("label[for=prices_include_tax]") == "Meine Preise enthalten die Steuer"
    await check(page, screenshot_dir)
