"""Buyer pages in Chromium beyond the main path: German pages (the browser says English),
a cancelled webinar, the waiting page. Each is checked with axe-core and photographed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from tests import factories
from tests.access.conftest import add_ticket
from tests.buyer.conftest import profiled_organizer
from tests.buyer.test_buyer_path_browser import check
from ticketing.db import utcnow
from ticketing.db.models import Webinar, WebinarStatus

pytestmark = pytest.mark.browser

STARTS = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)


async def test_a_german_webinar_page_and_waiting_page_speak_german(browser, live, sessionmaker, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker, name="Widget-Akademie")
    webinar = await factories.webinar(
        sessionmaker, owner, title="Widgets für Fortgeschrittene", language="de", timezone="Europe/Berlin",
        starts_at=STARTS.isoformat(), ends_at=(STARTS + dt.timedelta(hours=1)).isoformat(),
        description="## Inhalt\n\n- *Schnelle* Widgets\n- **Sichere** Widgets")
    context = await browser.new_context(timezone_id="America/New_York", locale="en-US")
    page = await context.new_page()
    await page.goto(f"{live.url}/w/{webinar.id}")
    assert await page.get_attribute("html", "lang") == "de"
    when = await page.inner_text("#when")
    assert "Zeit des Webinars: Donnerstag, 31. Januar 2030, 18:00–19:00 (Europe/Berlin)" in when
    # The viewer's own time, in the page's language (German), not the browser's (English).
    assert "Ihre Zeit:" in when and "Donnerstag" in when.split("Ihre Zeit:")[1] and "12:00–13:00" in when
    assert await page.inner_text("#price") == "25,00\xa0€ pro Platz"
    assert await page.inner_text("#sales-state") == "Im Verkauf"
    assert await page.locator("button:has-text('Kaufen')").count() == 1
    assert "Veranstaltet von Widget-Akademie" in await page.inner_text("footer")
    await check(page, screenshot_dir, "buyer-webinar-de")

    _, code = await add_ticket(sessionmaker, webinar)
    await page.goto(f"{live.url}/j/{code}")
    assert "Sie sind früh dran" in await page.inner_text("main")
    assert "(Europe/Berlin)" in await page.inner_text("#starts")
    assert "Tage" in await page.inner_text("#countdown")
    await check(page, screenshot_dir, "buyer-waiting-de")
    await context.close()


async def test_a_viewer_in_the_webinars_zone_sees_one_time(browser, live, sessionmaker):
    webinar = await factories.webinar(sessionmaker, timezone="Europe/Berlin", starts_at=STARTS.isoformat(),
                                      ends_at=(STARTS + dt.timedelta(hours=1)).isoformat())
    context = await browser.new_context(timezone_id="Europe/Paris")  # another name, the same clock
    page = await context.new_page()
    await page.goto(f"{live.url}/w/{webinar.id}")
    assert await page.locator(".viewer-time").is_hidden()
    assert "Your time" not in await page.inner_text("#when")
    await context.close()


async def test_a_cancelled_webinar_says_so_first_without_price_or_buy(browser, live, sessionmaker, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets Cancelled")
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id)
                              .values(status=WebinarStatus.CANCELLED, cancelled_at=utcnow()))
    page = await browser.new_page()
    await page.goto(f"{live.url}/w/{webinar.id}")
    first = page.locator("article > *").first
    assert await first.get_attribute("id") == "cancelled"
    assert "has been cancelled" in await first.inner_text()
    assert await page.locator("#price").count() == 0 and await page.locator("button").count() == 0
    assert "€" not in await page.inner_text("main")
    await check(page, screenshot_dir, "buyer-webinar-cancelled")
    await page.close()
