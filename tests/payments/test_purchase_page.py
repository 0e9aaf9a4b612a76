"""A buyer in headless Chromium buys tickets in dev mode: public page → Buy → test payment → success."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from tests import factories
from ticketing.app import create_app
from ticketing.db.models import Order, OrderStatus, Ticket


@pytest.fixture
async def live_url(make_settings):
    """The app on a real loopback port whose TICKETING_BASE_URL is that port, for a browser."""
    probe = TestServer(create_app(make_settings()), host="127.0.0.1")
    await probe.start_server()
    port = probe.port
    await probe.close()
    server = TestServer(create_app(make_settings(base_url=f"http://127.0.0.1:{port}")), host="127.0.0.1", port=port)
    await server.start_server()
    yield f"http://127.0.0.1:{port}"
    await server.close()


@pytest.mark.browser
async def test_dev_mode_purchase_in_a_browser(browser, live_url, sessionmaker):
    webinar = await factories.webinar(sessionmaker, title="Widgets in the Browser", capacity=4)
    page = await browser.new_page()
    try:
        await page.goto(f"{live_url}/w/{webinar.id}")
        assert await page.inner_text("h1") == "Widgets in the Browser"
        assert await page.inner_text("#seats-left") == "4"
        await page.fill("#quantity", "2")
        await page.click("button:has-text('Buy')")

        await page.wait_for_url(f"{live_url}/dev/checkout/**")
        assert "TEST PAYMENT" in await page.inner_text(".banner")
        await page.fill("#email", "browser@example.com")
        await page.click("button:has-text('Pay')")

        await page.wait_for_url(f"{live_url}/checkout/success**")
        assert "on its way" in await page.content()

        await page.goto(f"{live_url}/w/{webinar.id}")
        assert await page.inner_text("#seats-left") == "2"
    finally:
        await page.close()

    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.webinar_id == webinar.id))
        tickets = list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))
    assert order.status == OrderStatus.PAID
    assert [t.email for t in tickets] == ["browser@example.com"] * 2
