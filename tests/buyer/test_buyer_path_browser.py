"""The buyer's whole path in headless Chromium: buy three seats, open the order page from the
mail, give two seats away, and follow each link to where it leads."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests import factories
from tests.buyer.conftest import html_of, profiled_organizer, sink, text_of
from tests.pages import PHONE, accessibility_problems, screenshots
from ticketing.access.tokens import Tokens
from ticketing.db import utcnow

pytestmark = pytest.mark.browser

JOIN = re.compile(r"http://127\.0\.0\.1:\d+/j/[A-Za-z0-9_-]{43}")
ORDER = re.compile(r"http://127\.0\.0\.1:\d+/o/[A-Za-z0-9_-]{43}")


async def check(page, screenshot_dir, name: str) -> None:
    """What every page must pass: no serious accessibility problem, and screenshots to look at."""
    assert await accessibility_problems(page) == [], name
    for path in await screenshots(page, screenshot_dir, name):
        assert path.stat().st_size > 1000


async def fits_a_phone(browser, html: str, screenshot_dir, name: str) -> bool:
    """The mail's HTML part at phone width: nothing wider than the screen (and a picture of it)."""
    page = await browser.new_page(viewport=PHONE)
    try:
        await page.set_content(html)
        await page.screenshot(path=str(screenshot_dir / f"{name}-phone.png"), full_page=True)
        return await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        await page.close()


async def test_buy_three_seats_assign_two_and_each_link_goes_where_it_should(
        browser, live, jitsi_standin, sessionmaker, make_worker, var_dir, screenshot_dir):
    jitsi_url, visits = jitsi_standin
    owner, _ = await profiled_organizer(sessionmaker)
    starts = (utcnow() + dt.timedelta(minutes=10)).replace(second=0, microsecond=0)
    webinar = await factories.webinar(
        sessionmaker, owner, title="Widgets in Depth", timezone="Europe/Berlin", capacity=10,
        starts_at=starts.isoformat(), ends_at=(starts + dt.timedelta(hours=1)).isoformat(),
        description="## What you learn\n\n- *Fast* widgets\n- **Safe** widgets\n\n[Our site](https://widgets.example)")
    worker = make_worker(live.settings)
    context = await browser.new_context(timezone_id="America/New_York", locale="en-US")
    page = await context.new_page()

    # The webinar page: who hosts it, when (its zone, and the viewer's beside it), what it costs.
    await page.goto(f"{live.url}/w/{webinar.id}")
    assert await page.inner_text("h1") == "Widgets in Depth"
    assert (await page.inner_text(".host")).lower() == "hosted by widget academy"
    when = await page.inner_text("#when")
    assert "(Europe/Berlin)" in when and "Webinar time" in when
    assert "Your time" in when and "(America/New_York)" in when
    assert await page.inner_text("#price") == "€25.00 per seat"
    assert await page.inner_text("#sales-state") == "On sale"
    assert await page.locator(".description h3").inner_text() == "What you learn"
    assert await page.locator(".description a[href='https://widgets.example']").count() == 1
    footer = await page.inner_text("footer")
    assert "Widget Academy" in footer and "help@widgets.example" in footer
    assert await page.locator("footer a[href='https://widgets.example/imprint']").count() == 1
    await check(page, screenshot_dir, "buyer-webinar")

    await page.fill("#quantity", "3")
    await page.click("button:has-text('Buy')")
    await page.wait_for_url(f"{live.url}/dev/checkout/**")
    await page.fill("#email", "bea@example.com")
    await page.fill("#name", "Bea Buyer")
    await page.click("button:has-text('Pay')")
    await page.wait_for_url(f"{live.url}/checkout/success**")

    # The success page: the order's summary, its order page, add-to-calendar.
    assert await page.inner_text("#summary-seats") == "3"
    assert await page.inner_text("#summary-total") == "€75.00"
    assert await page.inner_text("#summary-email") == "bea@example.com"
    success_order_link = await page.locator("#summary-order-page a").get_attribute("href")
    assert ORDER.fullmatch(success_order_link)
    assert await page.locator(f"a[href='/w/{webinar.id}/calendar.ics']").count() == 1
    google = await page.locator("a:has-text('Google Calendar')").get_attribute("href")
    assert google.startswith("https://calendar.google.com/calendar/render?action=TEMPLATE")
    assert starts.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ") in google
    await check(page, screenshot_dir, "buyer-success")
    ics = await page.request.get(f"{live.url}/w/{webinar.id}/calendar.ics")
    assert ics.status == 200 and "BEGIN:VEVENT" in await ics.text()

    # One mail to the buyer, with the order page link; it is in the dev sink.
    await worker.run_until_idle()
    [order_mail] = sink(var_dir)
    assert order_mail["Subject"] == "Your order for Widgets in Depth"
    assert order_mail["Reply-To"].addresses[0].addr_spec == "help@widgets.example"
    assert "3 × €25.00" in text_of(order_mail) and "€75.00 (EUR)" in text_of(order_mail)
    assert await fits_a_phone(browser, html_of(order_mail), screenshot_dir, "mail-order")
    await page.goto(f"{live.url}/dev/mail")
    await page.click("a:has-text('Your order for Widgets in Depth')")
    assert await page.locator("iframe.dev-mail-html").count() == 1
    assert "Your order for Widgets in Depth" in await page.frame_locator("iframe.dev-mail-html").locator("h1").inner_text()
    await check(page, screenshot_dir, "buyer-dev-mail")
    await page.click("a.button:has-text('/o/')")
    assert page.url == success_order_link

    # The order page: three seats, each still with the buyer and showing its link.
    await check(page, screenshot_dir, "buyer-order")
    buyer_links = [await page.locator(f"#seat-{n} .seat-link a").get_attribute("href") for n in (1, 2, 3)]
    assert all(JOIN.fullmatch(link) for link in buyer_links) and len(set(buyer_links)) == 3
    for n, (name, address) in enumerate([("Carl Attendee", "carl@example.com"), ("Dana Attendee", "dana@example.com")],
                                        start=1):
        await page.fill(f"#name-{n}", name)
        await page.fill(f"#email-{n}", address)
        await page.click(f"#seat-{n} button:has-text('Assign')")
        await page.wait_for_url(f"**/o/**?assigned={n}**")
        assert f"Assigned to {name} ({address})" in await page.inner_text(f"#seat-{n}")
        assert await page.locator(f"#seat-{n} .seat-link").count() == 0  # the attendee's link is theirs alone
    assert await page.locator("#seat-3 .seat-link a").get_attribute("href") == buyer_links[2]
    await check(page, screenshot_dir, "buyer-order-assigned")

    # Each attendee gets their own mail with their own link.
    await worker.run_until_idle()
    mails = {m["To"].addresses[0].addr_spec: m for m in sink(var_dir)[1:]}
    assert set(mails) == {"carl@example.com", "dana@example.com"}
    attendee_links = {}
    for address, mail in mails.items():
        assert mail["Subject"] == "Your seat at Widgets in Depth"
        assert "Bea Buyer has given you a seat" in text_of(mail)
        [link] = set(JOIN.findall(text_of(mail)))
        assert link in html_of(mail) and link not in buyer_links
        attendee_links[address] = link
        assert await fits_a_phone(browser, html_of(mail), screenshot_dir, f"mail-assigned-{address.split('@')[0]}")

    # The buyer's old link for a reassigned seat says what happened.
    response = await page.goto(buyer_links[0])
    assert response.status == 410
    reason = await page.inner_text("#reason")
    assert "replaced by a newer one sent on" in reason and "(Europe/Berlin)" in reason
    assert "belongs to someone else" in reason
    await check(page, screenshot_dir, "buyer-link-replaced")

    # The attendee's link joins: into the room with a token naming the attendee.
    await page.goto(attendee_links["carl@example.com"])
    await page.wait_for_url(f"{jitsi_url}/{webinar.room}?jwt=*")
    [visit] = [v for v in visits if v.path == f"/{webinar.room}"]
    claims = Tokens.from_settings(live.settings).verify(visit.query["jwt"])
    assert claims["context"]["user"]["name"] == "Carl Attendee"
    assert claims["context"]["user"]["email"] == "carl@example.com"
    await context.close()
