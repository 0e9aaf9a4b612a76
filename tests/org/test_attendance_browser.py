"""The webinar page with attendance in headless Chromium: axe-core and screenshots at two widths."""

from __future__ import annotations

import aiohttp
import pytest

from tests import factories
from tests.attendance import prosody as p
from tests.org.test_attendance import attended_webinar
from tests.org.test_console_browser import check, tab_to
from ticketing.accounts import signin

pytestmark = pytest.mark.browser


async def test_the_webinar_page_with_attendance(browser, console, sessionmaker, screenshot_dir):
    url, settings = console
    organizer, _ = await factories.organizer(sessionmaker, name="Ada Organizer", email="ada@example.com")
    async with aiohttp.ClientSession(base_url=url) as http:
        async def post(event):
            response = await p.post(http, settings.jitsi_events_secret, event)
            assert response.status == 200, await response.text()

        webinar = await attended_webinar(sessionmaker, post, organizer)
    async with sessionmaker.begin() as session:
        token = await signin.issue_token(session, organizer.id)
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()
    await page.goto(f"{url}/org/login/{token}")
    await tab_to(page, "form[action^='/org/login/'] button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{url}/org")
    await page.goto(f"{url}/org/webinars/{webinar.id}")
    assert await page.locator("#attendance").inner_text() != ""
    ann = page.locator("#attendees tbody tr", has_text="Ann").locator("td[data-label='Present']")
    assert (await ann.inner_text()).splitlines() == ["45 min · 75 %", "Shared link: two devices at once"]
    await check(page, screenshot_dir, "console-attendance")
    await page.goto(f"{url}/org/webinars/new")
    await page.get_by_label("One device per ticket").check()
    await page.fill("#title", "Widgets Again")
    await page.fill("#starts_at", "2030-01-31T18:00")
    await page.fill("#ends_at", "2030-01-31T19:00")
    await page.fill("#price", "25.00")
    await page.fill("#certificate_min_percent", "0")
    await page.click("button:has-text('Create webinar')")
    await page.wait_for_selector("#certificate_min_percent-error")
    await check(page, screenshot_dir, "console-form-attendance-options")
    await context.close()
