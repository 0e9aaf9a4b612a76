"""The waitlist's pages in Chromium without JavaScript, by keyboard: joining a sold-out webinar,
the confirmed place, and the offer leading to the test payment. Each checked with axe-core."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from tests import factories
from tests.buyer.conftest import live, profiled_organizer, sink, text_of  # noqa: F401
from tests.buyer.test_buyer_path_browser import check
from ticketing.db.models import TicketType, WaitlistEntry, WaitlistOutcome, Webinar
from ticketing.orders import ticket_types
from ticketing.tickets.capacity import free_seats

pytestmark = pytest.mark.browser

LINK = re.compile(r"/wl/([A-Za-z0-9_-]{40,})")


async def test_join_confirm_and_buy_an_offer_by_keyboard_without_script(browser, live, sessionmaker,  # noqa: F811
                                                                         make_worker, var_dir, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets Full", capacity=2)
    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(seats_taken=2))
    worker = make_worker(live.settings)
    # axe-core runs as a script: the pages are checked in one context, used in one without script.
    looking = await (await browser.new_context()).new_page()
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()

    await looking.goto(f"{live.url}/w/{webinar.id}")
    await check(looking, screenshot_dir, "waitlist-join")
    await page.goto(f"{live.url}/w/{webinar.id}")
    assert "join the waitlist" in await page.inner_text("#sold-out-waitlist")
    assert await page.locator("button:has-text('Buy')").count() == 0
    await page.focus("#wl-email")
    await page.keyboard.type("ann@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Ann")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("2")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#waitlist-state[data-state='sent']")
    await looking.set_content(await page.content())
    await check(looking, screenshot_dir, "waitlist-sent")

    await worker.run_until_idle()
    [confirm] = [m for m in sink(var_dir) if m["Subject"].startswith("Confirm your place")]
    code = LINK.search(text_of(confirm)).group(1)
    await page.goto(f"{live.url}/wl/{code}/confirm")
    assert await page.get_attribute("#position", "data-position") == "1"
    assert "2 seats come free" in await page.inner_text("main")
    await looking.goto(f"{live.url}/wl/{code}")
    await check(looking, screenshot_dir, "waitlist-place")

    async with sessionmaker.begin() as db:  # a buyer's two seats are refunded
        await free_seats(db, webinar.id, {(await ticket_types.default_type(db, webinar.id)).id: 2})
    await worker.run_until_idle()
    [offer] = [m for m in sink(var_dir) if m["Subject"].startswith("A seat is free for you")]
    code = LINK.search(text_of(offer)).group(1)
    await page.goto(f"{live.url}/wl/{code}")
    assert await page.get_attribute("#waitlist-state", "data-state") == "offer"
    assert "2 seats are held for you" in await page.inner_text("main")
    await looking.goto(f"{live.url}/wl/{code}")
    await check(looking, screenshot_dir, "waitlist-offer")
    await page.focus("button:has-text('Buy the held seats')")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/dev/checkout/"))
    assert "2" in await page.inner_text("main")
    await context.close()
    await looking.context.close()


async def test_a_sold_out_types_waitlist_beside_the_types_on_sale_by_keyboard(browser, live, sessionmaker,  # noqa: F811
                                                                             var_dir, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets Typed", capacity=10)
    async with sessionmaker.begin() as db:
        kind, _ = await ticket_types.create_type(db, owner, webinar.id, {"name": "VIP", "price_amount": 9900,
                                                                         "capacity": 1})
        await db.execute(update(TicketType).where(TicketType.id == kind.id).values(seats_taken=1))
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(seats_taken=1))
    looking = await (await browser.new_context()).new_page()
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()

    await looking.goto(f"{live.url}/w/{webinar.id}")
    await check(looking, screenshot_dir, "waitlist-type-join")
    await page.goto(f"{live.url}/w/{webinar.id}")
    assert await page.locator("button:has-text('Buy')").count() == 1  # the other type is on sale
    assert "VIP is sold out" in await page.inner_text(f"#wl-title-{kind.id}")
    await page.focus(f"#wl-email-{kind.id}")
    await page.keyboard.type("ann@example.com")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#waitlist-state[data-state='sent']")
    async with sessionmaker() as db:
        entry = await db.scalar(select(WaitlistEntry))
    assert entry.ticket_type_id == kind.id and entry.email == "ann@example.com"
    await context.close()
    await looking.context.close()


async def test_a_free_webinars_offer_registers_the_held_seat_by_keyboard(browser, live, sessionmaker,  # noqa: F811
                                                                        make_worker, var_dir, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets Free", capacity=1, price_amount=0)
    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(seats_taken=1))
    worker = make_worker(live.settings)
    looking = await (await browser.new_context()).new_page()
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{live.url}/w/{webinar.id}")
    await page.focus("#wl-email")
    await page.keyboard.type("ann@example.com")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#waitlist-state[data-state='sent']")
    await worker.run_until_idle()
    [confirm] = [m for m in sink(var_dir) if m["Subject"].startswith("Confirm your place")]
    await page.goto(f"{live.url}/wl/{LINK.search(text_of(confirm)).group(1)}/confirm")

    async with sessionmaker.begin() as db:  # the registered person's seat comes free
        await free_seats(db, webinar.id, {(await ticket_types.default_type(db, webinar.id)).id: 1})
    await worker.run_until_idle()
    [offer] = [m for m in sink(var_dir) if m["Subject"].startswith("A seat is free for you")]
    code = LINK.search(text_of(offer)).group(1)
    await looking.goto(f"{live.url}/wl/{code}")
    await check(looking, screenshot_dir, "waitlist-free-offer")
    await page.goto(f"{live.url}/wl/{code}")
    assert await page.locator("#code").count() == 0  # nothing to pay, no promo code
    await page.focus("button:has-text('Register for the held seat')")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/checkout/success"))
    async with sessionmaker() as db:
        entry = await db.scalar(select(WaitlistEntry))
    assert entry.outcome == WaitlistOutcome.BOUGHT
    await context.close()
    await looking.context.close()
