"""The waiting page in headless Chromium: the countdown renders, and when the doors open it goes in.

The browser's clock is Playwright's fake clock, moved forward instead of waited for; the
service's side of "the doors are open" is the webinar's start moved to now.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests import factories
from tests.access.conftest import SECRET, add_ticket, move_webinar
from tests.pages import accessibility_problems, screenshots
from ticketing.access.tokens import Tokens
from ticketing.db import utcnow

pytestmark = pytest.mark.browser


async def test_countdown_renders_then_enters_when_the_doors_open(browser, jitsi_standin, make_settings, start_client,
                                                                 sessionmaker, screenshot_dir):
    jitsi_url, visits = jitsi_standin
    settings = make_settings(jitsi_app_secret=SECRET, jitsi_url=jitsi_url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)  # starts in two days
    _, code = await add_ticket(sessionmaker, webinar)
    link = str(client.make_url(f"/j/{code}"))

    page = await browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.clock.install()
    await page.goto(link)
    assert await page.title() == f"Opens soon: {webinar.title} · Webinars"
    countdown = await page.locator("#countdown").inner_text()
    assert re.fullmatch(r"1 day 23:4\d:\d\d", countdown), countdown
    starts = await page.locator("#starts").inner_text()
    assert str(webinar.starts_at.year) in starts and "(UTC)" in starts  # the webinar's time, its zone named
    remaining_ms = int(await page.locator("#countdown").get_attribute("data-remaining-ms"))
    assert await accessibility_problems(page) == []
    for path in await screenshots(page, screenshot_dir, "waiting"):
        assert path.stat().st_size > 1000

    await page.clock.fast_forward(60_000)
    assert await page.locator("#countdown").inner_text() != countdown  # it counts down
    assert page.url == link

    # The organizer moves the start to now, and the browser's clock reaches the opening.
    now = utcnow()
    await move_webinar(sessionmaker, webinar, now, now + dt.timedelta(hours=1))
    await page.clock.fast_forward(remaining_ms)
    await page.wait_for_url(f"{jitsi_url}/{webinar.room}?jwt=*")
    assert await page.locator("h1").inner_text() == "In the room"
    entered = [v for v in visits if v.path == f"/{webinar.room}"]  # the browser also asks for /favicon.ico
    assert len(entered) == 1
    token = entered[0].query["jwt"]
    assert Tokens.from_settings(settings).verify(token)["room"] == webinar.room
    origins = {re.match(r"https?://[^/]+", url).group(0) for url in requests}
    assert origins <= {str(client.make_url("")).rstrip("/"), jitsi_url}  # nothing else was fetched
    await page.close()
