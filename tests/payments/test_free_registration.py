"""Free webinars: a registration takes one seat for one confirmed address, rate-limited per
client address; the same address again gets its link again, never a second seat."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, update

from tests import factories
from tests.mail.test_delivery import links
from tests.pages import accessibility_problems, screenshots
from ticketing.app import create_app
from ticketing.db.models import Job, Order, OrderStatus, Registration, Ticket, Webinar

CONFIRM = re.compile(r"/r/([A-Za-z0-9_-]+)")


def confirmation_codes(message) -> list[str]:
    return CONFIRM.findall(message.get_body(preferencelist=("plain",)).get_content())


async def _register(client, webinar, email: str, **extra):
    return await client.post(f"/w/{webinar.id}/checkout", data={"email": email, **extra}, allow_redirects=False)


async def _count(sessionmaker, model) -> int:
    async with sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(model))


async def _seats(sessionmaker, webinar) -> int:
    async with sessionmaker() as db:
        return (await db.get(Webinar, webinar.id)).seats_taken


async def _age_registrations(sessionmaker, minutes: int = 2) -> None:
    """As if the last mail of every registration went out `minutes` ago."""
    async with sessionmaker.begin() as db:
        for registration in await db.scalars(select(Registration)):
            registration.sent_at = registration.sent_at - dt.timedelta(minutes=minutes)


@pytest.fixture
def mail_settings(make_settings, smtp):
    return make_settings(smtp_url=smtp.url)


async def test_the_confirmation_link_takes_the_one_seat(mail_settings, smtp, start_client, sessionmaker, make_worker,
                                                         stripe_standin):
    client = await start_client(mail_settings)
    webinar = await factories.webinar(sessionmaker, price_amount=0, capacity=5, title="Free Widgets")
    response = await _register(client, webinar, "bea@example.com")
    assert response.status == 303 and response.headers["Location"] == "/checkout/success?registered=1"
    assert "Open the link in it to take your seat" in await (await client.get(response.headers["Location"])).text()
    # Nothing is taken before the address is confirmed.
    assert (await _seats(sessionmaker, webinar), await _count(sessionmaker, Order)) == (0, 0)

    await make_worker(mail_settings).run_until_idle()
    [mail] = smtp.to("bea@example.com")
    assert mail["Subject"] == "Confirm your seat: Free Widgets"
    [code] = confirmation_codes(mail)
    assert f"/r/{code}" in mail.get_body(preferencelist=("html",)).get_content()
    assert len(code) >= 43  # 256 bits from secrets.token_urlsafe
    async with sessionmaker() as db:
        registration = await db.scalar(select(Registration))
        payloads = [j.payload for j in await db.scalars(select(Job).where(Job.kind == "mail.confirm_registration"))]
    assert registration.code_hash == hashlib.sha256(code.encode()).hexdigest() and code not in registration.code_hash
    assert all("code" not in p for p in payloads)  # the plain code left with the mail

    confirmed = await client.get(f"/r/{code}")
    assert confirmed.status == 200 and "Your seat is confirmed" in await confirmed.text()
    assert confirmed.headers["Cache-Control"] == "no-store"
    again = await client.get(f"/r/{code}")
    assert again.status == 200 and "already registered" in await again.text()
    assert await _seats(sessionmaker, webinar) == 1
    async with sessionmaker() as db:
        [order] = list(await db.scalars(select(Order)))
        [ticket] = list(await db.scalars(select(Ticket)))
    assert (order.status, order.amount_total, order.quantity) == (OrderStatus.PAID, 0, 1)
    assert ticket.email == "bea@example.com"

    await make_worker(mail_settings).run_until_idle()
    join = [m for m in smtp.to("bea@example.com") if links(m)]
    # One mail for the (free, one-seat) order, with its join link and order page.
    assert len(join) == 1 and "you are registered" in join[0].get_body(preferencelist=("plain",)).get_content()
    assert (await client.get(f"/j/{links(join[0])[0]}", allow_redirects=False)).status == 200  # the waiting page
    assert (await client.get("/r/" + "x" * 43)).status == 404
    assert stripe_standin.calls == []


async def test_the_same_address_again_gets_its_link_again_never_a_second_seat(mail_settings, smtp, start_client,
                                                                              sessionmaker, make_worker):
    client = await start_client(mail_settings)
    webinar = await factories.webinar(sessionmaker, price_amount=0, capacity=5)
    worker = make_worker(mail_settings)
    for email in ("bea@example.com", "Bea@Example.com"):  # within the minute: one mail
        assert (await _register(client, webinar, email)).status == 303
    await worker.run_until_idle()
    [first] = smtp.to("bea@example.com")
    await _age_registrations(sessionmaker)
    assert (await _register(client, webinar, "BEA@example.com")).status == 303
    await worker.run_until_idle()
    assert len(smtp.raw) == 2
    [old_code] = confirmation_codes(first)
    [new_code] = confirmation_codes(smtp.messages[-1])
    assert await _count(sessionmaker, Registration) == 1
    assert (await client.get(f"/r/{old_code}")).status == 404  # the newer mail's link replaced it
    assert (await client.get(f"/r/{new_code}")).status == 200
    await worker.run_until_idle()
    [join] = [m for m in smtp.messages if links(m)]

    # Confirmed: registering again mails a fresh join link (the old one stops), still one seat.
    await _age_registrations(sessionmaker)
    assert (await _register(client, webinar, "bea@example.com")).status == 303
    await worker.run_until_idle()
    [_, resent] = [m for m in smtp.messages if links(m)]
    assert resent["Subject"].startswith("Your new link")
    assert (await client.get(f"/j/{links(join)[0]}", allow_redirects=False)).status == 410  # replaced
    assert (await client.get(f"/j/{links(resent)[0]}", allow_redirects=False)).status == 200
    assert (await _seats(sessionmaker, webinar), await _count(sessionmaker, Ticket)) == (1, 1)


async def test_capacity_is_never_passed_by_confirmations(mail_settings, smtp, start_client, sessionmaker, make_worker):
    client = await start_client(mail_settings)
    webinar = await factories.webinar(sessionmaker, price_amount=0, capacity=1)
    emails = [f"p{n}@example.com" for n in range(4)]
    for email in emails:
        assert (await _register(client, webinar, email)).status == 303
    await make_worker(mail_settings).run_until_idle()
    codes = [confirmation_codes(smtp.to(email)[0])[0] for email in emails]
    answers = await asyncio.gather(*(client.get(f"/r/{code}") for code in codes))
    assert sorted(a.status for a in answers) == [200, 409, 409, 409]
    assert (await _seats(sessionmaker, webinar), await _count(sessionmaker, Ticket)) == (1, 1)
    # Full: a new address is refused at once.
    assert (await _register(client, webinar, "late@example.com")).status == 409


async def test_bad_registrations_change_nothing(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, price_amount=0)
    for data in ({"email": "a@example.com", "quantity": "2"}, {}, {"email": "not-an-address"}):
        response = await client.post(f"/w/{webinar.id}/checkout", data=data, allow_redirects=False)
        assert response.status == 422, data
    as_json = await client.post(f"/w/{webinar.id}/checkout", json={"email": "a@example.com", "quantity": 3})
    assert as_json.status == 422
    assert (await _count(sessionmaker, Registration), await _count(sessionmaker, Job)) == (0, 0)


async def test_registrations_are_rate_limited_per_client_address(make_settings, start_client, sessionmaker):
    client = await start_client(make_settings(register_rate_per_address="2"))
    webinar = await factories.webinar(sessionmaker, price_amount=0)
    for n in range(2):
        assert (await _register(client, webinar, f"r{n}@example.com")).status == 303
    limited = await _register(client, webinar, "r3@example.com")
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert await _count(sessionmaker, Registration) == 2
    # Paid checkouts are not counted against it.
    paid = await factories.webinar(sessionmaker)
    assert (await client.post(f"/w/{paid.id}/checkout", data={"quantity": "1"}, allow_redirects=False)).status == 303


@pytest.fixture
async def live(make_settings, smtp):
    """The app on a real loopback port whose base URL is that port, mailing to the SMTP sink."""
    probe = TestServer(create_app(make_settings()), host="127.0.0.1")
    await probe.start_server()
    port = probe.port
    await probe.close()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}", smtp_url=smtp.url)
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    yield settings
    await server.close()


@pytest.mark.browser
async def test_registering_in_a_browser_by_keyboard(browser, live, smtp, sessionmaker, make_worker, screenshot_dir):
    webinar = await factories.webinar(sessionmaker, price_amount=0, capacity=3, title="Free Widgets Live")
    page = await browser.new_page()
    try:
        await page.goto(f"{live.base_url}/w/{webinar.id}")
        assert await accessibility_problems(page) == []
        await screenshots(page, screenshot_dir, "free-register")
        await page.focus("#email")
        await page.keyboard.type("keys@example.com")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live.base_url}/checkout/success**")
        assert await page.inner_text("h1") == "Check your inbox"
        assert await accessibility_problems(page) == []
        await screenshots(page, screenshot_dir, "free-check-inbox")

        await make_worker(live).run_until_idle()
        [code] = confirmation_codes(smtp.to("keys@example.com")[0])
        await page.goto(f"{live.base_url}/r/{code}")
        assert await page.inner_text("h1") == "Your seat is confirmed"
        assert await accessibility_problems(page) == []
        await screenshots(page, screenshot_dir, "free-confirmed")

        await page.goto(f"{live.base_url}/w/{webinar.id}")
        assert await page.inner_text("#seats-left") == "2"
    finally:
        await page.close()


async def test_a_webinar_no_longer_free_takes_no_seat_by_confirmation(mail_settings, smtp, start_client, sessionmaker,
                                                                      make_worker):
    client = await start_client(mail_settings)
    webinar = await factories.webinar(sessionmaker, price_amount=0)
    assert (await _register(client, webinar, "bea@example.com")).status == 303
    await make_worker(mail_settings).run_until_idle()
    [code] = confirmation_codes(smtp.to("bea@example.com")[0])
    async with sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(price_amount=2500))
    assert (await client.get(f"/r/{code}")).status == 409
    assert (await _seats(sessionmaker, webinar), await _count(sessionmaker, Order)) == (0, 0)


async def test_one_link_opened_twice_at_once_takes_one_seat(mail_settings, smtp, start_client, sessionmaker,
                                                            make_worker):
    client = await start_client(mail_settings)
    webinar = await factories.webinar(sessionmaker, price_amount=0, capacity=5)
    assert (await _register(client, webinar, "twice@example.com")).status == 303
    await make_worker(mail_settings).run_until_idle()
    [code] = confirmation_codes(smtp.to("twice@example.com")[0])
    answers = await asyncio.gather(*(client.get(f"/r/{code}") for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]
    assert (await _seats(sessionmaker, webinar), await _count(sessionmaker, Ticket), await _count(sessionmaker, Order)) \
        == (1, 1, 1)


async def test_in_dev_mode_the_confirmation_link_is_one_click_away(client, sessionmaker, settings, make_worker,
                                                                   var_dir):
    webinar = await factories.webinar(sessionmaker, price_amount=0)
    assert (await _register(client, webinar, "dev@example.com")).status == 303
    await make_worker(settings).run_until_idle()
    [file] = list((var_dir / "mail").glob("*.eml"))
    detail = await (await client.get(f"/dev/mail/{file.name}")).text()
    [code] = re.findall(rf'href="{re.escape(settings.base_url)}/r/([A-Za-z0-9_-]+)"', detail)
    assert (await client.get(f"/r/{code}")).status == 200
    assert await _seats(sessionmaker, webinar) == 1
