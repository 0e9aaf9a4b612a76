"""Sales end: the `sales_end` field, the closed page and 409 after it, Checkout Sessions that
expire by then, and Stripe's minimum charge per currency."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import stripe
from sqlalchemy import func, select, update

from tests import factories
from tests.conftest import STRIPE_SECRET_KEY
from tests.payments.test_stripe_standin import SESSION
from ticketing.db import utcnow
from ticketing.db.models import Order, Webinar


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def iso(value: dt.datetime) -> str:
    return value.replace(microsecond=0).isoformat()


async def _error(response, status: int, field: str) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["error"]["field"] == field
    return body["error"]["message"]


async def test_sales_end_defaults_to_the_end_and_is_validated_and_editable(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker)
    data = factories.webinar_input()
    created = await client.post("/api/webinars", json=data, headers=auth(key))
    assert created.status == 201
    webinar = await created.json()
    assert webinar["sales_end"] == webinar["ends_at"]

    starts = dt.datetime.fromisoformat(data["starts_at"])
    after_end = factories.webinar_input(sales_end=iso(starts + dt.timedelta(hours=2)))
    assert "after ends_at" in await _error(await client.post("/api/webinars", json=after_end, headers=auth(key)),
                                           422, "sales_end")
    bad = factories.webinar_input(sales_end="tomorrow")
    await _error(await client.post("/api/webinars", json=bad, headers=auth(key)), 422, "sales_end")
    async with sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Webinar)) == 1

    url = f"/api/webinars/{webinar['id']}"
    early = starts - dt.timedelta(hours=1)
    patched = await client.patch(url, json={"sales_end": iso(early.astimezone(dt.timezone(dt.timedelta(hours=2))))},
                                 headers=auth(key))
    assert patched.status == 200, await patched.text()
    assert dt.datetime.fromisoformat((await patched.json())["sales_end"]) == early
    # Moving the end before an explicit sales end is refused; clearing it follows the end again.
    moved = await client.patch(url, json={"ends_at": iso(early - dt.timedelta(minutes=1)),
                                          "starts_at": iso(early - dt.timedelta(hours=1))}, headers=auth(key))
    await _error(moved, 422, "sales_end")
    cleared = await client.patch(url, json={"sales_end": None}, headers=auth(key))
    assert (await cleared.json())["sales_end"] == webinar["ends_at"]
    assert await _error(await client.patch(url, json={"sales_end": iso(starts + dt.timedelta(hours=3))},
                                           headers=auth(key)), 422, "sales_end")


async def _close_in(sessionmaker, webinar, minutes: float) -> None:
    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id)
                         .values(sales_end=utcnow() + dt.timedelta(minutes=minutes)))


@pytest.mark.parametrize("minutes_left", [-1, 20])
async def test_after_sales_close_the_page_says_so_and_checkout_is_409(client, sessionmaker, minutes_left):
    """Closed at the sales end, and for a paid webinar already when less than 30 minutes are left
    (Stripe's shortest Checkout Session)."""
    webinar = await factories.webinar(sessionmaker)
    await _close_in(sessionmaker, webinar, minutes_left)
    page = await client.get(f"/w/{webinar.id}")
    text = await page.text()
    assert page.status == 200 and "Sales have closed for this webinar" in text
    assert "<form" not in text.split("</header>")[-1]
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    assert response.status == 409
    assert "Sales have closed for this webinar." in await response.text()
    async with sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Order)) == 0


async def test_a_free_webinar_takes_registrations_up_to_its_sales_end(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, price_amount=0)
    await _close_in(sessionmaker, webinar, 20)
    assert "have closed" not in await (await client.get(f"/w/{webinar.id}")).text()
    await _close_in(sessionmaker, webinar, -1)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"email": "a@example.com"}, allow_redirects=False)
    assert response.status == 409


async def test_checkout_session_expires_no_later_than_the_sales_end(make_settings, stripe_standin, start_client,
                                                                    sessionmaker):
    from tests.conftest import JITSI_APP_SECRET, STRIPE_WEBHOOK_SECRET

    settings = make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                             stripe_api_base=stripe_standin.url, jitsi_app_secret=JITSI_APP_SECRET,
                             checkout_expires_minutes="600")
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    await _close_in(sessionmaker, webinar, 45)
    async with sessionmaker() as db:
        sales_end = (await db.get(Webinar, webinar.id)).sales_end
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    assert response.status == 303, await response.text()
    [call] = stripe_standin.calls_to("POST", "/v1/checkout/sessions")
    assert int(call.params["expires_at"]) == int(sales_end.timestamp())

    # With the sales end far off, the configured lifetime applies.
    other = await factories.webinar(sessionmaker)
    before = int(time.time())
    response = await client.post(f"/w/{other.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    assert response.status == 303
    expires = int(stripe_standin.calls_to("POST", "/v1/checkout/sessions")[-1].params["expires_at"])
    assert before + 600 * 60 <= expires <= int(time.time()) + 600 * 60


@pytest.fixture
async def stripe_client(stripe_standin):
    client = stripe.StripeClient(STRIPE_SECRET_KEY, http_client=stripe.AIOHTTPClient(timeout=5),
                                 base_addresses={"api": stripe_standin.url}, max_network_retries=0)
    yield client
    await client._requestor._client.close_async()


@pytest.mark.parametrize("seconds", [29 * 60, 24 * 3600 + 120])
async def test_the_standin_refuses_expires_at_outside_30_minutes_to_24_hours(stripe_client, seconds):
    with pytest.raises(stripe.InvalidRequestError) as error:
        await stripe_client.v1.checkout.sessions.create_async(dict(SESSION, expires_at=int(time.time()) + seconds))
    assert error.value.param == "expires_at"


@pytest.mark.parametrize(("currency", "price", "minimum"), [
    ("EUR", 49, "EUR 0.50"), ("USD", 1, "USD 0.50"), ("GBP", 29, "GBP 0.30"), ("JPY", 49, "JPY 50"),
    ("HUF", 17499, "HUF 175.00"), ("CZK", 1499, "CZK 15.00"),
])
async def test_a_price_below_stripes_minimum_is_refused_naming_it(client, sessionmaker, currency, price, minimum):
    _, key = await factories.organizer(sessionmaker)
    data = factories.webinar_input(currency=currency, price_amount=price)
    message = await _error(await client.post("/api/webinars", json=data, headers=auth(key)), 422, "price_amount")
    assert minimum in message and "minimum" in message


async def test_the_minimum_itself_and_free_are_accepted_and_patch_is_checked(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker)
    for currency, price in (("EUR", 50), ("GBP", 30), ("EUR", 0), ("JPY", 50), ("ISK", 1)):
        response = await client.post("/api/webinars", json=factories.webinar_input(currency=currency, price_amount=price),
                                     headers=auth(key))
        assert response.status == 201, (currency, price, await response.text())
    webinar = await response.json()
    too_low = await client.patch(f"/api/webinars/{webinar['id']}", json={"currency": "EUR", "price_amount": 10},
                                 headers=auth(key))
    assert "EUR 0.50" in await _error(too_low, 422, "price_amount")


def _sales_close_on_page(text: str) -> dt.datetime:
    [stamp] = re.findall(r'<dd id="sales-end"><time datetime="([^"]+)"', text)
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def test_the_page_names_when_buying_actually_stops(client, sessionmaker):
    import zoneinfo

    # A paid webinar with an early sales end: checkouts close 30 minutes before it.
    webinar = await factories.webinar(sessionmaker, timezone="Europe/Berlin")
    sales_end = (webinar.starts_at - dt.timedelta(days=1)).replace(second=0, microsecond=0)
    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(sales_end=sales_end))
    text = await (await client.get(f"/w/{webinar.id}")).text()
    stops = sales_end - dt.timedelta(minutes=30)
    local = stops.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert "Sales close" in text and f"{local:%H:%M}" in text
    assert _sales_close_on_page(text) == stops

    # Without a sales end, a paid webinar's sales close 30 minutes before it ends; a free one's at its end.
    paid = await factories.webinar(sessionmaker)
    assert _sales_close_on_page(await (await client.get(f"/w/{paid.id}")).text()) == paid.ends_at - dt.timedelta(minutes=30)
    free = await factories.webinar(sessionmaker, price_amount=0)
    assert _sales_close_on_page(await (await client.get(f"/w/{free.id}")).text()) == free.ends_at


def test_is_on_sale_reads_status_sales_end_and_end():
    from ticketing.db.models import WebinarStatus
    from ticketing.webinars.sales import checkout_closes_at, is_on_sale

    t0 = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)
    webinar = Webinar(status=WebinarStatus.SCHEDULED, starts_at=t0, ends_at=t0 + dt.timedelta(hours=1),
                      sales_end=None, price_amount=2500)
    assert is_on_sale(webinar, t0 + dt.timedelta(minutes=59))
    assert not is_on_sale(webinar, t0 + dt.timedelta(hours=1))
    assert checkout_closes_at(webinar) == t0 + dt.timedelta(minutes=30)
    webinar.sales_end = t0 - dt.timedelta(days=1)
    assert is_on_sale(webinar, t0 - dt.timedelta(days=1, seconds=1))
    assert not is_on_sale(webinar, t0 - dt.timedelta(days=1))
    webinar.sales_end = None
    for status in (WebinarStatus.CANCELLED, WebinarStatus.ENDED):
        webinar.status = status
        assert not is_on_sale(webinar, t0)
    webinar.status, webinar.price_amount = WebinarStatus.SCHEDULED, 0
    assert checkout_closes_at(webinar) == webinar.ends_at  # no Stripe session for a free registration
