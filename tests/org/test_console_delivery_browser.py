"""A refused address in the console, in headless Chromium: a buyer's typo makes the real SMTP
server on loopback refuse the join mail, the attendee list shows the failure with the
server's answer, and the organizer corrects the address and resends, by keyboard."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import factories
from tests.mail.test_delivery import links
from tests.org.test_console_browser import check, tab_to, until
from ticketing.accounts import signin
from ticketing.db.models import Ticket, TicketDelivery

pytestmark = pytest.mark.browser


@pytest.fixture
async def smtp_console(make_settings, smtp):
    """The app with its worker on a loopback port, mailing through the `smtp` sink."""
    from aiohttp.test_utils import TestServer

    from ticketing.app import create_app

    probe = TestServer(create_app(make_settings()), host="127.0.0.1")
    await probe.start_server()
    port = probe.port
    await probe.close()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}", smtp_url=smtp.url)
    server = TestServer(create_app(settings, worker=True), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()


async def test_a_refused_address_is_corrected_and_the_link_resent(browser, smtp_console, smtp, sessionmaker,
                                                                  screenshot_dir):
    url = smtp_console
    organizer, _ = await factories.organizer(sessionmaker, name="Ada Organizer", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, organizer, title="Widgets by Mail")
    smtp.refuse.add("bea@exmaple.com")

    # A buyer with a typo in her address pays through the dev checkout.
    buyer = await browser.new_context(locale="en-US")
    shop = await buyer.new_page()
    await shop.goto(f"{url}/w/{webinar.id}")
    await shop.click("button:has-text('Buy')")
    await shop.wait_for_url(f"{url}/dev/checkout/**")
    await shop.fill("#email", "bea@exmaple.com")
    await shop.fill("#name", "Bea Buyer")
    await shop.click("button:has-text('Pay')")
    await shop.wait_for_url(f"{url}/checkout/success**")
    await buyer.close()

    # Ada signs in with a link (as `ticketing organizer login-link` prints it: no dev mail sink here).
    async with sessionmaker.begin() as session:
        token = await signin.issue_token(session, organizer.id)
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()
    await page.goto(f"{url}/org/login/{token}")
    await tab_to(page, "form[action^='/org/login/'] button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{url}/org")
    webinar_url = f"{url}/org/webinars/{webinar.id}"

    mail_cell = page.locator("#attendees tbody tr").nth(0).locator("td[data-label='Mail']")

    async def refused():
        await page.goto(webinar_url)
        return (await mail_cell.inner_text()).startswith("failed")

    await until(refused)
    assert (await mail_cell.inner_text()).splitlines() == ["failed", "recipient refused: 550 5.1.1 mailbox unavailable"]
    await check(page, screenshot_dir, "console-delivery-failed")

    # Correct the address, by keyboard: first a typo of Ada's own, refused next to the field.
    await tab_to(page, "#attendees a[href$='/address']")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text('Correct the address')")
    assert "The last one failed: recipient refused: 550" in await page.inner_text("main")
    await check(page, screenshot_dir, "console-address")
    await tab_to(page, "#email")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("bea at example.com")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#email-error")
    assert await page.inner_text("#email-error") == ("Not an email address: 'bea at example.com' "
                                                   "(an email address must have an @-sign).")
    assert await page.get_attribute("#email", "aria-invalid") == "true"
    await check(page, screenshot_dir, "console-address-error")
    await tab_to(page, "#email")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("bea@example.com")
    await tab_to(page, "form[action$='/address'] button[type=submit]")
    await page.keyboard.press("Enter")

    # Saved; the resend is offered next, and confirmed.
    await page.wait_for_selector("h1:has-text('Send the join link again?')")
    assert "The ticket's address is now bea@example.com." in await page.inner_text(".flash")
    assert "bea@example.com gets a mail with a new link" in await page.inner_text("main")
    await check(page, screenshot_dir, "console-address-resend")
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket))
    assert (ticket.email, ticket.delivery_status) == ("bea@example.com", TicketDelivery.FAILED)
    await tab_to(page, "form[action$='/resend'] button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(".flash:has-text('A new link is on its way to bea@example.com')")

    async def delivered():
        await page.goto(webinar_url)
        return (await mail_cell.inner_text()).strip() == "sent"

    await until(delivered)
    row = await page.locator("#attendees tbody tr").nth(0).inner_text()
    assert "bea@example.com" in row and "exmaple" not in row
    await check(page, screenshot_dir, "console-delivery-sent")
    [mail] = smtp.to("bea@example.com")
    assert len(links(mail)) == 1
    assert smtp.to("bea@exmaple.com") == []
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket))
    assert (ticket.delivery_status, ticket.delivery_error) == (TicketDelivery.SENT, None)
    await context.close()
