"""The success page: the order's summary, and its order page link only in the browser that bought."""

from __future__ import annotations

import re

from aiohttp import CookieJar
from aiohttp.test_utils import TestClient
from yarl import URL

from tests import factories

ORDER_LINK = re.compile(r'href="(http://[^"]+/o/[A-Za-z0-9_-]{43})"')


async def test_the_buying_browser_sees_its_order_page_link(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, title="Paid Widgets")
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2", "email": "bea@example.com"},
                                 allow_redirects=False)
    assert response.status == 303
    cookie = response.cookies[next(iter(response.cookies))]
    assert cookie["httponly"] and cookie["path"] == "/checkout/success" and cookie["samesite"] == "Lax"
    paid = await client.post(URL(response.headers["Location"]).path, data={"email": "bea@example.com", "name": "Bea"},
                             allow_redirects=False)  # dev mode's test payment signs the webhook
    assert paid.status == 303
    success = paid.headers["Location"]

    page = await (await client.get(success)).text()
    assert "Payment received" in page and "Paid Widgets" in page and "bea@example.com" in page
    assert 'id="summary-seats">2<' in page
    [order_link] = ORDER_LINK.findall(page)
    order_page = await client.get("/o/" + order_link.rsplit("/", 1)[1])
    assert order_page.status == 200 and "Seat 2" in await order_page.text()

    # Another browser (no cookie) learns the summary but not the order page.
    stranger = TestClient(client.server, cookie_jar=CookieJar(unsafe=True))
    try:
        other = await (await stranger.get(success)).text()
    finally:
        await stranger.close()
    assert "Payment received" in other and "/o/" not in other


async def test_a_paid_checkout_shows_the_summary_by_its_session(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, title="Paid Widgets")
    evt = factories.event("checkout.session.completed", factories.checkout_session(webinar, quantity=3))
    assert (await factories.post_event(client, evt)).status == 200
    page = await (await client.get(f"/checkout/success?session_id={evt['data']['object']['id']}")).text()
    assert "Payment received" in page and "Paid Widgets" in page and "€75.00" in page
    assert "buyer@example.com" in page and "The link is in your confirmation email." in page
    assert "calendar.google.com" in page and f"/w/{webinar.id}/calendar.ics" in page
    unknown = await client.get("/checkout/success?session_id=cs_test_unknown")
    assert unknown.status == 200 and "on its way" in await unknown.text()
