"""Promo codes from the console in headless Chromium, by keyboard alone, with axe-core at two
widths: add a partner code (refused first, with every problem shown), edit it, delete it; and
the same pages in German."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import factories
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to
from tests.pages import DESKTOP, PHONE
from ticketing.db.models import Organizer, PromoCode

pytestmark = pytest.mark.browser


async def _codes(sessionmaker) -> list[PromoCode]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(PromoCode)))


async def _submit(page) -> None:
    # The page's own form's button, not the header's sign-out button.
    await tab_to(page, ".actions button[type=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")


async def _both_widths(page, screenshot_dir, name: str | None = None) -> None:
    for viewport in (PHONE, DESKTOP):
        await page.set_viewport_size(viewport)
        await check(page, screenshot_dir, name if viewport is DESKTOP else None)


async def test_an_organizer_adds_edits_and_deletes_a_partner_code_by_keyboard(browser, console, sessionmaker,
                                                                              screenshot_dir):
    url, _ = console
    owner, _ = await factories.organizer(sessionmaker, name="Ada Organizer", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, owner, title="Coded Widgets", price_amount=2500)
    page = await (await browser.new_context(locale="en-US", timezone_id="UTC")).new_page()
    await sign_in_from_mail(page, url, "ada@example.com")

    await tab_to(page, "a[href='/org/promo-codes']")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.inner_text("h1") == "Promo codes"
    await _both_widths(page, screenshot_dir, "console-promo-codes-empty")
    await tab_to(page, "a[href='/org/promo-codes/new']")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await _both_widths(page, screenshot_dir, "console-promo-code-new")

    # Everything wrong at once: each problem stands beside its field, what was typed stays.
    await tab_to(page, "#code")
    await page.keyboard.type("!")
    await tab_to(page, "#discount")
    await page.keyboard.type("150")
    await tab_to(page, "#max_uses")
    await page.keyboard.type("0")
    await _submit(page)
    for field in ("code", "discount", "max_uses"):
        assert await page.locator(f"#{field}-error").count() == 1, field
        assert await page.get_attribute(f"#{field}", "aria-invalid") == "true"
    assert "1 to 100" in await page.inner_text("#discount-error")
    assert await page.input_value("#discount") == "150"
    await _both_widths(page, screenshot_dir, "console-promo-code-refused")
    assert await _codes(sessionmaker) == []

    # Put right: 5.00 off each seat of this webinar, ten uses.
    await page.fill("#code", "")
    await tab_to(page, "#code")
    await page.keyboard.type("PARTNER")
    # One radio group is one tab stop; the arrow keys choose within it.
    await tab_to(page, "#discount_kind-percent_off")
    await page.keyboard.press("ArrowDown")
    assert await page.is_checked("#discount_kind-amount_off")
    await page.fill("#discount", "")
    await tab_to(page, "#discount")
    await page.keyboard.type("5.00")
    await tab_to(page, "#webinar_id")
    await page.select_option("#webinar_id", str(webinar.id))
    await page.fill("#max_uses", "")
    await tab_to(page, "#max_uses")
    await page.keyboard.type("10")
    await _submit(page)
    assert "“PARTNER” added" in await page.inner_text(".flash")
    row = page.locator("#code-partner")
    assert "€5.00 off" in await row.inner_text() and "Coded Widgets" in await row.inner_text()
    assert await row.locator(".uses").inner_text() == "0 / 10"
    [code] = await _codes(sessionmaker)
    assert (code.amount_off, code.webinar_id, code.max_uses) == (500, webinar.id, 10)
    await _both_widths(page, screenshot_dir, "console-promo-codes")

    # Edit: a percentage instead.
    await tab_to(page, f"a[href='/org/promo-codes/{code.id}/edit']")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.input_value("#discount") == "5.00"
    await tab_to(page, "#discount_kind-amount_off")
    await page.keyboard.press("ArrowUp")
    assert await page.is_checked("#discount_kind-percent_off")
    await page.fill("#discount", "")
    await tab_to(page, "#discount")
    await page.keyboard.type("25")
    await _submit(page)
    assert "25 % off" in await page.locator("#code-partner").inner_text()

    # Delete, after a confirmation.
    await tab_to(page, f"a[href='/org/promo-codes/{code.id}/delete']")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await check(page, screenshot_dir)
    await _submit(page)
    assert "deleted" in await page.inner_text(".flash")
    assert await _codes(sessionmaker) == []


async def test_the_promo_code_pages_speak_german(browser, console, sessionmaker, screenshot_dir):
    url, _ = console
    owner, _ = await factories.organizer(sessionmaker, email="ada@example.com")
    async with sessionmaker.begin() as session:
        (await session.get(Organizer, owner.id)).console_language = "de"
    page = await (await browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")).new_page()
    await sign_in_from_mail(page, url, "ada@example.com")
    await page.goto(f"{url}/org/promo-codes/new")
    assert await page.inner_text("h1") == "Neuer Aktionscode"
    assert await page.inner_text("label[for=discount_kind-fixed_price]") == "Festpreis je Platz"
    await _submit(page)  # nothing filled in: refused, in German around the messages
    assert "Bitte" in await page.inner_text("p.error")
    await check(page, screenshot_dir)
