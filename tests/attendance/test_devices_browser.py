"""One device per ticket in headless Chromium: two browsers (contexts) and one ticket.

The first browser is admitted and bound by its cookie and re-enters freely; while the ticket
is in the room (per Prosody's events) the second sees "in use on another device", asks for a
move link by keyboard, opens the mailed link and is let in; the move is recorded. Opened in
any other browser, the link shows a page with a button instead (tested over HTTP too)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from tests.access.conftest import SECRET, add_ticket
from tests.attendance import prosody as p
from tests.attendance.conftest import live_webinar, move_link_in, sunk_mails
from tests.pages import accessibility_problems, screenshots
from ticketing.access.tokens import Tokens
from ticketing.db import utcnow
from ticketing.db.models import DeviceMove, TicketDevice

pytestmark = pytest.mark.browser


async def test_a_second_browser_is_refused_then_moves_the_ticket_by_mail(
        browser, jitsi_standin, make_settings, start_client, sessionmaker, make_worker, var_dir, screenshot_dir):
    jitsi_url, visits = jitsi_standin
    settings = make_settings(jitsi_app_secret=SECRET, jitsi_url=jitsi_url)
    client = await start_client(settings)
    webinar, key = await live_webinar(sessionmaker, one_device=True, title="Widgets & Co")
    ticket, code = await add_ticket(sessionmaker, webinar, name="Bea Buyer", email="bea@example.com")
    link = str(client.make_url(f"/j/{code}"))
    tokens = Tokens.from_settings(settings)

    first = await browser.new_context()
    page_a = await first.new_page()
    await page_a.goto(link)
    await page_a.wait_for_url(f"{jitsi_url}/{webinar.room}?jwt=*")
    [cookie] = [c for c in await first.cookies() if c["name"] == "ticketing_device"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # Prosody tells us the ticket is in the room from that browser.
    now = utcnow()
    occupant_a = p.occupant("5e1f7a0c-device-a@meet.example.com/aaaa", now, **p.user(str(ticket.id)))
    response = await p.post(client, settings.jitsi_events_secret, p.joined(webinar.room, occupant_a, 1))
    assert (await response.json())["outcome"] == "recorded"

    # The same browser reloads its link: in again.
    await page_a.goto(link)
    await page_a.wait_for_url(f"{jitsi_url}/{webinar.room}?jwt=*")
    assert len([v for v in visits if v.path == f"/{webinar.room}"]) == 2

    # Another browser: no token, the in-use page.
    second = await browser.new_context()
    page_b = await second.new_page()
    answer = await page_b.goto(link)
    assert answer.status == 409
    assert await page_b.locator("h1").inner_text() == "This ticket is in use on another device"
    assert "jwt=" not in await page_b.content()
    assert await accessibility_problems(page_b) == []
    await screenshots(page_b, screenshot_dir, "device-in-use")
    # By keyboard: the button is the first thing to tab to.
    await page_b.keyboard.press("Tab")
    focused = await page_b.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Email me a link to move my ticket here"
    async with page_b.expect_navigation():
        await page_b.keyboard.press("Enter")
    assert await page_b.locator("h1").inner_text() == "Check your email"
    assert "b…@example.com" in await page_b.locator("#move-sent").inner_text()
    assert await accessibility_problems(page_b) == []
    await screenshots(page_b, screenshot_dir, "device-move-sent")

    await make_worker(settings).run_until_idle()
    [mail] = sunk_mails(var_dir)
    assert mail["To"] == "Bea Buyer <bea@example.com>" and "Widgets & Co" in mail["Subject"]
    mailed = urlsplit(move_link_in(mail))
    move_url = str(client.make_url(mailed.path))

    # Opened elsewhere first (a mail app's own browser, a link scanner): a page, the link not used up.
    elsewhere = await browser.new_context()
    page_m = await elsewhere.new_page()
    answer = await page_m.goto(move_url)
    assert answer.status == 200
    assert await page_m.get_by_role("button", name="Move my ticket here and join").is_visible()
    assert await accessibility_problems(page_m) == []
    await screenshots(page_m, screenshot_dir, "device-move")
    await elsewhere.close()
    # Opened in the browser that asked for it: straight into the room.
    await page_b.goto(move_url)
    await page_b.wait_for_url(f"{jitsi_url}/{webinar.room}?jwt=*")
    entered = [v for v in visits if v.path == f"/{webinar.room}"]
    assert len(entered) == 3
    claims = tokens.verify(entered[-1].query["jwt"])
    assert claims["context"]["user"]["id"] == str(ticket.id) and claims["room"] == webinar.room

    async with sessionmaker() as session:
        [move] = list(await session.scalars(select(DeviceMove)))
        devices = list(await session.scalars(select(TicketDevice).order_by(TicketDevice.first_seen_at)))
    # Jitsi is not set up to remove the first browser (and its nick is unknown): the move is recorded.
    assert move.outcome == "recorded" and move.used_at is not None
    assert len(devices) == 2 and devices[1].bound_at > devices[0].bound_at

    # The link worked once.
    answer = await page_b.goto(move_url)
    assert answer.status == 410
    assert "used already" in await page_b.locator("#move-problem").inner_text()
    # The first browser, still in the room, is now the other device.
    answer = await page_a.goto(link)
    assert answer.status == 409

    # A third browser while the ticket is present: more devices than one device per ticket allows.
    third = await browser.new_context()
    page_c = await third.new_page()
    assert (await page_c.goto(link)).status == 409
    response = await client.get(f"/api/webinars/{webinar.id}/tickets", headers={"Authorization": f"Bearer {key}"})
    [row] = (await response.json())["tickets"]
    assert row["devices"] == 3 and row["shared_link"] == ["more_devices_than_allowed"]

    # Once the ticket has left the room, the next browser is admitted and holds it.
    left = dict(occupant_a, left_at=int((now + dt.timedelta(minutes=5)).timestamp()))
    await p.post(client, settings.jitsi_events_secret, p.left(webinar.room, left, 0))
    await page_c.goto(link)
    await page_c.wait_for_url(f"{jitsi_url}/{webinar.room}?jwt=*")
    for context in (first, second, third):
        await context.close()
