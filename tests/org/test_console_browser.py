"""The organizer console in headless Chromium, as an organizer uses it: sign in from the
mailed link, create a webinar by keyboard, watch three seats sell, resend, revoke and
refund, export, cancel. Every page passes axe-core and is photographed at two widths."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests import factories
from tests.pages import accessibility_problems, screenshots
from ticketing.db.models import Job, LoginToken, Refund, Ticket, TicketStatus, Webinar, WebinarStatus

pytestmark = pytest.mark.browser


async def check(page, screenshot_dir, name: str | None = None) -> None:
    """No serious accessibility problem on the page as it is; screenshots when named."""
    assert await accessibility_problems(page) == [], page.url
    if name:
        await screenshots(page, screenshot_dir, name)


async def tab_to(page, selector: str, *, limit: int = 60) -> None:
    """Press Tab until `selector` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if await page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


async def until(condition, *, timeout: float = 45.0, step: float = 0.2):
    """Await `condition()` until it is truthy (the worker sends mails and refunds in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(step)


async def sign_in_from_mail(page, url: str, email: str, screenshot_dir=None) -> None:
    """Ask for a link by keyboard, open it from the dev mail sink and confirm, by keyboard."""
    await page.goto(f"{url}/org")
    await page.wait_for_url(f"{url}/org/login**")
    if screenshot_dir:
        await check(page, screenshot_dir, "console-login")
    await tab_to(page, "#email")
    await page.keyboard.type(email)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("main p[role=status]")  # "check your mail", in the console's language
    if screenshot_dir:
        await check(page, screenshot_dir)

    async def mail_listed():
        await page.goto(f"{url}/dev/mail")
        return await page.query_selector("a:has-text('Your sign-in link'), a:has-text('Ihr Anmeldelink')")

    await (await until(mail_listed)).click()
    await page.click("a.button[href*='/org/login/']")
    await page.wait_for_selector("form[action^='/org/login/'] button[type=submit]")
    if screenshot_dir:
        await check(page, screenshot_dir, "console-login-confirm")
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{url}/org")


async def test_an_organizer_runs_a_paid_webinar_from_the_browser(browser, console, sessionmaker, screenshot_dir):
    url, settings = console
    await factories.organizer(sessionmaker, name="Ada Organizer", email="ada@example.com")
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()

    await sign_in_from_mail(page, url, "ada@example.com", screenshot_dir)
    assert "No webinars yet" in await page.inner_text("main")
    await check(page, screenshot_dir)

    # Create by keyboard only: Tab to each field and type, Enter to submit.
    await tab_to(page, "a[href='/org/webinars/new']")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{url}/org/webinars/new")
    await check(page, screenshot_dir, "console-new")
    await tab_to(page, "#title")
    await page.keyboard.type("Widgets in the Console")
    await tab_to(page, "#starts_at")
    await page.keyboard.type("01312030")
    await page.keyboard.press("Tab")
    await page.keyboard.type("0600P")
    await tab_to(page, "#ends_at")
    await page.keyboard.type("01312030")
    await page.keyboard.press("Tab")
    await page.keyboard.type("0500P")  # before the start: the service refuses it
    await tab_to(page, "#price")
    await page.keyboard.type("25.00")
    await tab_to(page, "#capacity")
    await page.keyboard.type("10")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#ends_at-error")
    assert await page.inner_text("#ends_at-error") == "The end must be after the start."
    assert await page.input_value("#title") == "Widgets in the Console"  # what was typed is kept
    assert await page.input_value("#price") == "25.00"
    await check(page, screenshot_dir, "console-new-error")
    await tab_to(page, "#ends_at")
    await page.keyboard.type("01312030")
    await page.keyboard.press("Tab")
    await page.keyboard.type("0700P")
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text('Widgets in the Console')")
    assert "is on sale" in await page.inner_text(".flash")
    webinar_url = page.url
    async with sessionmaker() as session:
        webinar = await session.scalar(select(Webinar).where(Webinar.title == "Widgets in the Console"))
    assert webinar.starts_at == dt.datetime(2030, 1, 31, 18, 0, tzinfo=dt.UTC)
    assert (webinar.price_amount, webinar.currency, webinar.capacity) == (2500, "eur", 10)
    await check(page, screenshot_dir)

    await page.goto(f"{url}/org")
    row = await page.inner_text("table tbody tr")
    assert "Widgets in the Console" in row and "on sale" in row and "0 / 10" in row
    await check(page, screenshot_dir, "console-list")

    # The public link copies with one click.
    await page.goto(webinar_url)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    await page.click("button.copy[data-copy=public-url]")
    assert await page.evaluate("navigator.clipboard.readText()") == f"{url}/w/{webinar.id}"
    assert await page.inner_text("[data-live=tickets_sold]") == "0"

    # A buyer in a browser of their own buys three seats through the dev checkout.
    buyer = await browser.new_context(locale="en-US")
    shop = await buyer.new_page()
    await shop.goto(f"{url}/w/{webinar.id}")
    await shop.fill("#quantity", "3")
    await shop.click("button:has-text('Buy')")
    await shop.wait_for_url(f"{url}/dev/checkout/**")
    await shop.fill("#email", "bea@example.com")
    await shop.fill("#name", "Bea Buyer")
    await shop.click("button:has-text('Pay')")
    await shop.wait_for_url(f"{url}/checkout/success**")
    await buyer.close()

    # The sales figure refreshes itself, without a reload (here: when the tab comes back).
    async def live_figure():
        await page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        return await page.inner_text("[data-live=tickets_sold]") == "3"

    await until(live_figure)
    assert await page.inner_text("[data-live=revenue]") == "€75.00"

    async def three_sent():
        await page.goto(webinar_url)
        states = await page.locator("#attendees tbody td[data-label='Mail']").all_inner_texts()
        return len(states) == 3 and all(s.strip() == "sent" for s in states)

    await until(three_sent)
    rows = await page.locator("#attendees tbody tr").all_inner_texts()
    assert all("bea@example.com" in r and "Bea Buyer" in r and "valid" in r for r in rows)
    assert "3" in await page.inner_text("[data-live=tickets_sold]")
    assert "€75.00" in await page.inner_text("[data-live=revenue]")
    await check(page, screenshot_dir)

    # Resend the first ticket's link (confirmed on its own page).
    first = page.locator("#attendees tbody tr").nth(0)
    await first.locator("summary").click()
    await first.locator("a:has-text('Resend')").click()
    await check(page, screenshot_dir, "console-confirm-resend")
    await page.click("button:has-text('Send a new link')")
    await page.wait_for_selector(".flash:has-text('A new link is on its way')")

    # Revoke and refund the second one.
    second = page.locator("#attendees tbody tr").nth(1)
    await second.locator("summary").click()
    await second.locator("a:has-text('Revoke and refund')").click()
    assert "€25.00" in await page.inner_text("main")
    await page.click("button:has-text('Revoke and refund')")
    await page.wait_for_selector(".flash:has-text('the refund is on its way')")
    assert "revoked" in await page.locator("#attendees tbody tr").nth(1).inner_text()

    async def refunded():
        async with sessionmaker() as session:
            return list(await session.scalars(select(Refund)))

    refunds = await until(refunded)
    assert [(r.amount, r.reason) for r in refunds] == [(2500, "organizer")]

    async def resent_and_revocation_mailed():
        await page.goto(webinar_url)
        states = await page.locator("#attendees tbody td[data-label='Mail']").all_inner_texts()
        async with sessionmaker() as session:
            mails = {(j.kind, j.status.value) for j in await session.scalars(
                select(Job).where(Job.kind.in_(["mail.resend", "mail.revoked"])))}
        return [s.strip() for s in states] == ["sent", "sent", "sent"] and mails == {("mail.resend", "done"),
                                                                                     ("mail.revoked", "done")}

    await until(resent_and_revocation_mailed)
    await check(page, screenshot_dir, "console-webinar")
    await page.emulate_media(color_scheme="dark")
    await check(page, screenshot_dir, "console-webinar-dark")
    await page.emulate_media(color_scheme="light")
    await page.goto(f"{url}/org")
    assert "€50.00" in await page.inner_text("table tbody tr")
    await check(page, screenshot_dir, "console-list-sold")
    await page.goto(webinar_url)

    # CSV export: the same columns as the API's.
    async with page.expect_download() as download_info:
        await page.click("a:has-text('Export attendees')")
    download = await download_info.value
    exported = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text(encoding="utf-8"))))
    assert [r["status"] for r in exported] == ["valid", "revoked", "valid"]
    assert {r["email"] for r in exported} == {"bea@example.com"}

    # Cancel: the confirmation says what will go out.
    await page.click("a:has-text('Cancel webinar')")
    text = await page.inner_text("main")
    assert "1 paid order will be refunded, and 2 attendees will get a mail saying so." in text
    await check(page, screenshot_dir, "console-cancel")
    await page.click("button:has-text('Cancel the webinar')")
    await page.wait_for_selector(".flash:has-text('cancelled')")
    assert await page.inner_text("h1 + .status") == "cancelled"
    async with sessionmaker() as session:
        webinar = await session.get(Webinar, webinar.id)
        statuses = list(await session.scalars(select(Ticket.status).where(Ticket.webinar_id == webinar.id)))
    assert webinar.status == WebinarStatus.CANCELLED
    assert statuses == [TicketStatus.REVOKED] * 3
    await check(page, screenshot_dir)

    # Settings and API keys look right too.
    await page.goto(f"{url}/org/settings")
    await check(page, screenshot_dir, "console-settings")
    await page.goto(f"{url}/org/keys")
    await page.fill("#name", "ticket export")
    await page.click("button:has-text('Create key')")
    key = await page.input_value("#new-key")
    assert key.startswith("tk_")
    await check(page, screenshot_dir, "console-keys")
    await context.close()


async def test_a_used_or_expired_link_says_so_and_offers_a_new_one(browser, console, sessionmaker, screenshot_dir):
    url, _ = console
    await factories.organizer(sessionmaker, email="ada@example.com")
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await sign_in_from_mail(page, url, "ada@example.com")

    # The same link again, in another browser: used.
    other = await browser.new_context(locale="en-US")
    again = await other.new_page()
    await again.goto(f"{url}/dev/mail")
    await again.click("a:has-text('Your sign-in link')")
    await again.click("a.button[href*='/org/login/']")
    assert "has been used already" in await again.inner_text("main")
    await check(again, screenshot_dir, "console-link-used")
    await again.click("a:has-text('Ask for a new link')")
    await again.wait_for_url(f"{url}/org/login")

    # A fresh link that then expires.
    await again.fill("#email", "ada@example.com")
    await again.click("button:has-text('Mail me a sign-in link')")
    await again.wait_for_selector("h1:has-text('Check your mail')")

    async def two_tokens():
        async with sessionmaker() as session:
            return len(list(await session.scalars(select(LoginToken)))) == 2

    await until(two_tokens)
    async with sessionmaker.begin() as session:
        await session.execute(update(LoginToken).where(LoginToken.used_at.is_(None))
                              .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))

    async def newest_mail():
        await again.goto(f"{url}/dev/mail")
        links = again.locator("a:has-text('Your sign-in link')")
        return await links.count() == 2

    await until(newest_mail, timeout=5)
    await again.locator("a:has-text('Your sign-in link')").first.click()
    await again.click("a.button[href*='/org/login/']")
    assert "It has expired" in await again.inner_text("main")
    await check(again, screenshot_dir, "console-link-expired")
    await other.close()
    await context.close()
