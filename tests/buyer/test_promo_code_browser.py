"""A buyer enters a promo code on the public page in Chromium: the reduced price shows before
checkout, a refused code says why, and the page passes axe-core both ways."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import factories
from tests.buyer.conftest import profiled_organizer
from tests.buyer.test_buyer_path_browser import check
from ticketing.db.models import Order, PromoCode

pytestmark = pytest.mark.browser


async def test_a_buyer_applies_a_code_by_keyboard_and_checks_out_at_the_reduced_price(
        browser, live, sessionmaker, screenshot_dir):
    owner, _ = await profiled_organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, title="Widgets with a code", price_amount=2500)
    async with sessionmaker.begin() as session:
        session.add(PromoCode(organizer_id=owner.id, code="Partner", code_key="partner", percent_off=20,
                              max_uses=5, ticket_type_ids=[]))
    page = await browser.new_page()
    await page.goto(f"{live.url}/w/{webinar.id}")
    await page.fill("#code", "nope")
    await page.press("#code", "Enter")
    assert "not known" in await page.inner_text("#code-error")
    assert await page.get_attribute("#code", "aria-invalid") == "true"
    await check(page, screenshot_dir, "buyer-promo-code-refused")

    await page.fill("#code", "PARTNER")
    await page.press("#code", "Enter")
    assert "PARTNER" in await page.inner_text("#code-applied")
    assert await page.inner_text("#price del") == "€25.00"
    assert await page.inner_text("#price ins") == "€20.00"
    await check(page, screenshot_dir, "buyer-promo-code-applied")

    await page.fill("#email", "bea@example.com")
    await page.press("#email", "Enter")
    await page.wait_for_url("**/dev/checkout/**")
    async with sessionmaker() as session:
        order = await session.scalar(select(Order))
    assert order.expected_amount == 2000 and order.promo_use == "reserved"
    await page.close()
