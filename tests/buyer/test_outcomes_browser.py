"""What a buyer's browser shows when a purchase does not simply succeed: a payment that lost
the last seat, a success page waiting for Stripe, a request for more seats than are left;
and the order page's Join button. English and German, desktop and phone, axe-core."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import update
from yarl import URL

from tests import factories
from tests.buyer.conftest import profiled_organizer
from tests.buyer.test_buyer_path_browser import check
from ticketing.db.models import Webinar

pytestmark = pytest.mark.browser

STARTS = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)


async def _post_paid_event(live, webinar, session_id: str, email: str, quantity: int = 1) -> None:
    """Stripe's `checkout.session.completed` for a checkout, signed and posted to the live service."""
    import aiohttp

    session = factories.checkout_session(webinar, session_id=session_id, email=email, quantity=quantity)
    body, headers = factories.signed(factories.event("checkout.session.completed", session),
                                     live.settings.stripe_webhook_secrets[0])
    async with aiohttp.ClientSession() as http, http.post(f"{live.url}/webhooks/stripe", data=body,
                                                          headers=headers) as response:
        assert response.status == 200


async def _start_checkout(page, live, webinar, quantity: int = 1) -> str:
    """Open the webinar page and buy by keyboard; returns the dev checkout's session id."""
    await page.goto(f"{live.url}/w/{webinar.id}")
    await page.fill("#quantity", str(quantity))
    await page.focus("#quantity")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live.url}/dev/checkout/**")
    return URL(page.url).path.rsplit("/", 1)[1]


async def test_a_german_buyer_who_lost_the_last_seat_reads_refunded_not_received(
        browser, live, sessionmaker, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker, name="Widget-Akademie")
    webinar = await factories.webinar(
        sessionmaker, owner, title="Widgets für Fortgeschrittene", language="de", timezone="Europe/Berlin",
        capacity=1, starts_at=STARTS.isoformat(), ends_at=(STARTS + dt.timedelta(hours=1)).isoformat())
    page = await (await browser.new_context(locale="en-US")).new_page()
    session_id = await _start_checkout(page, live, webinar)
    # Somebody else pays for the last seat while this buyer is still on the payment page.
    await _post_paid_event(live, webinar, "cs_test_other_" + session_id[-12:], "erste@example.com")
    await page.fill("#email", "zweite@example.com")
    await page.click("button:has-text('Pay')")
    await page.wait_for_url(f"{live.url}/checkout/success**")

    assert await page.get_attribute("#outcome", "data-outcome") == "refunded"
    assert await page.inner_text("h1") == "Ihre Zahlung wird erstattet"
    outcome = await page.inner_text("#outcome")
    assert "ausverkauft" in outcome and "Erstattung: 25,00\xa0€" in outcome and "5–10 Werktagen" in outcome
    assert re.fullmatch(r"[0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3}", await page.inner_text("#summary-reference"))
    assert await page.locator("meta[http-equiv='refresh']").count() == 0
    assert await page.locator("a[href$='calendar.ics'], a:has-text('Google')").count() == 0
    assert await page.locator("#summary-order-page").count() == 0
    assert "Veranstaltet von Widget-Akademie" in await page.inner_text("footer")
    await check(page, screenshot_dir, "buyer-success-refunded-de")
    await page.context.close()


async def test_the_success_page_waits_for_stripe_then_stops_and_leads_to_join_buttons(
        browser, live, sessionmaker, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets 101", timezone="Europe/Berlin",
                                      starts_at=STARTS.isoformat(), ends_at=(STARTS + dt.timedelta(hours=1)).isoformat())
    page = await (await browser.new_context()).new_page()
    session_id = await _start_checkout(page, live, webinar, quantity=2)
    # Back from Stripe before its webhook: the page says it is confirming and reloads itself.
    await page.goto(f"{live.url}/checkout/success?session_id={session_id}")
    assert await page.get_attribute("#outcome", "data-outcome") == "unknown"
    assert await page.inner_text("h1") == "Confirming your payment"
    assert await page.locator("script[src='/static/outcome.js']").count() == 1
    assert await page.locator("a[href$='calendar.ics']").count() == 0
    await check(page, screenshot_dir, "buyer-success-confirming")

    await _post_paid_event(live, webinar, session_id, "bea@example.com", quantity=2)
    await page.wait_for_selector("#outcome[data-outcome='paid']", timeout=20_000)  # the page's own reload
    assert await page.inner_text("h1") == "Payment received"
    assert await page.locator("script[src='/static/outcome.js']").count() == 0
    assert 'http-equiv="refresh"' not in await page.content()
    assert await page.locator(f"a[href='/w/{webinar.id}/calendar.ics']").count() == 1

    await page.click("#summary-order-page a")
    await page.wait_for_url("**/o/**")
    for n in (1, 2):
        join = page.locator(f"#seat-{n} a.button:has-text('Join the webinar')")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/j/[A-Za-z0-9_-]{43}", await join.get_attribute("href"))
    assert "/j/" not in await page.inner_text("main")  # the link is a button, its text behind "Copy"
    await page.click("#seat-1 summary")
    assert "/j/" in await page.input_value("#link-1")
    await check(page, screenshot_dir, "buyer-order-join")
    await page.context.close()


async def test_asking_more_seats_than_are_left_answers_in_german_and_leads_back(
        browser, live, sessionmaker, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker, name="Widget-Akademie")
    webinar = await factories.webinar(
        sessionmaker, owner, title="Widgets für Fortgeschrittene", language="de", timezone="Europe/Berlin",
        capacity=3, starts_at=STARTS.isoformat(), ends_at=(STARTS + dt.timedelta(hours=1)).isoformat())
    page = await (await browser.new_context(locale="en-US")).new_page()
    await page.goto(f"{live.url}/w/{webinar.id}")
    # Paid checkouts close 30 minutes before the end: the page says so, in German.
    assert await page.inner_text("#sales-end") == "Donnerstag, 31. Januar 2030, 18:30 (Europe/Berlin)"
    await page.fill("#quantity", "2")
    async with sessionmaker.begin() as session:  # meanwhile two seats go to others
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(seats_taken=2))
    await page.focus("#quantity")
    async with page.expect_navigation():  # the answer replaces the page, not a load of the old one
        await page.keyboard.press("Enter")
    assert await page.inner_text("h1") == "Nicht verfügbar"
    assert await page.inner_text("#error-message") == "Nur noch 1 Platz ist frei. Wählen Sie weniger Plätze und versuchen Sie es erneut."
    assert "Widget-Akademie" in await page.inner_text("footer")
    await check(page, screenshot_dir, "buyer-error-409-de")
    await page.focus("a:has-text('Zurück zu Widgets für Fortgeschrittene')")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live.url}/w/{webinar.id}")
    assert await page.inner_text("#seats-left") == "1"
    await page.context.close()
