"""The console's order actions in Chromium, by keyboard: choosing the seat a dashboard refund
takes away, and restoring an order after a won dispute. Every page passes axe-core."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import select

from tests import factories, stripe_shapes
from tests.org.test_console_browser import check, sign_in_from_mail, tab_to
from ticketing.db.models import Order, Ticket, TicketStatus

pytestmark = pytest.mark.browser
VERSION = "2023-10-16"


async def _post(url: str, settings, event_type: str, obj: dict) -> str:
    body, headers = factories.signed(factories.event(event_type, obj, api_version=VERSION),
                                     settings.stripe_webhook_secrets[0])
    async with aiohttp.ClientSession() as http, http.post(f"{url}/webhooks/stripe", data=body, headers=headers) as r:
        assert r.status == 200
        return (await r.json())["outcome"]


async def _tickets(sessionmaker, session_id: str) -> list[tuple[TicketStatus, str | None]]:
    async with sessionmaker() as db:
        order = await db.scalar(select(Order).where(Order.stripe_session_id == session_id))
        return [(t.status, t.revoked_reason) for t in
                await db.scalars(select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.seq))]


async def test_refunded_seats_and_a_won_dispute_by_keyboard(browser, console, sessionmaker, screenshot_dir):
    url, settings = console
    owner, _ = await factories.organizer(sessionmaker, name="Ada Organizer", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, owner, capacity=10)
    refunded = stripe_shapes.session(VERSION, webinar, quantity=2, email="bea@example.com")
    disputed = stripe_shapes.session(VERSION, webinar, quantity=1, email="cy@example.com")
    for session in (refunded, disputed):
        assert await _post(url, settings, "checkout.session.completed", session) == "order_paid"
    charge = stripe_shapes.charge(VERSION, refunded["payment_intent"], amount=5000, amount_refunded=2500)
    assert await _post(url, settings, "charge.refunded", charge) == "order_paid"
    dispute = stripe_shapes.dispute(VERSION, disputed["payment_intent"], amount=2500)
    assert await _post(url, settings, "charge.dispute.created", dispute) == "order_disputed"
    assert await _post(url, settings, "charge.dispute.closed", dict(dispute, status="won")) == "order_disputed"

    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()
    await sign_in_from_mail(page, url, "ada@example.com")
    await page.goto(f"{url}/org/webinars/{webinar.id}")
    await check(page, screenshot_dir, "console-orders-to-look-at")
    assert "the dispute was won" in await page.inner_text("#problems-heading + ul")

    await tab_to(page, "a[href$='/seats']")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text('Refunded seats')")
    await check(page, screenshot_dir, "console-refunded-seats")
    await tab_to(page, "fieldset p:nth-of-type(2) input[name=seat]")
    await page.keyboard.press("Space")
    await tab_to(page, "form[action$='/seats'] button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{url}/org/webinars/{webinar.id}")
    assert "holder is told" in await page.inner_text("main")
    assert await _tickets(sessionmaker, refunded["id"]) == [(TicketStatus.VALID, None),
                                                           (TicketStatus.REVOKED, "refunded")]

    await tab_to(page, "a[href$='/restore']")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("h1:has-text(\"Give this order's tickets back?\")")
    await check(page, screenshot_dir, "console-restore-order")
    await tab_to(page, "form[aria-label=Confirm] button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{url}/org/webinars/{webinar.id}")
    assert "valid again" in await page.inner_text("main")
    assert await _tickets(sessionmaker, disputed["id"]) == [(TicketStatus.VALID, None)]
    await check(page, screenshot_dir)
    await context.close()
