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


def _outcome(page: str) -> str:
    [outcome] = re.findall(r'<div id="outcome" data-outcome="([a-z]+)"', page)
    return outcome


def _reloads(page: str) -> bool:
    """Looks again by itself: a refresh for browsers without script, the outcome script for the rest."""
    refresh = '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    script = '<script src="/static/outcome.js" defer></script>' in page
    assert refresh == script
    return refresh


def _offers_calendar(page: str) -> bool:
    return "calendar.ics" in page or "calendar.google.com" in page


async def _success(client, session_id: str) -> str:
    response = await client.get(f"/checkout/success?session_id={session_id}")
    assert response.status == 200
    return await response.text()


async def test_until_stripe_has_spoken_the_page_reloads_and_promises_nothing(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    started = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    session_id = URL(started.headers["Location"]).path.rsplit("/", 1)[1]
    page = await _success(client, session_id)
    assert _outcome(page) == "unknown" and _reloads(page) and not _offers_calendar(page)
    assert "Confirming your payment" in page and "Payment received" not in page
    assert f'href="/checkout/success?session_id={session_id}"' in page  # a way to look again without script


async def test_a_delayed_payment_says_what_happens_next_and_stops_reloading(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = factories.checkout_session(webinar, payment_status="unpaid")
    assert (await factories.post_event(client, factories.event("checkout.session.completed", session))).status == 200
    page = await _success(client, session["id"])
    assert _outcome(page) == "pending" and not _reloads(page) and not _offers_calendar(page)
    assert "takes a few days to clear" in page and "/o/" not in page

    failed = factories.event("checkout.session.async_payment_failed", session)
    assert (await factories.post_event(client, failed)).status == 200
    page = await _success(client, session["id"])
    assert _outcome(page) == "failed" and not _reloads(page) and not _offers_calendar(page)
    assert "Nothing was charged" in page and f'href="/w/{webinar.id}"' in page


async def test_a_payment_for_a_full_webinar_reads_refunded_with_why_how_much_and_when(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, capacity=1)
    first = factories.checkout_session(webinar)
    second = factories.checkout_session(webinar, email="late@example.com")
    for session in (first, second):
        assert (await factories.post_event(client, factories.event("checkout.session.completed", session))).status == 200
    assert _outcome(await _success(client, first["id"])) == "paid"
    page = await _success(client, second["id"])
    assert _outcome(page) == "refunded" and not _reloads(page) and not _offers_calendar(page)
    assert "sold out before your payment arrived" in page
    assert "Refund: €25.00" in page and "5–10 business days" in page
    assert "Payment received" not in page and "on its way" not in page
    [reference] = re.findall(r'id="summary-reference">([0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3})<', page)
    assert f"order reference {reference}" in page


async def test_a_payment_that_does_not_match_is_flagged_for_the_organizer(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = factories.checkout_session(webinar, amount_total=100)
    assert (await factories.post_event(client, factories.event("checkout.session.completed", session))).status == 200
    page = await _success(client, session["id"])
    assert _outcome(page) == "flagged" and not _reloads(page) and not _offers_calendar(page)
    assert "the organizer will be in touch" in page


async def test_an_expired_checkout_says_nothing_was_charged(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = factories.checkout_session(webinar, payment_status="unpaid", status="expired")
    assert (await factories.post_event(client, factories.event("checkout.session.expired", session))).status == 200
    page = await _success(client, session["id"])
    assert _outcome(page) == "expired" and not _reloads(page) and not _offers_calendar(page)
    assert "nothing was charged" in page and f'href="/w/{webinar.id}"' in page


async def test_a_paid_order_stops_reloading_and_offers_the_calendar(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = factories.checkout_session(webinar)
    assert (await factories.post_event(client, factories.event("checkout.session.completed", session))).status == 200
    page = await _success(client, session["id"])
    assert _outcome(page) == "paid" and not _reloads(page) and _offers_calendar(page)
