"""Ticket types from the console and on the public page, in headless Chromium, by keyboard,
with axe-core on every page: add an early-bird type, see a refused capacity, rename the
default type, then buy one seat of each as a buyer."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests import factories
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to
from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, Ticket, TicketType

pytestmark = pytest.mark.browser


async def test_an_organizer_adds_an_early_bird_and_a_buyer_takes_one_of_each(browser, console, sessionmaker,
                                                                              screenshot_dir):
    url, _ = console
    owner, _ = await factories.organizer(sessionmaker, name="Ada Organizer", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, owner, title="Typed Widgets", capacity=10, price_amount=2500)
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()
    await sign_in_from_mail(page, url, "ada@example.com")

    await page.goto(f"{url}/org/webinars/{webinar.id}")
    assert "Ticket" in await page.inner_text("#ticket-types")
    await check(page, screenshot_dir)
    await tab_to(page, f"a[href='/org/webinars/{webinar.id}/ticket-types/new']")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text('New ticket type')")
    await check(page, screenshot_dir, "console-ticket-type-new")
    await tab_to(page, "#name")
    await page.keyboard.type("Early bird")
    await tab_to(page, "#price")
    await page.keyboard.type("15.00")
    await tab_to(page, "#capacity")
    await page.keyboard.type("20")  # more than the webinar's 10: refused
    closes = (utcnow() + dt.timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    await tab_to(page, "#sales_end")
    await page.keyboard.type(closes.strftime("%m%d%Y"))
    await page.keyboard.press("Tab")
    await page.keyboard.type("1200P")
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#capacity-error")
    assert "10" in await page.inner_text("#capacity-error")
    assert await page.input_value("#name") == "Early bird"
    await check(page, screenshot_dir)
    await page.fill("#capacity", "3")
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text('Typed Widgets')")
    assert "Early bird" in await page.inner_text(".flash")
    table = await page.inner_text("#ticket-types")
    assert "Early bird" in table and "€15.00" in table and "0 / 3" in table
    await check(page, screenshot_dir, "console-ticket-types")

    async with sessionmaker() as session:
        early = await session.scalar(select(TicketType).where(TicketType.name == "Early bird"))
        default = await session.scalar(select(TicketType).where(TicketType.webinar_id == webinar.id,
                                                                TicketType.is_default))
    assert early.sales_end == closes and early.capacity == 3 and early.price_amount == 1500

    await page.goto(f"{url}/org/ticket-types/{default.id}/edit")
    await check(page, screenshot_dir)
    await page.fill("#name", "Standard")
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text('Typed Widgets')")
    assert "Standard" in await page.inner_text("#ticket-types")

    # The buyer's side: both types with their prices; one seat of each, by keyboard.
    buyer = await (await browser.new_context(locale="en-US", timezone_id="UTC")).new_page()
    await buyer.goto(f"{url}/w/{webinar.id}")
    types = await buyer.inner_text("#ticket-types")
    assert "Early bird" in types and "€15.00" in types and "Standard" in types and "€25.00" in types
    await check(buyer, screenshot_dir, "buyer-ticket-types")
    for kind in (early, default):
        await tab_to(buyer, f"#quantity-{kind.id}")
        await buyer.keyboard.type("1")  # the field holds 0; "01" reads as 1
    await tab_to(buyer, "#email")
    await buyer.keyboard.type("bea@example.com")
    await buyer.keyboard.press("Enter")
    await buyer.wait_for_url(f"{url}/dev/checkout/**")
    assert "€40.00" in await buyer.inner_text("main")
    await tab_to(buyer, "button[type=submit]")
    await buyer.keyboard.press("Enter")
    await buyer.wait_for_url(f"{url}/checkout/success**")
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
        kinds = sorted((await session.scalars(select(Ticket.ticket_type_id))).all())
    assert order.status == OrderStatus.PAID and order.amount_total == 4000
    assert kinds == sorted([early.id, default.id])
